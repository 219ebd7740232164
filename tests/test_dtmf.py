"""The built-in DTMF generator follows the keypad standard and is reproducible."""
import numpy as np
import torch

from crnn.data.builtin.dtmf import COL_HZ, KEY_TONES, KEYS, ROW_HZ, DTMFDataset, DTMFSpec, generate_utterance


def dominant_tones(x: np.ndarray, sr: int) -> tuple[float, float]:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / sr)
    low = freqs[(freqs > 650) & (freqs < 1000)][np.argmax(spec[(freqs > 650) & (freqs < 1000)])]
    high = freqs[(freqs > 1150) & (freqs < 1700)][np.argmax(spec[(freqs > 1150) & (freqs < 1700)])]
    return low, high


def test_each_key_is_its_row_and_column_tone():
    spec = DTMFSpec(key_ms=(200, 200), snr_db=(30, 30), edge_ms=(0, 1), freq_dev=0.0)
    for key in KEYS:
        wave, sr, keys = generate_utterance(np.random.default_rng(1), spec, sample_rate=8000, keys=key)
        low, high = dominant_tones(wave, sr)
        assert abs(low - KEY_TONES[key][0]) < 10 and abs(high - KEY_TONES[key][1]) < 10, key
        assert KEY_TONES[key][0] in ROW_HZ and KEY_TONES[key][1] in COL_HZ


def test_utterances_are_random_but_reproducible():
    ds = DTMFDataset(20, seed=3, sample_rate=8000)
    a, b = ds[5], ds[5]
    assert torch.equal(a["signal"], b["signal"]) and a["text"] == b["text"]
    texts = {ds[i]["text"] for i in range(20)}
    assert len(texts) > 15
    lengths = [len(ds[i]["text"]) for i in range(20)]
    assert min(lengths) >= 1 and max(lengths) <= 12
    ds.set_epoch(1)
    assert ds[5]["text"] != a["text"] or not torch.equal(ds[5]["signal"], a["signal"])
    val = DTMFDataset(20, seed=3, sample_rate=8000, fresh_each_epoch=False)
    v0 = val[2]["text"]
    val.set_epoch(4)
    assert val[2]["text"] == v0


def test_resampled_to_model_rate_and_labels_encode():
    ds = DTMFDataset(10, seed=0, sample_rate=16000)
    for i in range(10):
        item = ds[i]
        assert item["signal"].dtype == torch.float32 and item["signal"].abs().max() <= 1.0
        assert ds.tokenizer.decode(item["tokens"].tolist()) == item["text"]
