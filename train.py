"""Train a CNN -> RNN -> CTC model: the same trainer as ``crnn train``, runnable with torchrun.

    python train.py --out runs/dtmf                          # built-in DTMF data, CPU or GPU
    torchrun --nproc_per_node=4 train.py --train-manifest train.jsonl --val-manifest dev.jsonl --out runs/asr
"""
import sys

from crnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
