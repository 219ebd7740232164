"""Recurrent cells: a registry plus one module per family.

``StepLayer`` is the base for a user cell written as a per-step function (see ``crnn/cells/base.py``).
"""
from crnn.cells.registry import get_cell, list_cells, register_cell
from crnn.cells.base import StepLayer
from crnn.cells import torch_rnn  # noqa: F401  (registers gru, lstm, rnn)
from crnn.cells import reference  # noqa: F401  (registers gru_ref, lstm_ref)
from crnn.cells import scan  # noqa: F401  (registers mingru, minlstm)
from crnn.cells.scan import ScanLayer

__all__ = ["get_cell", "list_cells", "register_cell", "StepLayer", "ScanLayer"]
