"""CTC loss wrapper, feasibility checks and alignment."""
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


def test_loss_is_fp32_and_finite_for_feasible_items():
    lp = torch.randn(2, 10, 5).log_softmax(-1).to(torch.bfloat16)
    loss = ctc_loss(lp, torch.tensor([10, 7]), torch.tensor([[1, 2, 2], [3, 0, 0]]), torch.tensor([3, 1]),
                    reduction="none")
    assert loss.dtype == torch.float32 and torch.isfinite(loss).all()


def test_align_recovers_planted_spans():
    T, V = 12, 4
    lp = torch.full((T, V), -10.0)
    path = [0, 1, 1, 0, 0, 2, 2, 2, 0, 1, 0, 0]
    lp[torch.arange(T), torch.tensor(path)] = 0.0
    assert align(lp.log_softmax(-1), [1, 2, 1]) == [(1, 2), (5, 7), (9, 9)]
    with pytest.raises(InfeasibleLabelError):
        align(lp[:2], [1, 1])
