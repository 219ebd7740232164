"""CTC decoders: greedy and prefix beam search, with one Hypothesis type for all."""
from crnn.decoding.hypothesis import Hypothesis
from crnn.decoding.greedy import ctc_greedy

try:
    from crnn.decoding.beam import ctc_beam_search
except ImportError:  # pragma: no cover - beam search lands separately
    ctc_beam_search = None  # type: ignore[assignment]

__all__ = ["Hypothesis", "ctc_greedy", "ctc_beam_search"]
