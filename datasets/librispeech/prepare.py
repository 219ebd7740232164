"""Write JSON-lines manifests for a LibriSpeech copy on disk, one per split.

    python datasets/librispeech/prepare.py --root /data/LibriSpeech --out data/librispeech

reads ``<root>/<split>/<speaker>/<chapter>/*.flac`` + ``*.trans.txt`` and writes
``<out>/<split>.jsonl`` rows ``{path, text, duration, id, speaker, chapter}``. Durations come from
the FLAC headers, so the trainer's length bucketing needs no further file access. ``crnn train``
also accepts the LibriSpeech folder itself in place of a manifest; the manifests save re-scanning.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crnn.data.audio import AudioReadError, audio_duration
from crnn.data.corpora.librispeech import librispeech_splits
from crnn.data.manifest import ManifestError, write_manifest


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", required=True, help="LibriSpeech root (holding split folders) or one split folder")
    p.add_argument("--out", required=True, help="folder for <split>.jsonl manifests")
    p.add_argument("--splits", nargs="*", help="only these splits (e.g. train-clean-100 dev-clean)")
    p.add_argument("--absolute", action="store_true", help="store absolute audio paths (default: relative to --out)")
    return p


def main(args: argparse.Namespace) -> int:
    try:
        splits = librispeech_splits(args.root)
    except ManifestError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.splits:
        unknown = set(args.splits) - set(splits)
        if unknown:
            print(f"error: splits not found under {args.root}: {sorted(unknown)}; found {sorted(splits)}",
                  file=sys.stderr)
            return 1
        splits = {k: v for k, v in splits.items() if k in args.splits}
    out = Path(args.out)
    for split, rows in splits.items():
        kept, missing = [], []
        for row in rows:
            try:
                row["duration"] = round(audio_duration(row["path"]), 4)
            except AudioReadError as e:
                missing.append(str(e))
                continue
            kept.append(row)
        write_manifest(out / f"{split}.jsonl", kept, relative=not args.absolute)
        hours = sum(r["duration"] for r in kept) / 3600
        print(f"{split}: {len(kept)} utterances, {hours:.2f} h -> {out / f'{split}.jsonl'}")
        for line in missing[:10]:
            print(f"  skipped {line}", file=sys.stderr)
        if len(missing) > 10:
            print(f"  ... and {len(missing) - 10} more unreadable files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
