#!/usr/bin/env bash
# The GPU programme in stages, each well inside one 10-minute device command; output lands in $OUT
# (or ./gpu-out) as one text file per step. Run from the repository root on the GPU machine, with the
# wheels from bench/gpu/wheels.sh carried in .whl/:
#   bash bench/gpu/run.sh suite      # the whole suite, CPU and CUDA variants (CRNN_TEST_DEVICES=cpu,cuda)
#   bash bench/gpu/run.sh speed      # targets 1, 4, 5: training step, beam search, decoding files
#   bash bench/gpu/run.sh cells      # targets 2, 3: compiled reference cells (twice: compile cache), scan cells
#   bash bench/gpu/run.sh video      # target 6: video_small training step and mp4 decoding
#   bash bench/gpu/run.sh recipes    # crnn demo and the actions curriculum on the GPU, timed
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-gpu-out}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi

step() {  # step NAME COMMAND...: run, keep the output and the exit status
    local name=$1; shift
    echo "== $name: $*" | tee "$out/$name.txt"
    ( set -o pipefail; "$@" 2>&1 | tee -a "$out/$name.txt" )
    echo "== $name: exit $?" | tee -a "$out/$name.txt"
}

info() {
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c "import torch; print('torch', torch.__version__, 'cuDNN', torch.backends.cudnn.version(), torch.cuda.get_device_name())"
    date -u +%Y-%m-%dT%H:%MZ
}

case "${1:-}" in
suite)
    step machine info
    step cuda_suite env CRNN_TEST_DEVICES=cpu,cuda python3 -m pytest -q -m cuda -rs -p no:cacheprovider
    step full_suite env CRNN_TEST_DEVICES=cpu,cuda python3 -m pytest -q -n 8 -p no:cacheprovider ;;
speed)
    step machine info
    step train_step python3 bench/train_step.py --profile
    step decode python3 bench/decode.py --repeats 3
    step decode_files python3 bench/decode_files.py ;;
cells)
    step cells python3 bench/cells.py --cells gru lstm gru_ref lstm_ref
    step cells_cached python3 bench/cells.py --cells gru_ref lstm_ref
    step cells_bf16 python3 bench/cells.py --cells gru lstm gru_ref lstm_ref --dtype bfloat16
    step cells_stack python3 bench/cells.py --cells gru lstm --layers 3 --bidirectional
    step cells_long python3 bench/cells.py --long --batch 8 ;;
video)
    step video python3 bench/video_step.py ;;
recipes)
    step demo python3 -m crnn demo --device cuda
    step actions_stage1 python3 -m crnn train --task actions_basic --out runs/actions-stage1 --train-size 2000 \
        --epochs 16 --batch-size 16 --lr 3e-3 --warmup-steps 100 --max-minutes 3 --device cuda --workers 12
    cp runs/actions-stage1/log.csv "$out/actions_stage1_log.csv" ;;
*)
    echo "usage: bash bench/gpu/run.sh suite|speed|cells|video|recipes" >&2
    exit 2 ;;
esac
