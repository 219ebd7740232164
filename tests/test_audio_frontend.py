"""The audio frontend's length arithmetic and padding behaviour."""
import pytest
import torch

from crnn.frontends.audio import AudioFrontend, AudioFrontendConfig


@pytest.mark.parametrize("subsample", [1, 2, 4])
def test_output_lengths_match_real_outputs(subsample):
    fe = AudioFrontend(AudioFrontendConfig(sample_rate=8000, n_mels=24, conv_channels=4, time_subsample=subsample))
    fe.eval()
    for n in [fe.min_samples(), fe.min_samples() + 1, 333, 800, 801, 1599, 4000, 4017]:
        x = torch.randn(1, n)
        y, lens = fe(x, torch.tensor([n]))
        assert y.shape[1] == int(lens[0]) == int(fe.output_lengths(torch.tensor([n]))[0]), n


def test_padding_does_not_change_valid_outputs(device):
    fe = AudioFrontend(AudioFrontendConfig(sample_rate=8000, n_mels=24, conv_channels=4, time_subsample=4))
    fe = fe.eval().to(device)
    a, b = torch.randn(3000, device=device), torch.randn(5000, device=device)
    alone, n_alone = fe(a[None], torch.tensor([3000], device=device))
    batch = torch.zeros(2, 7000, device=device)
    batch[0, :3000], batch[1, :5000] = a, b
    y, n = fe(batch, torch.tensor([3000, 5000], device=device))
    assert int(n[0]) == int(n_alone[0])
    torch.testing.assert_close(y[0, : n[0]], alone[0], atol=1e-5, rtol=1e-4)
    assert torch.all(y[0, n[0]:] == 0)


def test_features_are_normalised_per_utterance(device):
    fe = AudioFrontend(AudioFrontendConfig(sample_rate=8000, n_mels=16)).eval().to(device)
    x = torch.randn(1, 8000, device=device) * 0.01
    feats, n = fe.features(x, torch.tensor([8000], device=device))
    assert feats.shape[1] == int(n[0]) and feats.dtype == torch.float32
    torch.testing.assert_close(feats[0].mean(0).cpu(), torch.zeros(16), atol=1e-4, rtol=0)
    torch.testing.assert_close(feats[0].std(0, unbiased=False).cpu(), torch.ones(16), atol=1e-2, rtol=0)
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):  # features stay fp32 under autocast
        feats_amp, _ = fe.features(x, torch.tensor([8000], device=device))
    assert feats_amp.dtype == torch.float32
    torch.testing.assert_close(feats_amp, feats)


def test_global_stats_are_fitted_and_used(device):
    fe = AudioFrontend(AudioFrontendConfig(sample_rate=8000, n_mels=16, normalize="global")).eval().to(device)
    x = torch.randn(4, 8000, device=device) * 0.3
    fe.fit_global_stats(x, torch.full((4,), 8000, device=device))
    feats, _ = fe.features(x, torch.full((4,), 8000, device=device))
    assert abs(float(feats.mean())) < 0.05
    assert not torch.allclose(fe.global_std, torch.ones(16, device=device))


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="time_subsample"):
        AudioFrontend(AudioFrontendConfig(time_subsample=3))
    with pytest.raises(TypeError, match="unknown audio frontend arguments"):
        AudioFrontend.from_args({"n_melz": 3})


def _peak_band(fe: AudioFrontend, wave: torch.Tensor, warp: torch.Tensor | None) -> int:
    return int(fe.log_mel(wave[None], warp)[0].mean(0).argmax())


def test_vtlp_moves_a_tone_by_the_warp_factor_and_keeps_the_band_edges():
    fe = AudioFrontend(AudioFrontendConfig(sample_rate=16000, n_mels=80, vtlp=0.2))
    t = torch.arange(16000) / 16000
    tone = torch.sin(2 * torch.pi * 1000 * t)
    mel_hz = fe.mel.mel_scale.fb.argmax(0) * 16000 / fe.n_fft  # (n_mels,) each band's peak frequency
    assert _peak_band(fe, tone, torch.ones(1)) == _peak_band(fe, tone, None)
    for alpha in (0.85, 1.15):
        band = _peak_band(fe, tone, torch.tensor([alpha]))
        assert float(mel_hz[band]) == pytest.approx(1000 * alpha, rel=0.05)
    warped = fe.warp_frequencies(torch.tensor([0.8, 1.0, 1.2]))
    assert torch.all(warped[:, 0] == 0) and torch.allclose(warped[:, -1], torch.full((3,), 8000.0))
    assert torch.all(warped.diff(dim=1) > 0)  # monotonic: no band folds onto another
    torch.testing.assert_close(fe.warped_filterbank(torch.ones(1))[0], fe.mel.mel_scale.fb)


def test_vtlp_is_training_only_and_draws_a_factor_per_utterance():
    fe = AudioFrontend(AudioFrontendConfig(sample_rate=8000, n_mels=24, vtlp=0.1))
    t = torch.arange(8000) / 8000
    x = torch.sin(2 * torch.pi * 700 * t).repeat(2, 1)  # the same tone twice
    lens = torch.tensor([8000, 8000])
    fe.eval()
    a, _ = fe.features(x, lens)
    b, _ = fe.features(x, lens)
    assert torch.equal(a, b) and torch.equal(a[0], a[1])
    fe.train()
    torch.manual_seed(0)
    c, _ = fe.features(x, lens)
    assert not torch.allclose(c[0], c[1], atol=1e-3)  # two utterances, two warps
    with pytest.raises(ValueError, match="vtlp"):
        AudioFrontend(AudioFrontendConfig(vtlp=0.6))
