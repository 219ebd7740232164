"""Shared fixtures. The ``device`` fixture is the suite's one switch for CUDA.

Every test that takes ``device`` runs once per device in ``CRNN_TEST_DEVICES`` (comma-separated,
e.g. ``cpu,cuda``); by default that is ``cpu``, plus ``cuda`` when a GPU is visible. CUDA variants
carry the ``cuda`` marker, so ``pytest -m cuda`` runs exactly the CUDA side of the suite and a machine
without a GPU skips them cleanly.
"""
import os

import pytest
import torch

# Exact comparisons against the CPU need IEEE fp32 on the GPU too: TF32 convolutions and cuDNN RNNs
# (on by default) round inputs to 10 mantissa bits, far outside fp32 test tolerances.
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False


def devices_under_test() -> list[str]:
    """The devices device-parametrised tests run on (``CRNN_TEST_DEVICES`` or cpu [+ cuda])."""
    listed = os.environ.get("CRNN_TEST_DEVICES", "")
    if listed.strip():
        return [d.strip() for d in listed.split(",") if d.strip()]
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        params = [pytest.param(d, id=d, marks=[pytest.mark.cuda] if d.startswith("cuda") else [])
                  for d in devices_under_test()]
        metafunc.parametrize("device", params)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """Tiny tensors: one intra-op thread is faster than several fighting over shared cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
