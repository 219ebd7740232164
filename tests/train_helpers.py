"""Fitting one fixed batch for a few steps: the tests' check that a model and its data can learn."""
import torch

from crnn.ctc import ctc_loss


def fit_batch(model, batch, steps: int, lr: float = 3e-3, optimizer=torch.optim.Adam) -> list[float]:
    """Train ``model`` on ``batch`` for ``steps`` CTC steps; returns the losses. Leaves the model in eval mode."""
    opt = optimizer(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        lp, ol = model(batch.x, batch.x_lens)
        loss = ctc_loss(lp, ol, batch.y, batch.y_lens)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    return losses


def train_streaming_dtmf(steps: int = 300, seed: int = 0, hidden_size: int = 48):
    """A tiny forward-only DTMF model that streams (global normalisation, time stride 4), trained on fresh
    clean-ish 8 kHz key strings: about 10 s on one CPU thread for 300 steps, nearly every string right.

    Returns the model in eval mode with its tokenizer attached.
    """
    import numpy as np

    import crnn
    from crnn.data.builtin.dtmf import DTMFSpec, dtmf_tokenizer, generate_utterance
    from crnn.data.collate import collate

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tok = dtmf_tokenizer()
    spec = DTMFSpec(max_keys=6, key_ms=(70, 160), gap_ms=(50, 150), no_gap_prob=0.0, snr_db=(20, 30),
                    level_db=(-20, -6), edge_ms=(50, 200), sample_rates=(8000,))

    def batch(n):
        items = []
        for _ in range(n):
            wave, _, keys = generate_utterance(rng, spec, sample_rate=8000)
            items.append({"signal": torch.from_numpy(wave), "tokens": torch.tensor(tok.encode(keys)), "text": keys,
                          "path": ""})
        return collate(items)

    model = crnn.create_model("tiny", vocab_size=len(tok), bidirectional=False, normalize="global",
                              hidden_size=hidden_size, num_layers=1, conv_channels=8, n_mels=24, time_subsample=4,
                              dropout=0.0)
    stats = batch(32)
    model.frontend.fit_global_stats(stats.x, stats.x_lens)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        model.train()
        for _ in range(steps):
            b = batch(16)
            lp, ol = model(b.x, b.x_lens)
            loss = ctc_loss(lp, ol, b.y, b.y_lens)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    model.tokenizer = tok
    return model
