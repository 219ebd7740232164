"""``crnn train`` flags of the clip augmentation for video frontends (``ClipAugmentConfig``, one flag per field)."""
from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

HELP = {
    "brightness": "brightness factor in [1-X, 1+X]",
    "contrast": "contrast factor in [1-X, 1+X]",
    "saturation": "saturation factor in [1-X, 1+X]",
    "hue": "hue shift in [-X, X] of the colour circle (<= 0.5)",
    "crop": "random resized crop keeping an area share in [1-X, 1]",
    "scale": "zoom factor in [1-X, 1+X]",
    "translate": "shift by up to this share of the frame",
    "blur": "probability of a Gaussian blur",
    "noise": "pixel noise std up to this (pixels in 0..1)",
    "drop": "drop each frame with this probability (never two in a row)",
    "repeat": "show each frame twice with this probability",
    "channel_shuffle": "probability of permuting the colour channels of a clip",
    "grayscale": "probability of a grey clip",
    "invert": "probability of a negative clip",
}


def add_clip_augment_args(p: argparse.ArgumentParser) -> None:
    from crnn.data.video.augment import PRESETS, ClipAugmentConfig

    g = p.add_argument_group("clip augmentation (video frontends, training only; same draw for every frame of a clip, "
                             "on the GPU when training there)")
    g.add_argument("--clip-augment", choices=sorted(PRESETS), help="a preset; the flags below override its fields")
    for f in fields(ClipAugmentConfig):
        flag = "--clip-" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            g.add_argument(flag, action="store_true", default=None,
                           help="mirror half of the clips, swapping left/right labels (refused where a side "
                                "has no counterpart)")
        else:
            g.add_argument(flag, type=float, metavar="X", help=HELP.get(f.name))


def clip_augment_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The ``clip_augment`` dict of a TrainConfig: the preset's fields, then the flags given."""
    from crnn.data.video.augment import PRESETS, ClipAugmentConfig

    out = dict(PRESETS[args.clip_augment]) if getattr(args, "clip_augment", None) else {}
    for f in fields(ClipAugmentConfig):
        value = getattr(args, "clip_" + f.name, None)
        if value is not None:
            out[f.name] = value
    ClipAugmentConfig.from_dict(out)  # out-of-range values fail here, before any data is read
    return out
