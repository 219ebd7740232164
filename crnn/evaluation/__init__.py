"""Evaluation: error rates (``metrics``), alignment-based frame accuracy (``frame_accuracy``), and the one
scoring loop (``evaluate``) that training's validation, ``crnn eval`` and the int8 check share
(``manifest``: a held-out manifest scored with any model)."""
from crnn.evaluation.metrics import EmptyMetricError, error_counts, error_rates, rates

__all__ = ["EmptyMetricError", "error_counts", "error_rates", "rates"]
