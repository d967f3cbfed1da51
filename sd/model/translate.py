"""Steps 4-6 of loading: build PySD's Python from the checked abstract model,
verify it, cache it, and load it for the PySD engine.

The whole pipeline, in order (each step its own module)::

    source.read      bytes -> text in one encoding (UTF-8 / Latin-1), a snapshot
    parse.parse      text -> PySD abstract model (literal-only eval)
    sanitize.prepare every text made harmless or refused; external files resolved
    translate.build  PySD's ModelBuilder writes Python into a private scratch folder
    verify           the generated modules are checked with ``ast``, never run
    cache.publish    sealed (HMAC manifest) and renamed into the cache
    translate.load   the verified bytes copied to a private folder; pysd.load

``pysd.read_vensim`` is never called: it imports the generated module as part
of translating. Nothing here runs until the PySD engine is needed
(:attr:`sd.model.Model.translation`).
"""
from __future__ import annotations

import atexit
import copy
import hashlib
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from .._common import deep_recursion
from ..errors import SdInputError
from . import cache, extend, structure, verify
from .sanitize import Prepared
from .source import Source

_HERE = Path(__file__).parent
#: The steps whose code decides what a translation contains: part of its key.
_PIPELINE = ("source.py", "prepass.py", "parse.py", "material.py", "precedence.py",
             "sanitize.py", "extend.py", "macros.py", "pysd_functions.py", "verify.py",
             "translate.py", "cache.py")
_NOT_IMPLEMENTED = re.compile(r"Trying to translate '([^']+)' which it is not implemented")
_MODULE_NAME = re.compile(r"\A[A-Za-z0-9_]{1,100}\.py\Z")


def key(source: Source, prepared: Prepared) -> str:
    """Cache key of a translation: the model's bytes, the external files it
    reads, and the versions of PySD, of this pipeline and of the cache format."""
    import pysd

    h = hashlib.sha256()
    for part in (f"format {cache.FORMAT}", f"pysd {pysd.__version__}", source.sha256):
        h.update(part.encode() + b"\0")
    for name in _PIPELINE:
        h.update(hashlib.sha256((_HERE / name).read_bytes()).digest())
    for ext in sorted(prepared.externals, key=lambda e: e.stored):
        h.update(f"{ext.stored} {ext.sha256}".encode() + b"\0")
    return h.hexdigest()


def translate(source: Source, prepared: Prepared) -> Path:
    """Path of a private, verified copy of the model's PySD translation."""
    k = key(source, prepared)
    for _ in range(3):
        where = cache.publish("pysd", k, lambda folder: build(source, prepared, folder))
        try:
            return _private_copy(where, k)
        except cache.Tampered as exc:      # changed between the check and the read
            cache.discard(where, str(exc))
    raise SdInputError(f"the cached translation {where} keeps changing while it is read; "
                       "another program is writing in the cache. Set SD_CACHE_DIR to a "
                       "private folder.")


def _building(exc: BaseException) -> str | None:
    """The variable PySD's builder was building when it raised ``exc``: the
    innermost ``ElementBuilder`` on the traceback (read, never called)."""
    name, tb = None, exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if type(owner).__name__ == "ElementBuilder" and isinstance(
                getattr(owner, "name", None), str):
            name = owner.name
        tb = tb.tb_next
    return name


