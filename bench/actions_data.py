"""How fast the built-in action task makes training clips on one CPU thread, against the training step that eats them.

    python bench/actions_data.py                 # 200 clips per setting, one thread
    python bench/actions_data.py --clips 400 --batch 16

Rows: training items of ``ActionsDataset`` (what a DataLoader worker does: render, length rescaling, codec
look, clip augmentation) for the basic look (the reference, the task before the varied look), the varied
look, the varied look with ``--clip-augment standard`` applied in the worker, and the varied look read
from a pool of pre-rendered clips (``crnn train --clip-pool``: the same augmentation, no rendering; the
pool is rendered first, untimed, into a temporary folder). The last row is a
``video_tiny`` training step on CPU (forward, CTC, backward, AdamW) in clips per second: on a 2-core machine
one worker feeds one compute thread, so a data row below it means the trainer waits for data.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

import crnn
from common import machine
from crnn.data.builtin.actions import ActionsConfig, ActionsDataset, actions_tokenizer
from crnn.data.builtin.clip_pool import ClipPool
from crnn.data.collate import collate
from crnn.data.video.augment import STANDARD, ClipAugment
from crnn.training.step import make_optimizer, train_step


def clips_per_second(ds: ActionsDataset, n: int) -> float:
    ds[0]  # warm caches (fonts, templates)
    t0 = time.perf_counter()
    for i in range(n):
        ds[i]
    return n / (time.perf_counter() - t0)


def train_clips_per_second(batch_size: int, steps: int) -> float:
    tok = actions_tokenizer()
    model = crnn.create_model("video_tiny", vocab_size=len(tok))
    model.tokenizer = tok
    ds = ActionsDataset(batch_size, seed=0, split="train", train=True)
    batch = collate([ds[i] for i in range(batch_size)])
    optimizer = make_optimizer(model, 3e-3, 1e-2)
    params = list(model.parameters())
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    model.train()
    train_step(model, batch, optimizer, scaler, None, 5.0, params)
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step(model, batch, optimizer, scaler, None, 5.0, params)
    return steps * batch_size / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=200, help="clips timed per setting (default: 200)")
    p.add_argument("--batch", type=int, default=16, help="training batch for the step row (default: 16)")
    p.add_argument("--steps", type=int, default=5, help="timed training steps (default: 5)")
    args = p.parse_args()
    torch.set_num_threads(1)
    print(machine(torch.device("cpu")))
    settings = {
        "basic look (reference)": ActionsDataset(args.clips, seed=1, train=True, config=ActionsConfig(look="basic")),
        "varied look": ActionsDataset(args.clips, seed=1, train=True),
        "varied look + clip augmentation standard": ActionsDataset(args.clips, seed=1, train=True,
                                                                   clip_augment=ClipAugment.from_dict(STANDARD)),
    }
    cache = tempfile.TemporaryDirectory()
    pooled = ActionsDataset(args.clips, seed=1, train=True)
    pooled.use_pool(ClipPool.build(cache.name, args.clips, 1, "train", pooled.config, pooled.frame_size, verbose=False))
    settings["varied look from a clip pool (--clip-pool)"] = pooled
    ref = None
    print(f"{'setting':<44} {'clips/s':>8} {'x ref':>6}")
    for name, ds in settings.items():
        rate = clips_per_second(ds, args.clips)
        ref = ref or rate
        print(f"{name:<44} {rate:8.1f} {rate / ref:6.2f}")
    rate = train_clips_per_second(args.batch, args.steps)
    print(f"{'video_tiny training step, B=' + str(args.batch):<44} {rate:8.1f} {rate / ref:6.2f}")
    cache.cleanup()


if __name__ == "__main__":
    main()
