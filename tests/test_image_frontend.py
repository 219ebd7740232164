"""Image frontend: width becomes time, right padding never changes valid outputs, gradients flow."""
from __future__ import annotations

import pytest
import torch

from crnn.frontends import build_frontend, frontend_modality


def frontend(**kw):
    torch.manual_seed(0)
    return build_frontend("image", {"height": 16, "widths": [8, 16, 16], "out_dim": 12, **kw}).eval()


def test_registered_as_image_modality():
    assert frontend_modality("image") == "image"
    with pytest.raises(ValueError, match="unknown argument"):
        build_frontend("image", {"bogus": 1})


@pytest.mark.parametrize("width", [4, 7, 33, 100, 257])
def test_length_sweep(width):
    f = frontend()
    y, lens = f(torch.rand(2, 1, 16, width), torch.tensor([width, max(4, width // 2)]))
    assert y.shape == (2, width // 4, 12)
    assert lens.tolist() == [width // 4, max(4, width // 2) // 4]
    assert torch.equal(lens, f.output_lengths(torch.tensor([width, max(4, width // 2)])))


def test_right_padding_never_changes_valid_outputs():
    f = frontend()
    lines = [torch.rand(1, 16, w) for w in (37, 64, 90)]
    alone = [f(x[None], torch.tensor([x.shape[-1]]))[0][0] for x in lines]
    batch = torch.zeros(3, 1, 16, 90)
    for i, x in enumerate(lines):
        batch[i, :, :, : x.shape[-1]] = x
    y, lens = f(batch, torch.tensor([37, 64, 90]))
    for i, a in enumerate(alone):
        assert torch.allclose(y[i, : lens[i]], a, atol=1e-5), i


def test_gradients_reach_every_parameter_and_a_ctc_step_lowers_the_loss():
    f = frontend().train()
    head = torch.nn.Linear(12, 5)
    opt = torch.optim.Adam([*f.parameters(), *head.parameters()], lr=1e-2)
    x, lens = torch.rand(2, 1, 16, 64), torch.tensor([64, 48])
    targets, tlens = torch.tensor([1, 2, 3, 4, 1, 2]), torch.tensor([3, 3])
    losses = []
    for _ in range(15):
        y, ylens = f(x, lens)
        loss = torch.nn.functional.ctc_loss(head(y).log_softmax(-1).transpose(0, 1), targets, ylens, tlens)
        opt.zero_grad()
        loss.backward()
        if not losses:
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in f.parameters())
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("preset", ["image_tiny", "image_small"])
def test_presets_read_their_channels(preset):
    import crnn

    model = crnn.create_model(preset, vocab_size=7, hidden_size=8).eval()
    c, h = model.reader_args["channels"], model.reader_args["height"]
    log_probs, lens = model(torch.rand(2, c, h, 80), torch.tensor([80, 41]))
    assert log_probs.shape == (2, 20, 7) and lens.tolist() == [20, 10] and model.pixels_per_frame == 4


def test_every_cell_reads_lines_padding_invariant():
    """Any registered cell over the image frontend: a padded batch gives each line's own outputs, gradients flow."""
    import crnn

    lines = [torch.rand(1, 16, w) for w in (40, 72)]
    batch = torch.zeros(2, 1, 16, 72)
    for i, x in enumerate(lines):
        batch[i, :, :, : x.shape[-1]] = x
    for cell in crnn.list_cells():
        torch.manual_seed(0)
        model = crnn.create_model("image_tiny", vocab_size=6, cell=cell, hidden_size=8, num_layers=1, height=16,
                                  widths=[8, 8], out_dim=8).eval()
        y, lens = model(batch, torch.tensor([40, 72]))
        for i, x in enumerate(lines):
            alone, _ = model(x[None], torch.tensor([x.shape[-1]]))
            assert torch.allclose(y[i, : lens[i]], alone[0], atol=1e-5), cell
        y.sum().backward()
        assert all(p.grad is not None for p in model.parameters()), cell
