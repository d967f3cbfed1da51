"""A loaded model's description, kept in the cache as data so a rerun does not parse.

Loading parses the ``.mdl`` with PySD's parser, checks every text and builds
the variable table (0.2 s for the Juárez model, 2 s for World3, plus ~1 s
to import PySD). What later steps need from that work is small: the
variable table, which variable reads which within a time step, the time
settings and which constants they depend on, the external files, and a
digest of each equation. :func:`keep` writes that description as JSON into
a sealed cache entry (:func:`sd.model.cache.publish`: HMAC manifest, atomic
rename); :func:`recall` reads it back for the same text, checked against its
seal before it is parsed, so nothing but JSON is ever read (no pickle, no
code). The parse itself is then made only if something asks for it
(:class:`sd.model.model.Parsed`): the PySD engine, a time setting that
depends on an overridden constant, an equation the fast engine has not
compiled before.

The key is the text PySD parses (the part before the sketch, so a
diagram-only edit keeps the description), the model's path (external files
resolve beside it), PySD's version and the source of every module of
:mod:`sd.model`: a change to how models are read or checked makes a new
description. External data files are hashed again on every load.

**An edit that changes only numbers.** When there is no description for
the new text, the previous description of the same file is compared with
the new text entry by entry (:mod:`sd.model.entries`). If the only entries
that differ define a scalar constant by a bare number (``Name = 0.25``) and
differ only in that number, and none of those constants feeds a time
setting, the new model is the old one with new values: its description is
derived (``derived``: the old equations' digest and the new values, which
the fast engine applies to its stored artefact) and nothing is parsed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

from .._common import file_sha256
from ..errors import SdInputError, canon
from . import cache, entries as entries_mod
from .digest import equations_digest
from .source import Source

KIND = "model"
#: Bumped when the description's layout changes.
FORMAT = "1"
_FILE = "description.json"
_HERE = Path(__file__).parent


def recall(src: Source):
    """The :class:`~sd.model.model.Model` of ``src`` from its stored
    description, or one derived from the file's previous description by a
    change of constants; ``None`` when the text must be parsed."""
    try:
        key = _key(src)
        body = _read(key)
        if body is None:
            body = _derive(src)
            if body is None:
                return None
            _write(key, body, src)
        else:       # the version loaded last is the one the next edit starts from
            _write_index(src.path, key)
        return _model(src, body)
    except cache.UnsafeCache:      # never run beside a cache others can write
        raise
    except (SdInputError, OSError, ValueError, KeyError, TypeError):
        # a cache that cannot be used is no reason not to load the model
        return None


def keep(model) -> None:
    """Store the description of a freshly parsed ``model`` (best effort: a
    cache that cannot be written only means the next load parses again)."""
    try:
        _write(_key(model.source), describe(model), model.source)
    except cache.UnsafeCache:      # never run beside a cache others can write
        raise
    except (SdInputError, OSError):
        pass


def describe(model) -> dict:
    """The description of a parsed model (JSON-ready)."""
    from .timing import recorded_controls

    found = _entries(model.source)
    fields = [f.name for f in dataclasses.fields(_variable_type())]
    return {
        "format": FORMAT,
        "variables": [[getattr(v, f) for f in fields] for v in model.variables.values()],
        "fields": fields,
        "dependencies": {k: list(v) for k, v in model.dependencies.items()},
        "missing": model.missing.as_json(),
        "externals": [[e.arg, str(e.path), e.stored] for e in model.prepared.externals],
        "controls": recorded_controls(model),
        "entries": None if found is None else {
            "digests": [entries_mod.digest(e.text) for e in found],
            "literals": {str(i): [name, value, entries_mod.template(e)]
                         for i, e in enumerate(found)
                         for name, value in [entries_mod.literal(e) or (None, None)]
                         if name is not None},
        },
        "equations": equations_digest(model.source),
        "loader": _loader_digest(),
        "derived": None,
    }


# -- the model from a description -----------------------------------------------------------------
def _model(src: Source, body: dict):
    from .model import Model, Parsed
    from .sanitize import External

    variable = _variable_type()
    fields = body["fields"]
    variables = {}
    for row in body["variables"]:
        values = {f: _tuples(v) for f, v in zip(fields, row)}
        known = {f.name for f in dataclasses.fields(variable)}
        variables[values["name"]] = variable(**{k: v for k, v in values.items() if k in known})
    externals = []
    for arg, path, stored in body["externals"]:
        if not os.path.isfile(path):
            raise ValueError(f"{path} is gone")      # the full load names the missing file
        externals.append(External(arg=arg, path=Path(path), sha256=file_sha256(path),
                                  stored=stored))
    return Model(path=src.path, sha256=src.sha256, variables=variables, source=src,
                 parsed=Parsed(src, externals=tuple(externals)), stored=body)


def _variable_type():
    from .model import Variable

    return Variable


def _tuples(value):
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def previous_names(src: Source) -> dict | None:
    """Vensim name -> PySD name of the variables of the file's previous
    description (for :func:`sd.model.model.describe`), or ``None``."""
    try:
        previous = _read_index(src.path)
        if previous is None:
            return None
        fields = previous["fields"]
        i, j = fields.index("name"), fields.index("py_name")
        return {str(row[i]): str(row[j]) for row in previous["variables"]}
    except cache.UnsafeCache:      # never run beside a cache others can write
        raise
    except (SdInputError, OSError, ValueError, KeyError, TypeError, IndexError):
        return None


# -- an edit of constants ---------------------------------------------------------------------------
def _derive(src: Source) -> dict | None:
    """The description of ``src`` derived from the previous description of
    the same file when only literal constants changed (module docstring)."""
    previous = _read_index(src.path)
    if previous is None or previous.get("entries") is None:
        return None
    found = _entries(src)
    old = previous["entries"]
    if found is None or len(found) != len(old["digests"]):
        return None
    controls = previous.get("controls") or {}
    timed = {name for _, reads in controls.values() for name in reads}
    changed = {}
    digests = []
    literals = dict(old["literals"])
    for i, (entry, before) in enumerate(zip(found, old["digests"])):
        digests.append(entries_mod.digest(entry.text))
        if digests[-1] == before:
            continue
        was = old["literals"].get(str(i))
        now = entries_mod.literal(entry)
        if was is None or now is None or now[0] != was[0] or \
                entries_mod.template(entry) != was[2] or not math.isfinite(now[1]) or \
                canon(now[0]) in timed:
            return None
        changed[now[0]] = [was[1], now[1]]
        literals[str(i)] = [now[0], now[1], was[2]]
    if not changed:
        return None
    return {**previous, "entries": {"digests": digests, "literals": literals},
            "equations": equations_digest(src),
            "derived": {"from": previous["equations"], "constants": changed}}


# -- storage -----------------------------------------------------------------------------------------
def _key(src: Source) -> str:
    h = hashlib.sha256(f"sd model description {FORMAT} {cache.FORMAT}".encode())
    h.update(_loader_digest().encode())
    h.update(str(src.path).encode("utf-8", "surrogatepass") + b"\0")
    h.update(equations_digest(src).encode())
    return h.hexdigest()


_LOADER: list = []


def _loader_digest() -> str:
    """The code that reads and checks models, and PySD's version."""
    if not _LOADER:
        from ..provenance import versions

        h = hashlib.sha256(versions().get("pysd", "?").encode())
        for path in sorted(_HERE.glob("*.py")):
            h.update(path.name.encode() + hashlib.sha256(path.read_bytes()).digest())
        _LOADER.append(h.hexdigest())
    return _LOADER[0]


