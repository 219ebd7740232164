"""CTC loss wrapper, feasibility checks and alignment."""
import math

import pytest
import torch

from crnn.ctc import InfeasibleLabelError, align, check_feasible, ctc_loss, ctc_min_frames, ctc_min_frames_batch


def test_min_frames_counts_repeats():
    assert ctc_min_frames([1, 2, 3]) == 3
    assert ctc_min_frames([1, 1, 2, 2, 2]) == 5 + 3
    assert ctc_min_frames([]) == 0
    y = torch.tensor([[1, 1, 2, 0], [3, 3, 3, 3]])
    assert ctc_min_frames_batch(y, torch.tensor([3, 4])).tolist() == [4, 7]


def test_infeasible_labels_are_named():
    y = torch.tensor([[1, 1, 1], [1, 2, 3]])
    with pytest.raises(InfeasibleLabelError, match=r"b\.wav: label needs 3 frames, input gives 2") as e:
        check_feasible(torch.tensor([5, 2]), y, torch.tensor([3, 3]), names=["a.wav", "b.wav"])
    assert "a.wav" not in str(e.value)
    check_feasible(torch.tensor([5, 3]), y, torch.tensor([3, 3]))  # exactly enough: no error
    with pytest.raises(InfeasibleLabelError, match="item 0"):
        check_feasible(torch.tensor([4, 3]), y, torch.tensor([3, 3]))


def test_loss_is_fp32_and_finite_for_feasible_items(device):
    lp = torch.randn(2, 10, 5, device=device).log_softmax(-1).to(torch.bfloat16)
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):  # the loss leaves autocast itself
        loss = ctc_loss(lp, torch.tensor([10, 7], device=device), torch.tensor([[1, 2, 2], [3, 0, 0]], device=device),
                        torch.tensor([3, 1], device=device), reduction="none")
    assert loss.dtype == torch.float32 and torch.isfinite(loss).all()


def test_loss_and_gradient_on_the_device_equal_the_cpu(device):
    """Same loss and input gradient on every device (CUDA picks its own CTC kernel), padded targets too."""
    logits = torch.randn(3, 20, 6, dtype=torch.float64)
    lengths, targets = torch.tensor([20, 15, 9]), torch.tensor([[1, 2, 2, 5], [3, 4, 0, 0], [5, 0, 0, 0]])
    target_lengths = torch.tensor([4, 2, 1])
    results = []
    for dev in ("cpu", device):
        x = logits.to(dev).float().requires_grad_()
        loss = ctc_loss(x.log_softmax(-1), lengths.to(dev), targets.to(dev), target_lengths.to(dev))
        loss.backward()
        results.append((loss.detach().cpu(), x.grad.cpu()))
    (l0, g0), (l1, g1) = results
    assert torch.isfinite(l0) and l0 > 0
    torch.testing.assert_close(l1, l0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(g1, g0, atol=1e-4, rtol=1e-3)


def test_align_recovers_planted_spans():
    T, V = 12, 4
    lp = torch.full((T, V), -10.0)
    path = [0, 1, 1, 0, 0, 2, 2, 2, 0, 1, 0, 0]
    lp[torch.arange(T), torch.tensor(path)] = 0.0
    assert align(lp.log_softmax(-1), [1, 2, 1]) == [(1, 2), (5, 7), (9, 9)]
    with pytest.raises(InfeasibleLabelError):
        align(lp[:2], [1, 1])


def test_evaluation_scores_items_too_fast_for_the_frame_rate():
    """A reference longer than CTC lets the frames hold is decoded and its errors counted, not hidden."""
    from cli_helpers import tiny_model
    from crnn.data.collate import Batch
    from crnn.data.builtin.dtmf import dtmf_tokenizer
    from crnn.training.evaluate import evaluate

    tok = dtmf_tokenizer()
    model = tiny_model(len(tok))
    model.tokenizer = tok
    sr = model.sample_rate
    texts = ["12", "1234567890" * 3]  # the second: 30 keys in 0.25 s
    x = torch.randn(2, sr) * 0.1
    x_lens = torch.tensor([sr, sr // 4])
    y = torch.zeros(2, 30, dtype=torch.long)
    ids = [tok.encode(t) for t in texts]
    for i, seq in enumerate(ids):
        y[i, :len(seq)] = torch.tensor(seq)
    batch = Batch(x, x_lens, y, torch.tensor([len(s) for s in ids]), texts, ["a.wav", "fast.wav"], [])
    assert int(model.output_lengths(x_lens)[1]) < ctc_min_frames(ids[1])
    r = evaluate(model, [batch])
    assert r.items == 2 and r.chars == 2 + 30  # both scored
    assert r.char_errors >= 30 - int(model.output_lengths(x_lens)[1])  # what cannot fit counts as errors
    assert len(r.too_short) == 1 and r.too_short[0].startswith("fast.wav: label needs")
    assert not r.skipped and math.isfinite(r.loss)  # the loss over the item that fits
