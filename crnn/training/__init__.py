"""Training: the loop, checkpoints, distributed plumbing."""
from crnn.training.config import TrainConfig
from crnn.training.trainer import train

__all__ = ["TrainConfig", "train"]
