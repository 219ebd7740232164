#!/usr/bin/env bash
# Fetch, on a machine that reaches PyPI, the wheels a bare GPU machine (Python 3.12, torch trio, no network)
# lacks for the suite and the benchmarks, into .whl/ (git-ignored). kenlm has no wheels on PyPI: it is built
# here with a local Python 3.12 when one exists (pyctcdecode's LM mode needs it; without it that row is skipped).
#   bash bench/gpu/wheels.sh [python3.12]
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform any)
# project dependencies missing there, their own dependencies, test and benchmark peers
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" \
    -d .whl soundfile cffi pycparser "av==18.1.0" jiwer rapidfuzz pysubs2 flashlight-text pyctcdecode pygtrie
py312="${1:-$(command -v python3.12 || true)}"
if [ -n "$py312" ] && ! ls .whl/kenlm-*.whl >/dev/null 2>&1; then
    "$py312" -m pip wheel -q --no-deps -w .whl kenlm || echo "kenlm could not be built: pyctcdecode's LM rows will be skipped"
fi
du -sh .whl && ls .whl
