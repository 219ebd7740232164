"""Video: clip / frame-folder / feature-file reader (``reader``), the manifest dataset and inference
loader (``dataset``) and clip augmentation (``augment``). Registers the video and feature readers with
``crnn.data.media``."""
from crnn.data.media import register_reader
from crnn.data.video.dataset import ClipLoader
from crnn.data.video.reader import (FOLDER_FPS, VideoReadError, augment_indices, center_crop, codec_degrade,
                                    fit_frames, hflip, list_frames, random_crop, read_features, read_video,
                                    resample_indices, resize_frames, temporal_resample, video_fps, write_video)

register_reader("video", ClipLoader)
register_reader("features", ClipLoader)

__all__ = ["ClipLoader", "FOLDER_FPS", "VideoReadError", "augment_indices", "center_crop", "codec_degrade",
           "fit_frames", "hflip", "list_frames", "random_crop", "read_features", "read_video", "resample_indices",
           "resize_frames", "temporal_resample", "video_fps", "write_video"]