def _read(key: str) -> dict | None:
    def decode(files: dict) -> dict:
        body = json.loads(files[_FILE].decode("utf-8"))
        if body.get("format") != FORMAT:
            raise ValueError("another format")
        return body

    return cache.recall(KIND, key, decode)


def _write(key: str, body: dict, src: Source) -> None:
    cache.keep_text(KIND, key, _FILE, json.dumps(body, sort_keys=True, allow_nan=True))
    _write_index(src.path, key)


def _index_file(path: Path) -> Path:
    name = hashlib.sha256(str(path).encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return cache.cache_dir() / "index" / name


def _write_index(path: Path, key: str) -> None:
    """Which description is the latest of this file. Not sealed: it only
    points at a sealed entry, and :func:`_derive` checks every entry of the
    new text against that description, whichever it is."""
    try:
        if _index_file(path).read_text(encoding="utf-8").strip() == key:
            return
    except OSError:
        pass
    folder = _index_file(path).parent
    with cache.writable(folder):
        folder.mkdir(exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".index-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(key)
        os.replace(tmp, _index_file(path))


def _read_index(path: Path) -> dict | None:
    try:
        key = _index_file(path).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
        return None
    body = _read(key)
    # made by this code and PySD version: what it says still holds for this sd
    return body if body is not None and body.get("loader") == _loader_digest() else None


def _entries(src: Source):
    """The entries of the main section, or ``None`` for a file with macros
    (whose sections PySD splits differently)."""
    text = entries_mod.equations_text(src.text)
    if ":MACRO:" in text.upper():
        return None
    return entries_mod.split(entries_mod.clean(text).strip())
