"""A pool of pre-rendered action clips on disk, so that the renderer does not pace a training epoch.

Rendering a clip of the action task costs about 13 ms of a core; a training step on a batch of them costs
less per clip than that on a GPU and about as much on a CPU. A pool renders ``n`` clips once (in parallel),
keeps them as raw uint8 frames in one file under a cache folder, and hands them out by memory map: each
epoch walks on through the pool and draws fresh augmentation (speed, clip augmentation, codec look) on top.

Layout of a pool folder (named after a hash of everything that decides its clips, so a changed renderer or
option renders a new pool instead of reusing a stale one)::

    frames.u8     every clip's frames, (T, 3, H, W) each, one after the other
    index.npz     offsets, frame counts, frame labels and action ids of each clip
    pool.json     what made it (for people) and ``complete: true``

The folder is written under a temporary name and renamed when complete: a pool is never half-written.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np

POOL_VERSION = 1  # bump when the renderer changes what a (split, seed, index) clip looks like


def pool_key(n: int, seed: int, split: str, config, frame_size: tuple[int, int]) -> str:
    """The hash naming a pool: the same options always give the same clips."""
    spec = dict(version=POOL_VERSION, n=n, seed=seed, split=split, config=asdict(config),
                frame_size=list(frame_size))
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def _render_range(args: tuple) -> list[tuple[np.ndarray, list[int], np.ndarray]]:
    """Clips ``start..stop`` of a split, at ``frame_size`` (runs in a worker process)."""
    import torch

    from crnn.data.builtin.actions import ACTIONS, clip_rng, generate_clip
    from crnn.data.video.reader import resize_frames

    torch.set_num_threads(1)
    start, stop, seed, split, config, frame_size = args
    out = []
    for k in range(start, stop):
        frames, actions, labels = generate_clip(clip_rng(split, seed, k), config, held_out=split == "test_look")
        frames = resize_frames(torch.from_numpy(frames), frame_size).numpy()
        out.append((np.ascontiguousarray(frames), [ACTIONS.index(a) for a in actions], labels.astype(np.int16)))
    return out


class ClipPool:
    """``n`` rendered clips of one split of the action task, read from ``folder`` by memory map.

    Use :meth:`build` to render (or reuse) a pool; ``clip(k)`` returns what
    ``generate_clip(clip_rng(split, seed, k), config)`` resized to ``frame_size`` returns.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        meta_path = self.folder / "pool.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{self.folder}: not a clip pool (no pool.json)")
        self.meta = json.loads(meta_path.read_text())
        if not self.meta.get("complete"):
            raise ValueError(f"{self.folder}: the clip pool is incomplete")
        index = np.load(self.folder / "index.npz")
        self.offsets, self.counts = index["offsets"], index["counts"]
        self.label_offsets, self.labels = index["label_offsets"], index["labels"]
        self.action_offsets, self.action_ids = index["action_offsets"], index["action_ids"]
        self.frame_shape = tuple(int(v) for v in self.meta["frame_shape"])  # (3, H, W)
        self._frames: np.memmap | None = None  # opened on first use, in each loader process

    def __len__(self) -> int:
        return len(self.counts)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_frames"] = None  # each loader process maps the file itself
        return state

    def clip(self, k: int) -> tuple[np.ndarray, list[str], np.ndarray]:
        """Clip ``k``: frames uint8 (T, 3, H, W) (a copy), action names, frame labels int64 (T,)."""
        from crnn.data.builtin.actions import ACTIONS

        if self._frames is None:
            self._frames = np.memmap(self.folder / "frames.u8", dtype=np.uint8, mode="r")
        per_frame = int(np.prod(self.frame_shape))
        t, start = int(self.counts[k]), int(self.offsets[k])
        frames = np.array(self._frames[start * per_frame:(start + t) * per_frame]).reshape(t, *self.frame_shape)
        labels = self.labels[self.label_offsets[k]:self.label_offsets[k] + t].astype(np.int64)
        ids = self.action_ids[self.action_offsets[k]:self.action_offsets[k + 1]]
        return frames, [ACTIONS[int(i)] for i in ids], labels

    @classmethod
    def build(cls, cache_dir: str | Path, n: int, seed: int, split: str, config, frame_size: tuple[int, int],
              workers: int | None = None, verbose: bool = True) -> "ClipPool":
        """Render ``n`` clips into ``cache_dir`` (or reuse the pool already there) and open it."""
        if n < 1:
            raise ValueError(f"a clip pool needs at least one clip, got {n}")
        frame_size = (int(frame_size[0]), int(frame_size[1]))
        folder = Path(cache_dir) / f"actions-{split}-{n}-{pool_key(n, seed, split, config, frame_size)}"
        if (folder / "pool.json").is_file():
            try:
                return cls(folder)
            except (ValueError, OSError, KeyError):
                shutil.rmtree(folder, ignore_errors=True)  # a broken pool is rendered again, never read
        tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            cls._render(tmp, n, seed, split, config, frame_size, workers, verbose)
            try:
                tmp.rename(folder)
            except OSError:  # another process finished the same pool first: use theirs
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls(folder)

    @staticmethod
    def _render(tmp: Path, n: int, seed: int, split: str, config, frame_size: tuple[int, int],
                workers: int | None, verbose: bool) -> None:
        import multiprocessing as mp

        workers = max(1, min(workers or os.cpu_count() or 1, n))
        chunk = 100
        jobs = [(s, min(s + chunk, n), seed, split, config, frame_size) for s in range(0, n, chunk)]
        offsets, counts, labels, action_offsets, action_ids = [], [], [], [0], []
        total, started = 0, time.monotonic()
        if verbose:
            print(f"rendering {n} {split} clips into {tmp.parent} ({workers} process(es)) ...", file=sys.stderr)
        # forked like the DataLoader's workers; a worker that dies raises BrokenProcessPool, never hangs
        procs = contextlib.nullcontext(None) if workers == 1 else \
            ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"))
        with procs as pool, open(tmp / "frames.u8", "wb") as f:
            results = map(_render_range, jobs) if pool is None else pool.map(_render_range, jobs)
            for done, batch in enumerate(results, 1):
                for frames, ids, frame_labels in batch:
                    f.write(frames.tobytes())
                    offsets.append(total)
                    counts.append(len(frames))
                    total += len(frames)
                    labels.append(frame_labels)
                    action_ids.extend(ids)
                    action_offsets.append(len(action_ids))
                if verbose and (done % 20 == 0 or done == len(jobs)):
                    print(f"  {min(done * chunk, n)}/{n} clips, {time.monotonic() - started:.0f} s", file=sys.stderr)
            f.flush()
            os.fsync(f.fileno())
        counts_arr = np.asarray(counts, dtype=np.int64)
        np.savez(tmp / "index.npz", offsets=np.asarray(offsets, dtype=np.int64), counts=counts_arr,
                 label_offsets=np.concatenate([[0], np.cumsum(counts_arr)[:-1]]).astype(np.int64),
                 labels=np.concatenate(labels), action_offsets=np.asarray(action_offsets, dtype=np.int64),
                 action_ids=np.asarray(action_ids, dtype=np.int16))
        meta = dict(version=POOL_VERSION, n=n, seed=seed, split=split, config=asdict(config),
                    frame_shape=[3, *frame_size], frames=total, bytes=(tmp / "frames.u8").stat().st_size,
                    seconds=round(time.monotonic() - started, 1), complete=True)
        (tmp / "pool.json").write_text(json.dumps(meta, indent=1) + "\n")