def build(source: Source, prepared: Prepared, folder: Path) -> None:
    """Write the translation of ``prepared`` into the empty folder ``folder``
    and verify every generated module (:mod:`sd.model.verify`)."""
    from pysd.builders.python.python_model_builder import ModelBuilder

    extend.reserve_names()
    abstract = copy.deepcopy(prepared.abstract)
    extend.adapt(abstract, str(source.path))
    for i, section in enumerate(abstract.sections):
        name = "model.py" if i == 0 else section.path.name
        if not _MODULE_NAME.match(name):
            raise SdInputError(f"{source.path}: macro {section.name!r} cannot be named as a "
                               "Python module; rename it with letters, digits and _ only.")
        section.path = folder / name
    if prepared.externals:
        (folder / "ext").mkdir(mode=0o700)
        for ext in prepared.externals:
            shutil.copyfile(ext.path, folder / ext.stored)
    with warnings.catch_warnings(record=True) as caught, deep_recursion():
        warnings.simplefilter("always")
        try:
            ModelBuilder(abstract).build_model()
        except RecursionError:
            raise SdInputError(f"{source.path}: an equation is nested too deeply to "
                               "translate.") from None
        except Exception as exc:  # noqa: BLE001 - PySD's builder raises many types
            name = _building(exc)
            what = f"{structure.where(source, name)}: PySD could not translate {name!r}" \
                if name else f"{source.path}: PySD could not translate the model"
            raise SdInputError(f"{what} ({type(exc).__name__}: {_short(exc)}).") from None
    missing = []
    for w in caught:
        m = _NOT_IMPLEMENTED.search(str(w.message))
        if m and m.group(1) not in missing:
            missing.append(m.group(1))
    if missing:
        raise SdInputError(
            f"{source.path}: PySD does not implement the Vensim function(s) "
            f"{', '.join(missing)}; rewrite those equations with supported functions "
            "(see https://pysd.readthedocs.io/en/master/structure/vensim_translation.html).")
    texts, docs = verify.model_strings(abstract)     # the builder's copy (extend.adapt)
    texts |= {ext.stored for ext in prepared.externals}
    modules = {p.name for p in folder.glob("*.py")}
    for path in folder.iterdir():
        if path.is_dir() and path.name == "ext":
            continue
        if path.suffix != ".py" or not _MODULE_NAME.match(path.name):
            raise SdInputError(f"{source.path}: PySD's builder wrote an unexpected file "
                               f"{path.name!r}; the model was refused.")
        verify.verify_translation(path.read_text(encoding="utf-8"), file=path.name,
                                  model=str(source.path), texts=texts, docs=docs,
                                  module_names=modules)


_PRIVATE: list = []


def _private_copy(where: Path, k: str) -> Path:
    """Copy the entry's verified bytes into a folder private to this process
    (no one else can change them between the check and the import, and no
    ``__pycache__`` from the cache is ever read)."""
    try:
        files = cache.read_verified(where, "pysd", k)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise cache.Tampered(f"unreadable: {exc}") from None
    private = _private_folder()
    with cache.writable(Path(tempfile.gettempdir()), "the temporary folder",
                        "Free some space, or set TMPDIR to a writable folder."):
        target = private / k[:40]
        if not target.is_dir():
            tmp = Path(tempfile.mkdtemp(dir=private))
            for rel, data in files.items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_bytes(data)
            tmp.rename(target)
    return target / "model.py"


def _private_folder() -> Path:
    with cache.writable(Path(tempfile.gettempdir()), "the temporary folder",
                        "Free some space, or set TMPDIR to a writable folder."):
        if not _PRIVATE:
            _PRIVATE.append(Path(tempfile.mkdtemp(prefix="sd-models-")))
            atexit.register(shutil.rmtree, _PRIVATE[0], True)
    return _PRIVATE[0]


def private_files(files) -> dict[str, Path]:
    """{private copy: original path} of data files' snapshots (``DataFile``),
    named by hash and keeping the suffix PySD's reader goes by."""
    out = {}
    for f in files:
        target = _private_folder() / f"data-{f.sha256[:40]}{f.path.suffix.lower()}"
        if not target.is_file():
            tmp = target.with_name(target.name + ".part")
            tmp.write_bytes(f.data)
            tmp.rename(target)
        out[str(target)] = f.path
    return out


def load(translation: Path, *, initialize: bool = True, data_files=None, model=None):
    """A PySD model object from a verified private translation, reading the
    data files (``{private copy: original}``, :func:`private_files`) if any."""
    import pysd

    extend.install()      # the functions sd adds, which translations may import
    before = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        with warnings.catch_warnings(), deep_recursion():    # compiling long equations
            warnings.simplefilter("ignore")
            try:
                if not data_files:
                    return pysd.load(str(translation), initialize=initialize)
                return pysd.load(str(translation), initialize=initialize,
                                 data_files=list(data_files))
            except (ValueError, KeyError, OSError) as exc:
                text = _short(exc)
                for private, original in (data_files or {}).items():
                    text = text.replace(str(private), str(original))
                missing = re.search(r"Data for (.+?) not found in (.+)", text)
                if missing:
                    text = (f"the data variable {missing.group(1)!r} is in none of them "
                            f"({missing.group(2)}); Vensim's exports name it in the first "
                            "column (or row) exactly as in the model")
                if missing or data_files:
                    raise SdInputError(f"{model}: the data files do not hold what the model "
                                       f"reads: {text}.") from None
                raise SdInputError(f"{model}: PySD could not load its translation ({text}).") \
                    from None
            except (TypeError, NameError, AttributeError, IndexError) as exc:
                raise SdInputError(f"{model}: PySD could not load its translation "
                                   f"({type(exc).__name__}: {_short(exc)}).") from None
    finally:
        sys.dont_write_bytecode = before


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."
