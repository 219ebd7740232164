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
