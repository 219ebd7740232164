"""The learning-rate schedule: warm-up, cosine decay over the steps or over a time budget."""
import csv
import math

import torch

from cli_helpers import tiny_train_config
from crnn.training import train
from crnn.training.setup import WarmupCosine


def test_warmup_then_cosine_over_steps():
    f = WarmupCosine(warmup=10, total=110, min_ratio=0.05)
    assert f(0) == 0.1 and f(9) == 1.0
    assert f(10) == 1.0 and math.isclose(f(60), 0.525) and math.isclose(f(110), 0.05) and f(500) == 0.05


def test_time_progress_anneals_early_and_survives_the_state_dict():
    f = WarmupCosine(warmup=10, total=10_000, min_ratio=0.05)
    assert f(100) > 0.99  # by steps, barely started
    f.time_progress = 0.5
    assert math.isclose(f(100), 0.525, rel_tol=1e-3)  # half the budget spent: halfway down
    f.time_progress = 1.0
    assert math.isclose(f(100), 0.05)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, f)
    fresh = WarmupCosine(warmup=10, total=10_000, min_ratio=0.05)
    torch.optim.lr_scheduler.LambdaLR(opt, fresh).load_state_dict(sched.state_dict())
    assert fresh.time_progress == 1.0  # a resumed run continues the budget's schedule


def _last_lr(out) -> tuple[float, int]:
    rows = list(csv.DictReader(open(out / "log.csv")))
    return float(rows[-1]["lr"]), len(rows)


def test_a_run_stopped_by_its_budget_ends_annealed_only_with_time_schedule(tmp_path):
    common = dict(epochs=10_000, max_minutes=0.05, train_size=16, val_size=8, lr=1e-3, warmup_steps=1, log_every=1)
    train(tiny_train_config(out=str(tmp_path / "steps"), **common))
    train(tiny_train_config(out=str(tmp_path / "time"), time_schedule=True, **common))
    lr_steps, epochs_steps = _last_lr(tmp_path / "steps")
    lr_time, epochs_time = _last_lr(tmp_path / "time")
    assert epochs_steps < 10_000 and epochs_time < 10_000  # both stopped by the clock
    assert lr_steps > 0.99e-3  # 10,000 epochs scheduled: still at the peak
    assert lr_time < 0.3e-3  # the budget's schedule: (nearly) annealed when the clock stopped it
