"""Waveform augmentation: speed factors, noise (SNR, colours, files), gain, narrowband, reverberation,
competing speech, EQ and codec round trips, measured on the signals they produce."""
from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from crnn.data.audio.augment import AugmentConfig, WaveAugment, colored_noise

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

    from crnn.data.audio.augment import AugmentConfig, WaveAugment

    sr = 16000
    t = torch.arange(sr) / sr
    low, high = torch.sin(2 * torch.pi * 1000 * t), torch.sin(2 * torch.pi * 6000 * t)
    aug = WaveAugment(AugmentConfig(narrowband_prob=1.0), sr)
    out = aug(low + high)
    assert out.shape == low.shape
    spec = torch.fft.rfft(out).abs()
    assert spec[6000] < 0.01 * spec[1000]  # 6 kHz is gone, 1 kHz kept
    torch.testing.assert_close(aug(low)[2000:-2000], low[2000:-2000], atol=0.02, rtol=0)


# ---------------------------------------------------------------- recording conditions
from crnn.data.audio.dataset import AudioDataset, speech_tokenizer  # noqa: E402
from crnn.data.audio.augment import CODECS, simulated_rir  # noqa: E402


def decay_time(response: torch.Tensor, sr: int = SR) -> float:
    """RT60 estimated from the Schroeder backward-integrated energy curve (the -5 to -25 dB slope, x3)."""
    energy = response.double().pow(2).flip(0).cumsum(0).flip(0)
    edc = 10 * torch.log10(energy / energy[0])
    t5, t25 = int((edc > -5).sum()), int((edc > -25).sum())
    return 3 * (t25 - t5) / sr


def band_energy(x: torch.Tensor, lo: float, hi: float, sr: int = SR) -> float:
    spec = torch.fft.rfft(x.double()).abs().pow(2)
    f = torch.fft.rfftfreq(x.numel(), 1 / sr)
    return float(spec[(f >= lo) & (f < hi)].sum())


def chirp(seconds: float = 1.0) -> torch.Tensor:
    """Exponential sweep 100 Hz -> 7.5 kHz: energy in every band the augmentations touch."""
    t = torch.arange(int(SR * seconds), dtype=torch.float64) / SR
    k = math.log(7500 / 100)
    return (0.5 * torch.sin(2 * math.pi * 100 * seconds / k * (torch.exp(t / seconds * k) - 1))).float()


@pytest.mark.parametrize("rt60", [0.3, 0.8])
def test_reverb_raises_the_decay_time_of_an_impulse(rt60):
    impulse = torch.zeros(2 * SR)
    impulse[100] = 1.0
    g = torch.Generator().manual_seed(0)
    aug = WaveAugment(AugmentConfig(reverb_prob=1.0, reverb_rt60=(rt60, rt60)), SR)
    out = aug(impulse, g)
    assert out.shape == impulse.shape and torch.isfinite(out).all()
    assert int(out.abs().argmax()) == 100  # the direct path stays where the speech was
    assert decay_time(out[100:]) == pytest.approx(rt60, rel=0.25)
    assert decay_time(impulse[100:]) < 0.01


def test_reverb_from_recorded_responses(tmp_path):
    rir = simulated_rir(0.5, SR, generator=torch.Generator().manual_seed(1))
    delayed = torch.cat([torch.zeros(400), 0.3 * rir])  # a recording starts before the direct sound arrives
    sf.write(tmp_path / "room.wav", delayed.numpy(), SR, subtype="FLOAT")
    aug = WaveAugment(AugmentConfig(reverb_prob=1.0, rir_dir=str(tmp_path)), SR)
    impulse = torch.zeros(SR)
    impulse[0] = 1.0
    out = aug(impulse, torch.Generator().manual_seed(0))
    assert int(out.abs().argmax()) == 0  # aligned on its direct path: no delay against the transcript
    n = rir.numel()  # the response of an impulse is the (aligned) recorded response, then silence
    torch.testing.assert_close(out[:n] / out.norm(), rir / rir.norm(), atol=1e-4, rtol=0)
    assert float(out[n:].abs().max()) < 1e-4
    with pytest.raises(FileNotFoundError, match="impulse response folder"):
        WaveAugment(AugmentConfig(reverb_prob=1.0, rir_dir=str(tmp_path / "missing")), SR)


