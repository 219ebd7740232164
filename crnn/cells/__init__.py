"""Recurrent cells: a registry plus one module per family."""
from crnn.cells.registry import get_cell, list_cells, register_cell
from crnn.cells import torch_rnn  # noqa: F401  (registers gru, lstm, rnn)
from crnn.cells import reference  # noqa: F401  (registers gru_ref, lstm_ref)

try:  # parallel-scan cells (mingru, minlstm)
    from crnn.cells import scan  # noqa: F401
except ImportError:  # pragma: no cover - module added later
    pass

__all__ = ["get_cell", "list_cells", "register_cell"]
