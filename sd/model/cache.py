"""Where `sd` keeps translated and compiled models: outside the source tree.

The cache directory is ``$SD_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/sd``,
else ``~/.cache/sd``. Entries are keyed by the SHA-256 of the model file's
content (plus a tag for the artefact kind and the tool versions), so editing the
``.mdl`` in Vensim invalidates them automatically.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_dir() -> Path:
    """Return the root cache directory, creating it if needed."""
    env = os.environ.get("SD_CACHE_DIR")
    if env:
        root = Path(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "sd"
    root.mkdir(parents=True, exist_ok=True)
    return root


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def entry(kind: str, digest: str) -> Path:
    """Directory for one cached artefact of ``kind`` for content ``digest``."""
    d = cache_dir() / kind / digest[:32]
    d.mkdir(parents=True, exist_ok=True)
    return d
