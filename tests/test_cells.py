"""Recurrent cells: equivalence with torch.nn, scan vs step loop, padding, streaming state, user cells."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import crnn
from crnn.cells import StepLayer, register_cell
from crnn.cells.base import export_mode
from crnn.cells.scan import scan_linear_chunked
from crnn.ctc import ctc_loss
from crnn.encoder import RecurrentEncoder


@register_cell("mycell")
class MyCell(StepLayer):
    """A user cell written as nothing but a step function (an Elman RNN with a gated output)."""

    def __init__(self, input_size: int, hidden_size: int, bidirectional: bool = True):
        super().__init__(input_size, hidden_size, bidirectional)
        self.cell = nn.ModuleList(nn.Linear(input_size + hidden_size, hidden_size) for _ in range(self.num_directions))

    def step(self, x_t: torch.Tensor, h: torch.Tensor, direction: int) -> torch.Tensor:
        return torch.tanh(self.cell[direction](torch.cat([x_t, h], dim=-1)))


ALL_CELLS = crnn.list_cells()


def _state_leaves(state):
    return [state] if isinstance(state, torch.Tensor) else list(state)


def _assert_states_close(a, b, **tol):
    for x, y in zip(_state_leaves(a), _state_leaves(b), strict=True):
        torch.testing.assert_close(x, y, **tol)


def _to(state, device):
    return state.to(device) if isinstance(state, torch.Tensor) else tuple(s.to(device) for s in state)


def _random_state(cell: str, dirs: int, batch: int, hidden: int, dtype=torch.float32):
    h = torch.randn(dirs, batch, hidden, dtype=dtype)
    return (h, torch.randn_like(h)) if "lstm" in cell and "min" not in cell else h


# ---- reference cells == cuDNN/torch layers --------------------------------------------------------
@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_reference_matches_torch_encoder(kind, device):
    """2 bidirectional layers, padded batch, carried-in state: outputs, states, input and weight grads."""
    D, H, B, T = 5, 6, 3, 7
    torch_enc = RecurrentEncoder(D, H, 2, cell=kind).double().to(device)
    ref_enc = RecurrentEncoder(D, H, 2, cell=f"{kind}_ref").double().to(device)
    ref_enc.load_state_dict(torch_enc.state_dict())  # strict: identical names and shapes

    x = torch.randn(B, T, D, dtype=torch.float64, device=device)
    lengths = torch.tensor([7, 4, 2], device=device)
    state = [_to(_random_state(kind, 2, B, H, torch.float64), device) for _ in range(2)]
    w = torch.randn(B, T, 2 * H, dtype=torch.float64, device=device)
    results = []
    for enc in (torch_enc, ref_enc):
        xi = x.clone().requires_grad_()
        y, _, states = enc(xi, lengths, state)
        (y * w).sum().backward()
        grads = {n: p.grad for n, p in enc.named_parameters()}
        results.append((y, states, xi.grad, grads))
    (y0, s0, gx0, g0), (y1, s1, gx1, g1) = results
    tol = dict(atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(y1, y0, **tol)
    for a, b in zip(s0, s1):
        _assert_states_close(b, a, **tol)
    torch.testing.assert_close(gx1, gx0, **tol)
    assert g0.keys() == g1.keys()
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], **tol, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_reference_matches_torch_cell_loop_and_module(kind):
    """Weights of a one-layer torch.nn.GRU/LSTM load into ``layer.rnn``; a GRUCell/LSTMCell loop agrees."""
    D, H, B, T = 4, 5, 2, 6
    torch_rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[kind](D, H, batch_first=True, bidirectional=True)
    layer = crnn.get_cell(f"{kind}_ref")(D, H, bidirectional=True)
    layer.rnn.load_state_dict(torch_rnn.state_dict())
    x = torch.randn(B, T, D)
    y, _, _ = layer(x, torch.full((B,), T))
    torch.testing.assert_close(y, torch_rnn(x)[0], atol=1e-5, rtol=1e-5)

    cell = {"gru": nn.GRUCell, "lstm": nn.LSTMCell}[kind](D, H)
    cell.weight_ih.data.copy_(layer.rnn.weight_ih_l0)
    cell.weight_hh.data.copy_(layer.rnn.weight_hh_l0)
    cell.bias_ih.data.copy_(layer.rnn.bias_ih_l0)
    cell.bias_hh.data.copy_(layer.rnn.bias_hh_l0)
    h = torch.zeros(B, H)
    c = torch.zeros(B, H)
    steps = []
    for t in range(T):
        if kind == "gru":
            h = cell(x[:, t], h)
        else:
            h, c = cell(x[:, t], (h, c))
        steps.append(h)
    torch.testing.assert_close(y[..., :H], torch.stack(steps, 1), atol=1e-5, rtol=1e-5)


def test_model_state_dict_moves_between_cudnn_and_reference_cells(device):
    """A whole CRNN trained with cell="lstm" loads into cell="lstm_ref" as is and gives the same log-probs."""
    native = crnn.create_model("tiny", vocab_size=6, cell="lstm", hidden_size=16).eval().to(device)
    ref = crnn.create_model("tiny", vocab_size=6, cell="lstm_ref", hidden_size=16).eval().to(device)
    ref.load_state_dict(native.state_dict())
    x, x_lens = torch.randn(2, 1600, device=device), torch.tensor([1600, 1100], device=device)
    with torch.no_grad():
        (lp0, n0), (lp1, n1) = native(x, x_lens), ref(x, x_lens)
    assert torch.equal(n0, n1)
    torch.testing.assert_close(lp1, lp0, atol=1e-5, rtol=1e-5)


# ---- scan cells -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
def test_scan_matches_step_loop(kind, device):
    """Log-space scan == the same cell stepped frame by frame (bidirectional, ragged lengths, h0, grads)."""
    D, H, B, T = 4, 5, 4, 9
    layer = crnn.get_cell(kind)(D, H, bidirectional=True).double().to(device)
    x = torch.randn(B, T, D, dtype=torch.float64, device=device) * 2
    lengths = torch.tensor([9, 5, 1, 0], device=device)
    h0 = torch.randn(2, B, H, dtype=torch.float64, device=device)
    w = torch.randn(B, T, 2 * H, dtype=torch.float64, device=device)
    results = []
    for run in (layer.forward, layer.forward_steps):
        layer.zero_grad()
        xi = x.clone().requires_grad_()
        y, _, s = run(xi, lengths, h0)
        (y * w).sum().backward()
        results.append((y, s, xi.grad, [p.grad.clone() for p in layer.parameters()]))
    (y0, s0, gx0, g0), (y1, s1, gx1, g1) = results
    tol = dict(atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(y0, y1, **tol)
    torch.testing.assert_close(s0, s1, **tol)
    torch.testing.assert_close(gx0, gx1, **tol)
    for a, b in zip(g0, g1):
        torch.testing.assert_close(a, b, **tol)
    assert (y0[3] == 0).all() and torch.equal(s0[:, 3], h0[:, 3])  # empty sequence keeps its state


@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
def test_scan_long_sequence_stable_in_float32(kind, device):
    """T=3000: float32 scan stays finite (values and grads) and close to float64."""
    layer = crnn.get_cell(kind)(3, 4, bidirectional=False).to(device)
    x = torch.randn(2, 3000, 3, device=device).requires_grad_()
    lengths = torch.tensor([3000, 1700], device=device)
    y32, _, _ = layer(x, lengths)
    y32.sum().backward()
    assert torch.isfinite(y32).all() and torch.isfinite(x.grad).all()
    y64, _, _ = layer.double()(x.detach().double(), lengths)
    torch.testing.assert_close(y32.double(), y64, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
def test_export_form_matches_step_loop(kind):
    """The exported form (linear-space coefficients, chunked prefix scan, reverse direction on flipped
    time) == the cell stepped frame by frame: bidirectional, ragged lengths (one empty), h0, T not a
    multiple of the chunk."""
    D, H, B, T = 4, 5, 4, 37
    layer = crnn.get_cell(kind)(D, H, bidirectional=True).double()
    x = torch.randn(B, T, D, dtype=torch.float64) * 2
    lengths = torch.tensor([37, 20, 1, 0])
    h0 = torch.randn(2, B, H, dtype=torch.float64)
    with torch.no_grad():
        y1, _, s1 = layer.forward_steps(x, lengths, h0)
        with export_mode():
            y0, _, s0 = layer(x, lengths, h0)
    torch.testing.assert_close(y0, y1, atol=1e-10, rtol=1e-8)
    torch.testing.assert_close(s0, s1, atol=1e-10, rtol=1e-8)


def test_custom_scan_cell_exports_from_its_log_coefficients():
    """A ScanLayer subclass defining only project / log_coefficients / step takes the linear export path
    through the default ``coefficients`` (exp of the log ones) and equals its step loop."""

    class Decay(crnn.ScanLayer):  # h_t = sigmoid(k_a) h_(t-1) + exp(k_b)
        def __init__(self, input_size, hidden_size, bidirectional=True):
            super().__init__(input_size, hidden_size, bidirectional)
            self.linear = nn.ModuleList(nn.Linear(input_size, 2 * hidden_size) for _ in range(self.num_directions))

        def project(self, x, direction):
            return self.linear[direction](x)

        def log_coefficients(self, k):
            k_a, k_b = k.chunk(2, dim=-1)
            return torch.nn.functional.logsigmoid(k_a), k_b

        def step(self, k, h, direction):
            k_a, k_b = k.chunk(2, dim=-1)
            return torch.sigmoid(k_a) * h + torch.exp(k_b)

    layer = Decay(3, 4).double()
    x, lengths = torch.randn(3, 21, 3, dtype=torch.float64), torch.tensor([21, 9, 0])
    with torch.no_grad():
        y1, _, s1 = layer.forward_steps(x, lengths)
        with export_mode():
            y0, _, s0 = layer(x, lengths)
    torch.testing.assert_close(y0, y1, atol=1e-10, rtol=1e-8)
    torch.testing.assert_close(s0, s1, atol=1e-10, rtol=1e-8)


def test_chunked_linear_scan_exact_over_long_inputs():
    """h_t = a_t h_(t-1) + b_t over 3000 float32 frames with gates near 0 and 1: within 1e-4 of a float64
    loop (no log to overflow, no division by a vanishing product)."""
    g = torch.Generator().manual_seed(0)
    a = torch.sigmoid(4 * torch.randn(2, 3000, 6, generator=g))
    b = torch.rand(2, 3000, 6, generator=g) * 3
    h0 = torch.randn(2, 6, generator=g)
    h, ref = h0.double(), []
    for t in range(a.size(1)):
        h = a[:, t].double() * h + b[:, t].double()
        ref.append(h)
    got = scan_linear_chunked(a, b, h0)
    assert got.shape == a.shape
    torch.testing.assert_close(got.double(), torch.stack(ref, 1), atol=1e-4, rtol=1e-5)


# ---- contract tests over every registered cell ------------------------------------------------------
@pytest.mark.parametrize("cell", ALL_CELLS)
def test_state_carried_across_chunks(cell, device):
    """Unidirectional: two chunks with the state passed along == one pass over the whole sequence."""
    D, H = 3, 4
    layer = crnn.get_cell(cell)(D, H, bidirectional=False).to(device)
    x = torch.randn(3, 10, D, device=device)
    full_y, _, full_s = layer(x, torch.tensor([10, 8, 7], device=device))
    y1, _, s1 = layer(x[:, :6], torch.tensor([6, 6, 6], device=device))
    y2, _, s2 = layer(x[:, 6:], torch.tensor([4, 2, 1], device=device), s1)
    torch.testing.assert_close(torch.cat([y1, y2], 1), full_y, atol=1e-5, rtol=1e-5)
    _assert_states_close(s2, full_s, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_every_parameter_gets_gradient(cell, device):
    layer = crnn.get_cell(cell)(3, 4, bidirectional=True).to(device)
    y, _, _ = layer(torch.randn(2, 5, 3, device=device), torch.tensor([5, 3], device=device))
    (y * torch.randn_like(y)).sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{cell}: no gradient for {name}"


@pytest.mark.parametrize("bidirectional", [True, False], ids=["bi", "uni"])
@pytest.mark.parametrize("cell", ALL_CELLS)
def test_padding_never_changes_valid_outputs(cell, bidirectional, device):
    """Each item alone (no padding) == the same item inside a batch padded with garbage."""
    D, H = 3, 4
    layer = crnn.get_cell(cell)(D, H, bidirectional=bidirectional).to(device)
    lengths = [6, 2, 4]
    T = max(lengths) + 3
    x = torch.randn(len(lengths), T, D, device=device) * 5  # frames past each length are garbage to ignore
    y, out_lengths, state = layer(x, torch.tensor(lengths, device=device))
    assert y.shape == (3, T, layer.output_size) and out_lengths.tolist() == lengths
    for i, n in enumerate(lengths):
        yi, _, si = layer(x[i : i + 1, :n], torch.tensor([n], device=device))
        torch.testing.assert_close(y[i : i + 1, :n], yi, atol=1e-5, rtol=1e-5)
        assert (y[i, n:] == 0).all(), "padded outputs must be zero"
        for a, b in zip(_state_leaves(state), _state_leaves(si)):
            torch.testing.assert_close(a[:, i : i + 1], b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_packed_and_padded_cudnn_input_agree(cell, device, monkeypatch):
    """Both ways of feeding a ragged batch to cuDNN (``CRNN_CUDA_RNN_INPUT``), and a full-length batch
    (sent unpacked), give the same outputs, states and gradients."""
    layer = crnn.get_cell(cell)(3, 4, bidirectional=True).to(device)
    x = torch.randn(3, 9, 3, device=device)
    results = []
    for mode, lengths in (("packed", [9, 4, 6]), ("padded", [9, 4, 6]), ("packed", [9, 9, 9])):
        monkeypatch.setenv("CRNN_CUDA_RNN_INPUT", mode)
        layer.zero_grad()
        xi = x.clone().requires_grad_()
        y, _, s = layer(xi, torch.tensor(lengths, device=device))
        (y * torch.linspace(-1, 1, y.numel(), device=device).view_as(y)).sum().backward()
        results.append((y.detach(), _state_leaves(s), xi.grad, [p.grad.clone() for p in layer.parameters()]))
    (y0, s0, gx0, g0), (y1, s1, gx1, g1), (y2, _, _, _) = results
    torch.testing.assert_close(y1, y0, atol=1e-5, rtol=1e-5)
    for a, b in zip(s0, s1):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gx1, gx0, atol=1e-5, rtol=1e-5)
    for a, b in zip(g0, g1):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    ref = layer.rnn(x)[0]
    torch.testing.assert_close(y2, ref.detach(), atol=1e-6, rtol=1e-6)
    monkeypatch.setenv("CRNN_CUDA_RNN_INPUT", "sideways")
    if torch.device(device).type == "cuda":
        with pytest.raises(ValueError, match="CRNN_CUDA_RNN_INPUT"):
            layer(x, torch.tensor([9, 4, 6], device=device))


@pytest.mark.parametrize("cell", ["gru_ref", "mingru", "mycell"])
def test_bad_input_is_reported(cell):
    layer = crnn.get_cell(cell)(3, 4)
    with pytest.raises(ValueError, match=r"expected input \(B, T, 3\)"):
        layer(torch.randn(2, 5, 7), torch.tensor([5, 5]))
    with pytest.raises(ValueError, match="exceeds the 5 input frames"):
        layer(torch.randn(2, 5, 3), torch.tensor([5, 6]))


# ---- a user cell trains a whole model ---------------------------------------------------------------
def test_user_cell_trains_tiny_crnn(device):
    torch.manual_seed(0)
    model = crnn.create_model("tiny", vocab_size=5, cell="mycell", hidden_size=32).to(device)
    assert isinstance(model.encoder.layers[0], MyCell)
    x = torch.randn(4, 2400, device=device) * 0.3  # 0.3 s at 8 kHz
    x_lens = torch.tensor([2400, 2400, 2000, 1600], device=device)
    targets = torch.tensor([[1, 2, 3], [4, 4, 0], [2, 1, 0], [3, 0, 0]], device=device)
    target_lengths = torch.tensor([3, 2, 2, 1], device=device)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        log_probs, lengths = model(x, x_lens)
        loss = ctc_loss(log_probs, lengths, targets, target_lengths)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.7 * losses[0], losses


# ---- CUDA fast path ---------------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_compiled_reference_matches_plain_and_cudnn_on_cuda(kind, monkeypatch):
    D, H, B, T = 8, 16, 4, 12
    cudnn = RecurrentEncoder(D, H, 2, cell=kind).cuda()
    ref = RecurrentEncoder(D, H, 2, cell=f"{kind}_ref").cuda()
    ref.load_state_dict(cudnn.state_dict())
    x = torch.randn(B, T, D, device="cuda")
    lengths = torch.tensor([12, 9, 5, 1])

    def run(enc):
        enc.zero_grad()
        xi = x.clone().requires_grad_()
        y, _, _ = enc(xi, lengths)
        y.square().sum().backward()
        return y.detach(), xi.grad, [p.grad.clone() for p in enc.parameters()]

    compiled = run(ref)
    monkeypatch.setenv("CRNN_COMPILE_CELLS", "0")
    plain = run(ref)
    reference = run(cudnn)
    for a, b, c in zip(compiled[:2] + tuple(compiled[2]), plain[:2] + tuple(plain[2]),
                       reference[:2] + tuple(reference[2])):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(a, c, atol=1e-4, rtol=1e-3)
