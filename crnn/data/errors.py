"""Error types shared by the manifest and corpus-layout readers (kept apart to avoid import cycles)."""
from __future__ import annotations


class ManifestError(ValueError):
    """A manifest (or one of its lines) cannot be used; the message names the file and line."""
