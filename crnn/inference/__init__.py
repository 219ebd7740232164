"""Inference: files (or arrays) in, hypotheses and timed outputs out.

``api`` (``transcribe``, ``transcribe_files``, ``FileResult``), ``batching`` (inputs read and cut into
pieces, batched by length), ``segment`` (long recordings cut at pauses, pieces stitched back),
``streaming`` (chunk-by-chunk recognition, offline and streaming kept apart), ``outputs`` (one writer
table: txt, json, ctm, srt, vtt), ``align`` (forced alignment of known transcripts: ``align``, ``align_files``)
and ``align_outputs`` (its writers: json, ctm, srt, vtt, per-frame labels).
"""
from crnn.inference.api import FileResult, SegmentOptions, TranscriptionError, transcribe, transcribe_files
from crnn.inference.align import Alignment, AlignmentError, align, align_files
from crnn.inference.batching import Input, InputPieces, input_name, length_sorted_batches

__all__ = ["FileResult", "SegmentOptions", "TranscriptionError", "transcribe", "transcribe_files", "Input",
           "InputPieces", "input_name", "length_sorted_batches", "Alignment", "AlignmentError", "align", "align_files"]
