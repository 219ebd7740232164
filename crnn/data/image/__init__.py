"""Images: text-line reader (``reader``). Lines read as float32 (C, H, W) at a fixed height.
Registers the image reader with ``crnn.data.media`` (settings ``height``, ``channels`` from the frontend)."""
from typing import Callable

import torch

from crnn.data.image.reader import (LINE_IMAGE_EXTENSIONS, MAX_PIXELS, ImageReadError, read_line_image)
from crnn.data.media import register_reader


def image_reader(reader_args: dict) -> Callable[[str], torch.Tensor]:
    """path -> float32 (C, H, W) at the frontend's ``height`` (default 32) and ``channels`` (default 1)."""
    height, channels = int(reader_args.get("height", 32)), int(reader_args.get("channels", 1))
    return lambda path: read_line_image(path, height=height, channels=channels)


register_reader("image", image_reader)

__all__ = ["ImageReadError", "LINE_IMAGE_EXTENSIONS", "MAX_PIXELS", "image_reader", "read_line_image"]
