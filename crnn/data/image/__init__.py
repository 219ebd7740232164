"""Images: text-line reader (``reader``). Lines read as float32 (C, H, W) at a fixed height."""
from crnn.data.image.reader import (LINE_IMAGE_EXTENSIONS, MAX_PIXELS, ImageReadError, read_line_image)

__all__ = ["ImageReadError", "LINE_IMAGE_EXTENSIONS", "MAX_PIXELS", "read_line_image"]
