"""Content digests of a model's text: the leaf that :mod:`sd.model.model`
(``Model.key``), :mod:`sd.model.stored` (the description cache) and the
compiled engine's artefacts share, so none of them imports another for it."""
from __future__ import annotations

import hashlib

from . import entries as entries_mod
from .source import Source


def content_key(equations: str, externals) -> str:
    """:attr:`Model.key <sd.model.model.Model.key>`: the digest of the
    equations' text and the external files (by stored name and hash)."""
    h = hashlib.sha256(equations.encode())
    for ext in sorted(externals, key=lambda e: e.stored):
        h.update(f" {ext.stored} {ext.sha256}".encode())
    return h.hexdigest()


def equations_digest(src: Source) -> str:
    """Digest of the text PySD parses (the equations without the sketch) and
    of the data aliases that decide which files the equations read."""
    from .sanitize import aliases

    h = hashlib.sha256(entries_mod.equations_text(src.text).encode("utf-8", "surrogatepass"))
    # the data aliases ('?name') sit in the settings after the sketch, and decide
    # which files the equations read
    for name, file in sorted(aliases(src.text).items()):
        h.update(f"\0alias {name}={file}".encode("utf-8", "surrogatepass"))
    return h.hexdigest()
