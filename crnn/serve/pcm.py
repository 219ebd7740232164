"""Raw PCM as a stream sends it: 16-bit little-endian mono bytes in pieces of any size, resampled on the fly.

``PcmDecoder`` turns byte pieces into float samples (an odd trailing byte waits for the next piece);
``StreamResampler`` converts a stream's rate chunk by chunk with torchaudio's windowed-sinc kernel, giving
the same samples as resampling the whole signal at once (``torchaudio.functional.resample``).
"""
from __future__ import annotations

import math

import numpy as np
import torch

# A resampling kernel is (new / g) x (orig / g) taps for g = gcd(orig, new): rates sharing no large factor
# with the model's (16001 Hz -> 16000 Hz) would need a huge one; such streams are refused.
MAX_REDUCED_RATE = 4000


class PcmDecoder:
    """16-bit little-endian mono PCM bytes -> float32 samples in [-1, 1)."""

    def __init__(self):
        self._odd = b""

    def decode(self, data: bytes) -> torch.Tensor:
        """Samples (S,) of ``data`` (with the byte a previous piece left over)."""
        data = self._odd + bytes(data)
        whole = len(data) // 2 * 2
        self._odd = data[whole:]
        return torch.from_numpy(np.frombuffer(data[:whole], dtype="<i2").astype(np.float32) / 32768.0)


def check_rate(rate: object, target: int) -> int:
    """A stream's declared sample rate as an int, or ValueError saying why it cannot be used."""
    from crnn.data.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate != int(rate):
        raise ValueError(f"sample_rate must be a whole number of Hz, got {rate!r}")
    rate = int(rate)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ValueError(f"sample_rate {rate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz")
    g = math.gcd(rate, target)
    if max(rate, target) // g > MAX_REDUCED_RATE:
        raise ValueError(f"sample_rate {rate} Hz shares too small a factor with the model's {target} Hz to "
                         "resample on the fly; send a common rate (8000, 16000, 22050, 44100, 48000 Hz)")
    return rate


class StreamResampler:
    """Chunked resampling from ``orig`` to ``new`` Hz, equal to resampling the whole stream at once.

    Output frame ``f`` (``new / g`` samples) reads input ``[f * orig / g - width, ... + kernel length)``; a
    chunk emits the frames whose input has all arrived, and ``finish`` the rest (zeros past the end, as
    the whole-signal resampler pads). Memory holds one kernel's span of input.

    Args:
        orig: the stream's rate.
        new: the model's rate.
    """

    def __init__(self, orig: int, new: int):
        import torchaudio.transforms as T

        self.identity = orig == new
        g = math.gcd(orig, new)
        self.orig, self.new = orig // g, new // g
        if not self.identity:
            r = T.Resample(orig, new)
            self.kernel, self.width = r.kernel, r.width  # (new/g, 1, K), taps on each side
        self.buf = torch.zeros(0)
        self.base = 0  # absolute input index of buf[0]
        self.total = 0  # input samples received
        self.next_frame = 0  # first output frame not yet emitted

    def accept(self, x: torch.Tensor) -> torch.Tensor:
        """Input samples (S,) -> the output samples (S',) now complete."""
        if self.identity:
            return x
        self.buf = torch.cat([self.buf, x.float()])
        self.total += x.numel()
        K = self.kernel.size(-1)
        end = (self.total + self.width - K) // self.orig + 1  # frames whose whole input has arrived
        return self._frames(end, final=False)

    def finish(self) -> torch.Tensor:
        """The last output samples (the input's end padded with zeros)."""
        if self.identity:
            return torch.zeros(0)
        target = math.ceil(self.new * self.total / self.orig)
        out = self._frames(math.ceil(target / self.new), final=True)
        return out[: max(0, target - (self.next_frame * self.new - out.numel()))]

    def _frames(self, end: int, final: bool) -> torch.Tensor:
        f0 = self.next_frame
        if end <= f0:
            return torch.zeros(0)
        K = self.kernel.size(-1)
        a = f0 * self.orig - self.width  # absolute input index of frame f0's first tap
        b = (end - 1) * self.orig - self.width + K  # one past the last frame's last tap
        seg = self.buf[max(a, self.base) - self.base: b - self.base]
        seg = torch.nn.functional.pad(seg, (max(0, self.base - a), (b - a) - seg.numel() - max(0, self.base - a)))
        out = torch.nn.functional.conv1d(seg[None, None], self.kernel, stride=self.orig)  # (1, new, frames)
        out = out.transpose(1, 2).reshape(-1)[: (end - f0) * self.new]
        self.next_frame = end
        keep = max(self.base, end * self.orig - self.width)  # frame `end` reads from here on
        self.buf = self.buf[keep - self.base:]
        self.base = keep
        return out
