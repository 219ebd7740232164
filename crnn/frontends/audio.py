"""Audio frontend: log-mel features on the model's device + a DeepSpeech2-style Conv2d stack."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torchaudio

from crnn.cells.base import exporting
from crnn.frontends import config_from_args, register_frontend
from crnn.lengths import conv_out_length, length_mask


@dataclass
class AudioFrontendConfig:
    sample_rate: int = 16000      # model's sample rate; readers resample every file to it
    n_mels: int = 80              # mel bands
    win_ms: float = 25.0          # analysis window
    hop_ms: float = 10.0          # frame shift before subsampling
    normalize: str = "utterance"  # "utterance" (per utterance and band), "global" (stored stats) or "none"
    conv_channels: int = 32       # channels of each Conv2d layer
    time_subsample: int = 2       # 2 or 4: overall time stride of the conv stack
    spec_augment: bool = False    # SpecAugment masking (training mode only)
    freq_masks: int = 2           # SpecAugment: number of frequency masks ...
    freq_mask_width: int = 10     # ... of at most this many bands
    time_masks: int = 2           # SpecAugment: number of time masks ...
    time_mask_width: int = 20     # ... of at most this many frames
    vtlp: float = 0.0             # vocal tract length perturbation (training mode only): each utterance's
                                  # frequency axis warped by a factor drawn in [1 - vtlp, 1 + vtlp]; 0 = off
    vtlp_boundary_hz: float = 4800.0  # VTLP warps linearly up to about here, then bends to keep Nyquist fixed


@register_frontend("audio", modality="audio")
class AudioFrontend(nn.Module):
    """Waveform -> [VTLP] log-mel -> normalise -> [SpecAugment] -> 2 x (Conv2d, BN, ReLU) -> (B, T', D).

    Features are computed without centring (``center=False``), so a frame never reads samples past
    an utterance's end and padding a batch never changes valid outputs.

    Args:
        cfg: AudioFrontendConfig.
    """

    def __init__(self, cfg: AudioFrontendConfig):
        super().__init__()
        if cfg.time_subsample not in (1, 2, 4):
            raise ValueError(f"time_subsample must be 1, 2 or 4, got {cfg.time_subsample}")
        if not 0.0 <= cfg.vtlp < 0.5:
            raise ValueError(f"vtlp must be in [0, 0.5), got {cfg.vtlp}")
        if cfg.normalize not in ("utterance", "global", "none"):
            raise ValueError(f"normalize must be 'utterance', 'global' or 'none', got {cfg.normalize!r}")
        self.cfg = cfg
        self.win = int(round(cfg.sample_rate * cfg.win_ms / 1000))
        self.hop = int(round(cfg.sample_rate * cfg.hop_ms / 1000))
        # center=False frames span n_fft samples (the window is zero-padded to n_fft)
        self.n_fft = n_fft = 1 << (self.win - 1).bit_length()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=cfg.sample_rate, n_fft=n_fft, win_length=self.win, hop_length=self.hop,
            n_mels=cfg.n_mels, center=False, power=2.0,
        )
        self.register_buffer("global_mean", torch.zeros(cfg.n_mels))
        self.register_buffer("global_std", torch.ones(cfg.n_mels))
        self.freq_mask = torchaudio.transforms.FrequencyMasking(cfg.freq_mask_width, iid_masks=True)
        self.time_mask = torchaudio.transforms.TimeMasking(cfg.time_mask_width, iid_masks=True)

        # Time strides per conv layer: x4 -> (2, 2), x2 -> (2, 1), x1 -> (1, 1). Frequency halves twice.
        t_strides = {1: (1, 1), 2: (2, 1), 4: (2, 2)}[cfg.time_subsample]
        self.time_strides = t_strides
        c = cfg.conv_channels
        self.convs = nn.ModuleList()
        in_ch, f = 1, cfg.n_mels
        for ts in t_strides:
            self.convs.append(
                nn.Sequential(
                    nn.Conv2d(in_ch, c, kernel_size=3, stride=(ts, 2), padding=1, bias=False),
                    nn.BatchNorm2d(c),
                    nn.ReLU(inplace=True),
                )
            )
            in_ch, f = c, (f + 2 - 3) // 2 + 1
        self.output_size = c * f

    def prepare_export(self) -> None:
        """Hold the exported log-mel's constants as buffers, so a graph gets them as constants."""
        device = self.global_mean.device
        folded = self._folded_dft()
        if folded is None:
            self.register_buffer("dft_basis", self._dft_basis().to(device), persistent=False)
            return
        self.register_buffer("fold_cos", folded["cos"].to(device), persistent=False)
        self.register_buffer("fold_sin", folded["sin"].to(device), persistent=False)
        self.fold_pairs, self.fold_self = folded["pairs"], folded["self"]  # Python ints: graph constants

    def _padded_window(self) -> torch.Tensor:
        """(n_fft,) float64: the analysis window centred in the n_fft frame, as torch.stft pads it."""
        window = self.mel.spectrogram.window.double()
        left = (self.n_fft - window.numel()) // 2
        return nn.functional.pad(window, (left, self.n_fft - window.numel() - left))

    def _dft_basis(self) -> torch.Tensor:
        """(2 * n_freq, 1, win) windowed cos/sin rows over the window's own samples (the n_fft frame's
        zero-padded edges are left out: they cost a fifth of the products and add nothing): a Conv1d
        with them, started ``(n_fft - win) // 2`` samples in, is the STFT (real, imaginary)."""
        window = self.mel.spectrogram.window.double()  # (win,) centred in n_fft, as torch.stft does
        left = (self.n_fft - window.numel()) // 2
        n = torch.arange(left, left + window.numel(), dtype=torch.float64)
        k = torch.arange(self.n_fft // 2 + 1, dtype=torch.float64)[:, None]
        angle = 2 * torch.pi * ((k * n) % self.n_fft) / self.n_fft  # (n_freq, win); modulo keeps it exact
        basis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window  # (2 * n_freq, win)
        return basis.float().unsqueeze(1)

    def _folded_dft(self) -> dict | None:
        """The STFT with half the products, or None when the padded window is not symmetric.

        With ``w[n] == w[N - n]`` (a periodic Hann window centred in an N-point frame with N - win even),
        ``cos(2 pi k n / N)`` is the same at n and N - n and ``sin`` changes sign, so
        ``Re X[k] = sum_n w[n] cos(.) (x[n] + x[N - n])`` and ``Im X[k] = -sum_n w[n] sin(.) (x[n] - x[N - n])``
        over half the frame (n = 0 and N / 2 are their own mirrors, with ``sin = 0``).

        Returns:
            ``pairs`` (first, last): the J paired offsets n = first .. last (each with N - n), ``self`` the
            S unpaired offsets (0 and N / 2 where the window is not zero), ``cos`` (J + S, n_freq) and
            ``sin`` (J, n_freq) windowed bases.
        """
        N = self.n_fft
        w = self._padded_window()
        if not torch.allclose(w[1:], w[1:].flip(0), rtol=0.0, atol=1e-6):  # w[n] == w[N - n], to float32 rounding
            return None
        nonzero = [n for n in range(1, N // 2) if w[n] != 0]
        lo = torch.arange(nonzero[0], N // 2)  # a window is zero only at its ends: one run of offsets
        own = torch.tensor([n for n in (0, N // 2) if w[n] != 0], dtype=torch.long)
        k = torch.arange(N // 2 + 1, dtype=torch.float64)[None]  # (1, F)

        def angle(n: torch.Tensor) -> torch.Tensor:  # (len(n), F); the modulo keeps it exact
            return 2 * torch.pi * ((n.double()[:, None] * k) % N) / N

        cos = torch.cat([torch.cos(angle(lo)) * w[lo, None], torch.cos(angle(own)) * w[own, None]])
        sin = -torch.sin(angle(lo)) * w[lo, None]
        return {"pairs": (int(lo[0]), N // 2 - 1), "self": own.tolist(), "cos": cos.float(), "sin": sin.float()}

    def warp_frequencies(self, alpha: torch.Tensor) -> torch.Tensor:
        """VTLP's piecewise-linear frequency warp (Jaitly & Hinton, 2013) of the STFT bins' frequencies.

        Frequencies below ``boundary * min(alpha, 1) / alpha`` are scaled by ``alpha``; above it the line
        bends so that the Nyquist frequency maps onto itself (no band is lost or invented).

        Args:
            alpha: (B,) warp factors, around 1.

        Returns:
            (B, n_freq) warped frequency of each bin, in Hz, within [0, sample_rate / 2].
        """
        nyquist = self.cfg.sample_rate / 2
        f = torch.linspace(0, nyquist, self.n_fft // 2 + 1, device=alpha.device)[None]  # (1, F)
        a = alpha.float()[:, None]  # (B, 1)
        knee = min(self.cfg.vtlp_boundary_hz, 0.9 * nyquist) * torch.clamp(a, max=1.0) / a  # (B, 1)
        high = nyquist - (nyquist - a * knee) / (nyquist - knee) * (nyquist - f)
        return torch.where(f <= knee, f * a, high).clamp(0, nyquist)

    def warped_filterbank(self, alpha: torch.Tensor) -> torch.Tensor:
        """(B,) warp factors -> (B, n_freq, n_mels) mel filterbanks read at the warped frequencies, so an
        STFT bin at ``f`` counts as energy at ``warp(f)`` (a shorter or longer vocal tract)."""
        fb = self.mel.mel_scale.fb  # (F, M)
        pos = self.warp_frequencies(alpha) / (self.cfg.sample_rate / self.n_fft)  # (B, F) fractional bins
        lo = pos.floor().long().clamp(max=fb.size(0) - 1)
        hi = (lo + 1).clamp(max=fb.size(0) - 1)
        frac = (pos - lo).unsqueeze(-1)  # (B, F, 1)
        return fb[lo] * (1 - frac) + fb[hi] * frac

    def mel_power(self, waveform: torch.Tensor, warp: torch.Tensor | None = None) -> torch.Tensor:
        """Waveform (B, S) -> mel power (B, n_mels, T) (``center=False``); ``warp`` (B,): VTLP factors.

        Exported graphs compute the same frames as matrix products: folded over the window's mirror
        symmetry (:meth:`_folded_dft`, half the products), else a Conv1d over a DFT basis. ONNX's own STFT
        operator runs 5x slower than either in ONNX Runtime 1.32 on a CPU; all agree to float32 rounding.
        """
        if warp is not None:
            power = self.mel.spectrogram(waveform)  # (B, F, T)
            return torch.einsum("bft,bfm->bmt", power, self.warped_filterbank(warp))
        if not exporting():
            return self.mel(waveform)
        if hasattr(self, "fold_cos"):
            return self._folded_mel_power(waveform)
        basis = getattr(self, "dft_basis", None)
        basis = self._dft_basis().to(waveform) if basis is None else basis
        left = (self.n_fft - basis.size(-1)) // 2  # the frame's first windowed sample
        right = self.n_fft - basis.size(-1) - left
        # Cropping both ends (a negative pad, no data-dependent slice) leaves exactly the n_fft frames.
        frames = nn.functional.conv1d(nn.functional.pad(waveform, (-left, -right)).unsqueeze(1), basis,
                                      stride=self.hop)  # (B, 2F, T)
        real, imag = frames.chunk(2, dim=1)
        power = real * real + imag * imag  # (B, n_freq, T)
        return torch.matmul(power.transpose(1, 2), self.mel.mel_scale.fb).transpose(1, 2)  # (B, n_mels, T)

    def _folded_mel_power(self, waveform: torch.Tensor) -> torch.Tensor:
        """Waveform (B, S), S >= n_fft -> mel power (B, n_mels, T): the exported STFT as two matrix
        products over mirrored sample pairs (:meth:`_folded_dft`), half the products of a DFT Conv1d."""
        first, last = self.fold_pairs  # pairs: offsets n in [first, last] and N - n
        T = (waveform.size(1) - self.n_fft) // self.hop + 1
        starts = (torch.arange(T, device=waveform.device) * self.hop).unsqueeze(1)  # (T, 1)
        n = torch.arange(first, last + 1, device=waveform.device)
        # Two gathers of each frame's samples n and N - n, (B, T, J) each: exported as GatherND reading
        # B samples at a time; a copy of every frame or a flip of its second half costs more.
        lo, hi = waveform[:, starts + n], waveform[:, starts + (self.n_fft - n)]
        even = lo + hi
        if self.fold_self:
            own = torch.tensor(self.fold_self, device=waveform.device)
            even = torch.cat([even, waveform[:, starts + own]], dim=2)  # (B, T, J + S)
        real, imag = torch.matmul(even, self.fold_cos), torch.matmul(lo - hi, self.fold_sin)  # (B, T, F)
        power = real * real + imag * imag
        return torch.matmul(power, self.mel.mel_scale.fb).transpose(1, 2)  # (B, n_mels, T)

    @classmethod
    def from_args(cls, args: dict) -> "AudioFrontend":
        return cls(config_from_args(AudioFrontendConfig, "audio", args))

    @property
    def frame_shift(self) -> float:
        """Seconds between consecutive output frames."""
        return self.cfg.hop_ms / 1000 * self.cfg.time_subsample

    def feature_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Samples (B,) -> log-mel frames (B,) (zero for inputs shorter than one window)."""
        return torch.clamp(torch.div(lengths - self.n_fft, self.hop, rounding_mode="floor") + 1, min=0)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Samples (B,) -> output frames (B,): the one place that knows this frontend's arithmetic."""
        n = self.feature_lengths(lengths)
        for ts in self.time_strides:
            n = conv_out_length(n, kernel=3, stride=ts, padding=1)
        return torch.clamp(n, min=0)

    def min_samples(self) -> int:
        """Shortest input (samples) that yields one output frame."""
        return self.n_fft

    def log_mel(self, waveform: torch.Tensor, warp: torch.Tensor | None = None) -> torch.Tensor:
        """Waveform (B, S) -> raw log-mel (B, T, n_mels), fp32, un-normalised; frames are exact
        (``center=False``), so a stream may compute them piece by piece as samples arrive. ``warp`` (B,):
        VTLP factors (training only)."""
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            if exporting():  # the same padding, with a symbolic length
                pad = waveform.new_zeros(waveform.size(0), torch.sym_max(0, self.n_fft - waveform.size(1)))
                waveform = torch.cat([waveform, pad], dim=1)
            elif waveform.size(1) < self.n_fft:  # too short for one frame: pad so shapes stay defined
                waveform = nn.functional.pad(waveform, (0, self.n_fft - waveform.size(1)))
            spec = self.mel_power(waveform.float(), warp)  # (B, n_mels, T)
            return torch.log(spec + 1e-6).transpose(1, 2)  # (B, T, n_mels)

    def normalize(self, feats: torch.Tensor, mean: torch.Tensor | None, var: torch.Tensor | None) -> torch.Tensor:
        """The one normalisation: ``"global"`` uses the stored statistics, ``"utterance"`` the given
        mean/variance (per utterance offline, running while streaming), ``"none"`` passes through."""
        if self.cfg.normalize == "global":
            return (feats - self.global_mean) / self.global_std
        if self.cfg.normalize == "utterance":
            return (feats - mean) / torch.sqrt(var + 1e-5)
        return feats

    def normalize_running(self, mel: torch.Tensor, stats: torch.Tensor,
                          valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Streaming normalisation of new log-mel frames (B, K, n_mels): ``"utterance"`` statistics are
        those of every valid frame heard so far, carried in ``stats`` (B, 3, n_mels) float64 (count, sum,
        sum of squares; zeros to start); ``valid`` (B, K) marks real frames (Default: all). Returns the
        normalised frames (fp32) and the updated statistics."""
        if self.cfg.normalize != "utterance":
            return self.normalize(mel, None, None), stats
        f64 = mel.double() if valid is None else mel.double() * valid.unsqueeze(-1)
        count = (torch.full(mel.shape[:2], 1.0, dtype=torch.float64, device=mel.device) if valid is None
                 else valid.double()).sum(1, keepdim=True).expand(-1, mel.size(-1))
        stats = stats + torch.stack([count, f64.sum(1), (f64 ** 2).sum(1)], dim=1)  # (B, 3, n_mels)
        n = stats[:, 0:1].clamp(min=1)
        mean = stats[:, 1:2] / n
        var = (stats[:, 2:3] / n - mean ** 2).clamp(min=0)
        return self.normalize(mel.double(), mean, var).float(), stats

    def features(self, waveform: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveform (B, S) -> normalised log-mel (B, T, n_mels), frame lengths (B,). Always fp32."""
        warp = None
        if self.training and self.cfg.vtlp > 0:
            warp = 1 + self.cfg.vtlp * (2 * torch.rand(waveform.size(0), device=waveform.device) - 1)
        feats = self.log_mel(waveform, warp)  # (B, T, n_mels)
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            n = self.feature_lengths(lengths)
            mask = length_mask(n, feats.size(1)).unsqueeze(-1)  # (B, T, 1)
            mean = var = None
            if self.cfg.normalize == "utterance":
                count = mask.sum(1, keepdim=True).clamp(min=1)
                mean = (feats * mask).sum(1, keepdim=True) / count
                var = (((feats - mean) * mask) ** 2).sum(1, keepdim=True) / count
            feats = self.normalize(feats, mean, var) * mask
        return feats, n

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """waveform (B, S), lengths (B,) in samples -> features (B, T', D), lengths (B,)."""
        feats, n = self.features(waveform, lengths)  # (B, T, F)
        if self.training and self.cfg.spec_augment:
            spec = feats.transpose(1, 2)  # (B, F, T) as torchaudio's maskers expect
            for _ in range(self.cfg.freq_masks):
                spec = self.freq_mask(spec)
            for _ in range(self.cfg.time_masks):
                spec = self.time_mask(spec)
            feats = spec.transpose(1, 2) * length_mask(n, feats.size(1)).unsqueeze(-1)
        return self.convolve(feats, n)

    def convolve(self, feats: torch.Tensor, n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The conv stack alone: log-mel (B, T, n_mels), frames (B,) -> (B, T', D), lengths (B,)."""
        x = feats.unsqueeze(1)  # (B, 1, T, F)
        for conv, ts in zip(self.convs, self.time_strides):
            x = conv(x)  # (B, C, T/ts, F/2)
            n = conv_out_length(n, kernel=3, stride=ts, padding=1)
            x = x * length_mask(n, x.size(2))[:, None, :, None]  # keep padding at zero for the next conv
        B, C, T, F = x.shape
        x = x.permute(0, 2, 1, 3).reshape(B, T, C * F)  # (B, T', C*F)
        return x, n

    @torch.no_grad()
    def fit_global_stats(self, waveform: torch.Tensor, lengths: torch.Tensor) -> None:
        """Set the "global" normalisation statistics from a batch of training audio."""
        feats, n = self.log_mel(waveform), self.feature_lengths(lengths)
        mask = length_mask(n, feats.size(1))
        valid = feats[mask]  # (N, F)
        self.global_mean.copy_(valid.mean(0))
        self.global_std.copy_(valid.std(0).clamp(min=1e-3))
