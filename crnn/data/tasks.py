"""Built-in tasks: data generated on the fly, each one object in one registry.

A :class:`BuiltinTask` says what the task reads (its modality), which preset trains on it by default,
its training budget, and how to build its data. ``crnn train --task``, the trainer, ``crnn demo`` and
``crnn info`` all read :data:`TASKS`; a plugin may register its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from crnn.registry import Registry


@dataclass(frozen=True)
class TaskRequest:
    """What a run asks of a built-in task's data."""

    train_size: int                  # training items per epoch (fresh every epoch)
    val_size: int                    # fixed validation items
    seed: int                        # the run's seed (training items derive from it; validation is fixed)
    sample_rate: int | None = None   # audio tasks: the model's rate (None: the task's own mix)
    reader_args: dict = field(default_factory=dict)  # the model's (CRNN.reader_args): frame or line size
    options: dict = field(default_factory=dict)  # task-specific: fonts, text_corpus, clip_augment, augment_pixels, clip_pool, cache_dir


@dataclass(frozen=True)
class BuiltinTask:
    name: str
    modality: str                    # audio | video | features | image
    preset: str                      # the model it trains by default
    description: str                 # one line, for --help and crnn info
    build: Callable[[TaskRequest], Any]  # -> crnn.data.build.DataBundle
    budget: dict = field(default_factory=dict)  # epochs / max_minutes / time_schedule over the defaults


TASKS: Registry[BuiltinTask] = Registry("built-in task")


def register_task(task: BuiltinTask) -> BuiltinTask:
    return TASKS.register(task.name, task)


def _bundle(train, val, tokenizer, bucket: bool = False):
    from crnn.data.build import DataBundle

    if bucket:
        return DataBundle(train, val, tokenizer, train.lengths(), val.lengths(), bucket=True)
    return DataBundle(train, val, tokenizer)


def _dtmf(req: TaskRequest):
    from crnn.data.builtin.dtmf import DTMFDataset

    train = DTMFDataset(req.train_size, seed=req.seed * 7 + 1, sample_rate=req.sample_rate, fresh_each_epoch=True)
    val = DTMFDataset(req.val_size, seed=10_007, sample_rate=req.sample_rate, fresh_each_epoch=False)
    return _bundle(train, val, train.tokenizer)


def _actions(look: str) -> Callable[[TaskRequest], Any]:
    def build(req: TaskRequest):
        from crnn.data.builtin.actions import ActionsConfig, ActionsDataset, actions_tokenizer

        config = ActionsConfig(look=look)
        # the clips come at the model's frame size, as a reader resizes files to it
        size = (int(req.reader_args.get("height", config.size)), int(req.reader_args.get("width", config.size)))
        train = ActionsDataset(req.train_size, seed=req.seed * 7 + 1, train=True, config=config,
                               clip_augment=req.options.get("clip_augment"),
                               augment_pixels=req.options.get("augment_pixels", True), frame_size=size)
        if req.options.get("clip_pool"):  # training clips rendered once, read back each epoch
            from crnn.data.builtin.clip_pool import ClipPool

            train.use_pool(ClipPool.build(req.options.get("cache_dir") or "data/cache", int(req.options["clip_pool"]),
                                          train.seed, train.split, train.config, train.frame_size))
        val = ActionsDataset(req.val_size, seed=10_007, train=False, config=config, frame_size=size)
        return _bundle(train, val, actions_tokenizer())

    return build


def _textlines(req: TaskRequest):
    from crnn.data.builtin.textlines import TextLinesConfig, TextLinesDataset
    from crnn.data.image.augment import LineAugment

    height = int(req.reader_args.get("height", 32))
    if int(req.reader_args.get("channels", 1)) != 1:
        raise ValueError("the built-in text lines are grey: train a model with channels=1 on them")
    fonts = tuple(req.options["fonts"]) if req.options.get("fonts") else None
    corpus = req.options.get("text_corpus")
    train = TextLinesDataset(req.train_size, req.seed * 7 + 1, TextLinesConfig("train", fonts, height=height, corpus=corpus),
                             fresh_each_epoch=True, augment=LineAugment())
    val = TextLinesDataset(req.val_size, 10_007, TextLinesConfig("valid", fonts, height=height, corpus=corpus),
                           fresh_each_epoch=False)
    return _bundle(train, val, train.tokenizer, bucket=True)  # lines of similar widths share a batch


register_task(BuiltinTask("dtmf", "audio", "tiny", "telephone keypad tones (DTMF key strings, 8/16 kHz)", _dtmf))
# the action task trains 30 epochs or 30 minutes, whichever ends first, annealed over whichever it is
register_task(BuiltinTask("actions", "video", "video_motion_tiny", "moving sprites doing actions (varied look)",
                          _actions("varied"), budget=dict(epochs=30, max_minutes=30.0, time_schedule=True)))
register_task(BuiltinTask("actions_basic", "video", "video_tiny", "the action task in its original, narrower look",
                          _actions("basic")))
register_task(BuiltinTask("textlines", "image", "image_tiny", "printed text lines rendered with TrueType fonts",
                          _textlines))
