"""Data: readers, manifests, tokenizers, samplers and the built-in data sets."""
