"""Audio: file reader (``reader``), long-file blocks (``blocks``), the manifest dataset (``dataset``) and
waveform augmentation (``augment``). Registers the audio reader with ``crnn.data.media``."""
from crnn.data.audio.reader import (MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, AudioReadError, audio_duration, read_audio,
                                    read_stretch, resample, wav_shortfall, write_audio)
from crnn.data.media import register_reader


class AudioReader:
    """path -> (S,) float32 mono waveform at ``sample_rate`` (picklable, for DataLoader workers)."""

    def __init__(self, sample_rate: int):
        self.sample_rate = int(sample_rate)

    def __call__(self, path: str):
        return read_audio(path, self.sample_rate)


def _audio_reader(reader_args: dict) -> AudioReader:
    return AudioReader(int(reader_args["sample_rate"]))


register_reader("audio", _audio_reader)

__all__ = ["AudioReadError", "AudioReader", "MAX_SAMPLE_RATE", "MIN_SAMPLE_RATE", "audio_duration", "read_audio",
           "read_stretch", "resample", "wav_shortfall", "write_audio"]
