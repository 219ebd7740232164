"""CTC decoders: greedy and batched prefix beam search (LM, lexicon, hotwords, grammar), one Hypothesis type."""
from crnn.decoding.hypothesis import Hypothesis
from crnn.decoding.greedy import ctc_greedy
from crnn.decoding.beam import ctc_beam_search
from crnn.decoding.lm import NGramLM, TensorLM, read_arpa, write_arpa
from crnn.decoding.lm_build import build_kneser_ney
from crnn.decoding.decoder import DecodeOptions, Decoder
from crnn.decoding.constraints import Grammar, Hotwords, Lexicon
from crnn.decoding.words import hypothesis_words

__all__ = [
    "Hypothesis", "ctc_greedy", "ctc_beam_search", "DecodeOptions", "Decoder", "Lexicon", "Hotwords",
    "Grammar", "format_ctm", "hypothesis_words", "NGramLM", "TensorLM", "build_kneser_ney",
    "read_arpa", "write_arpa",
]


def __getattr__(name: str):
    if name == "format_ctm":  # its home is the writer table now; kept importable from here
        from crnn.inference.outputs import format_ctm

        return format_ctm
    raise AttributeError(f"module 'crnn.decoding' has no attribute {name!r}")
