"""Waveform augmentation: speed factors, SNR of added noise, noise colours, noise files, gain."""
from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from crnn.data.augment import AugmentConfig, WaveAugment, colored_noise

SR = 16000


def sine(seconds: float = 1.0, freq: float = 300.0, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(SR * seconds)) / SR
    return amp * torch.sin(2 * math.pi * freq * t)


def snr_db(clean: torch.Tensor, noisy: torch.Tensor) -> float:
    return float(10 * torch.log10(clean.pow(2).mean() / (noisy - clean).pow(2).mean()))


def test_off_by_default_is_identity():
    cfg = AugmentConfig()
    assert not cfg.active
    x = sine()
    assert torch.equal(WaveAugment(cfg, SR)(x), x)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_changes_length_and_pitch(factor):
    aug = WaveAugment(AugmentConfig(speed_perturb=True, speed_factors=(factor,)), SR)
    x = sine(freq=400.0)
    y = aug(x)
    assert y.numel() == pytest.approx(x.numel() / factor, abs=2)
    peak_hz = int(torch.fft.rfft(y).abs().argmax()) * SR / y.numel()
    assert peak_hz == pytest.approx(400.0 * factor, abs=3)  # resample-based: pitch moves with speed


@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0])
def test_noise_at_requested_snr(snr):
    aug = WaveAugment(AugmentConfig(noise_snr=(snr, snr), noise_prob=1.0), SR)
    x = sine()
    y = aug(x)
    assert y.shape == x.shape
    assert snr_db(x, y) == pytest.approx(snr, abs=0.1)


def test_noise_probability_and_snr_range():
    aug = WaveAugment(AugmentConfig(noise_snr=(5.0, 15.0), noise_prob=0.5), SR)
    x = sine(0.25)
    g = torch.Generator().manual_seed(0)
    outs = [aug(x, generator=g) for _ in range(200)]
    noisy = [snr_db(x, y) for y in outs if not torch.equal(y, x)]
    assert 70 < len(noisy) < 130  # about half
    assert all(4.9 < s < 15.1 for s in noisy) and max(noisy) - min(noisy) > 5


def _spectral_slope(noise: torch.Tensor) -> float:
    """Slope of log power vs log frequency over 50 Hz .. 4 kHz (0 white, -1 pink, -2 brown)."""
    p = torch.fft.rfft(noise).abs().pow(2)
    f = torch.fft.rfftfreq(noise.numel(), 1 / SR)
    band = (f > 50) & (f < 4000)
    return float(np.polyfit(np.log(f[band].numpy()), np.log(p[band].numpy()), 1)[0])


@pytest.mark.parametrize("color,slope", [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_noise_colours(color, slope):
    n = colored_noise(4 * SR, color, torch.Generator().manual_seed(1))
    assert float(n.pow(2).mean()) == pytest.approx(1.0, rel=1e-3)
    assert _spectral_slope(n) == pytest.approx(slope, abs=0.15)


def test_noise_from_folder(tmp_path):
    # A hum at 1 kHz recorded at 8 kHz, shorter than the utterance: it is resampled and looped.
    t = np.arange(4000) / 8000
    sf.write(tmp_path / "hum.wav", (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), 8000)
    aug = WaveAugment(AugmentConfig(noise_snr=(10.0, 10.0), noise_prob=1.0, noise_dir=str(tmp_path)), SR)
    x = sine(1.0, freq=300.0)
    y = aug(x)
    assert snr_db(x, y) == pytest.approx(10.0, abs=0.1)
    residual = torch.fft.rfft(y - x).abs()
    assert int(residual.argmax()) * SR / y.numel() == pytest.approx(1000.0, abs=2)


def test_gain_range():
    aug = WaveAugment(AugmentConfig(gain=(-6.0, -6.0)), SR)
    x = sine()
    assert torch.allclose(aug(x), x * 10 ** (-6 / 20), atol=1e-6)


def test_bad_config():
    with pytest.raises(ValueError, match="noise_snr"):
        WaveAugment(AugmentConfig(noise_snr=(20.0, 5.0)), SR)
    with pytest.raises(ValueError, match="colour"):
        WaveAugment(AugmentConfig(noise_snr=(5.0, 20.0), noise_colors=("blue",)), SR)
    with pytest.raises(FileNotFoundError, match="noise folder"):
        WaveAugment(AugmentConfig(noise_snr=(5.0, 20.0), noise_dir="/nonexistent/noise"), SR)


def test_narrowband_removes_the_upper_band_only():
    import torch

    from crnn.data.augment import AugmentConfig, WaveAugment

    sr = 16000
    t = torch.arange(sr) / sr
    low, high = torch.sin(2 * torch.pi * 1000 * t), torch.sin(2 * torch.pi * 6000 * t)
    aug = WaveAugment(AugmentConfig(narrowband_prob=1.0), sr)
    out = aug(low + high)
    assert out.shape == low.shape
    spec = torch.fft.rfft(out).abs()
    assert spec[6000] < 0.01 * spec[1000]  # 6 kHz is gone, 1 kHz kept
    torch.testing.assert_close(aug(low)[2000:-2000], low[2000:-2000], atol=0.02, rtol=0)