@pytest.mark.parametrize("name", sorted(CODECS))
def test_codec_round_trip_band_limits_and_keeps_the_signal(name):
    x = chirp()
    out = WaveAugment(AugmentConfig(), SR).codec(x, name)
    assert out.shape == x.shape and torch.isfinite(out).all()
    above = band_energy(out, 4200, 8000) / band_energy(x, 4200, 8000)
    assert above < 0.1, f"{name}: {above:.3f} of the energy above 4.2 kHz kept"
    below = band_energy(out, 300, 3000) / band_energy(x, 300, 3000)
    assert 0.3 < below < 2.0, f"{name}: {below:.3f} of the 0.3-3 kHz energy kept"
    # Aligned with the input (codec delay removed): the low band correlates sample by sample.
    lowpass = lambda s: torch.fft.irfft(torch.fft.rfft(s) * (torch.fft.rfftfreq(s.numel(), 1 / SR) < 3000), n=s.numel())
    a, b = lowpass(x)[2000:12000], lowpass(out)[2000:12000]
    assert float(np.corrcoef(a.numpy(), b.numpy())[0, 1]) > 0.8


def test_eq_changes_the_spectral_tilt():
    x = colored_noise(SR, "white", torch.Generator().manual_seed(0))
    aug = WaveAugment(AugmentConfig(), SR)
    tilt = lambda s: 10 * math.log10(band_energy(s, 3000, 6000) / band_energy(s, 250, 500))
    for tilt_db, sign in ((3.0, 1), (-3.0, -1)):
        out = aug.equalize(x, tilt_db, peak_hz=1000.0, peak_db=0.0)
        # about 3.5 octaves between the bands' centres: ~ +-10 dB
        assert sign * (tilt(out) - tilt(x)) == pytest.approx(3.5 * 3.0, abs=2.0)
        assert out.pow(2).mean() == pytest.approx(float(x.pow(2).mean()), rel=1e-3)  # level unchanged
    notch = aug.equalize(x, 0.0, peak_hz=1000.0, peak_db=-10.0)
    drop = 10 * math.log10(band_energy(notch, 900, 1100) / band_energy(x, 900, 1100))
    assert drop < -7.0


def test_babble_mixes_other_utterances_at_the_asked_snr(tmp_path):
    talkers = [sine(0.5, 500.0), sine(0.6, 1100.0), sine(0.9, 1700.0)]  # three "talkers", each in its own band
    rows = []
    for i, wav in enumerate(talkers):
        sf.write(tmp_path / f"u{i}.wav", wav.numpy(), SR)
        rows.append({"path": str(tmp_path / f"u{i}.wav"), "text": "one"})
    aug = WaveAugment(AugmentConfig(babble_prob=1.0, babble_snr=(10.0, 10.0), babble_speakers=1), SR)
    AudioDataset(rows, speech_tokenizer(["one"]), SR, augment=aug)  # the dataset binds itself as the source
    x = sine(1.0, 300.0)
    for seed in range(4):
        out = aug(x, torch.Generator().manual_seed(seed))
        assert out.shape == x.shape and torch.isfinite(out).all()
        assert snr_db(x, out) == pytest.approx(10.0, abs=0.1)
        added = out - x  # another utterance, not noise: its energy sits in one talker's band
        total = band_energy(added, 0, SR / 2)
        assert max(band_energy(added, f - 20, f + 20) for f in (500, 1100, 1700)) > 0.9 * total
    # Without a source (no dataset bound) the signal is left alone rather than mixed with anything else.
    assert torch.equal(WaveAugment(AugmentConfig(babble_prob=1.0), SR)(x), x)


def test_everything_together_is_finite_same_length_and_seeded():
    cfg = AugmentConfig(speed_perturb=True, speed_factors=(1.0,), noise_snr=(5.0, 20.0), noise_prob=1.0, gain=(-6.0, 6.0),
                        narrowband_prob=0.5, reverb_prob=1.0, eq_prob=1.0, codec_prob=1.0, babble_prob=1.0)
    aug = WaveAugment(cfg, SR)
    aug.bind_speech_source(lambda g: sine(0.4, 900.0))
    x = chirp(1.2)
    a = aug(x, torch.Generator().manual_seed(5))
    b = aug(x, torch.Generator().manual_seed(5))
    c = aug(x, torch.Generator().manual_seed(6))
    assert a.shape == x.shape and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("bad", [dict(reverb_prob=1.5), dict(reverb_rt60=(0.0, 0.5)), dict(codecs=("aac",)),
                                 dict(babble_snr=(20.0, 10.0)), dict(babble_speakers=0), dict(eq_prob=-0.1)])
def test_bad_recording_condition_config(bad):
    with pytest.raises(ValueError):
        WaveAugment(AugmentConfig(**bad), SR)
