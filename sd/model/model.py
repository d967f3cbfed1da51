"""Load a Vensim model once, run it many times in isolation, resolve its names.

The ``.mdl`` is the only source of a model. :func:`load` translates it with
PySD once per content hash into :mod:`sd.model.cache` (never next to the user's
file), reads the variable table (units, comments, kind) and returns a
:class:`Model`. :meth:`Model.fresh` gives a new PySD model object for every
run: PySD's ``run(params=...)`` changes the model it is called on for good, so
two runs must never share one.
"""
from __future__ import annotations

import re
import shutil
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Mapping

import pandas as pd

from . import cache
from ..errors import SdInputError, suggest

#: Bumped when the translation layout in the cache changes.
_CACHE_VERSION = "1"

#: Vensim's control variables, present in every model.
CONTROL = ("INITIAL TIME", "FINAL TIME", "TIME STEP", "SAVEPER")


@dataclass(frozen=True)
class Variable:
    """One model variable as a modeler sees it in Vensim.

    Attributes
    ----------
    name : str
        Vensim name, as written in the ``.mdl``.
    py_name : str
        PySD's Python-safe name.
    kind : str
        ``stock``, ``flow``, ``auxiliary``, ``constant``, ``lookup`` or
        ``control``.
    units : str
        Vensim units ("" when none are given).
    comment : str
        The comment field of the equation ("" when empty).
    subscripts : tuple of str
        Subscript ranges the variable is defined over (empty if scalar).
    """

    name: str
    py_name: str
    kind: str
    units: str = ""
    comment: str = ""
    subscripts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Model:
    """A translated Vensim model: its file, hash, variables and translation.

    Build one with :func:`load`. The object itself holds no simulation
    state; every run starts from :meth:`fresh`.
    """

    path: Path
    sha256: str
    translation: Path
    variables: Mapping[str, Variable] = field(repr=False)

    # -- names -----------------------------------------------------------
    @cached_property
    def _by_canon(self) -> dict[str, Variable]:
        table = {}
        for var in self.variables.values():
            table[_canon(var.name)] = var
            table[_canon(var.py_name)] = var
        return table

    def variable(self, name: str, *, kinds: tuple[str, ...] | None = None,
                 what: str = "variable", where: str = "") -> Variable:
        """Return the variable called ``name`` (Vensim or Python name).

        Matching ignores case, repeated blanks and ``_`` versus space, as
        Vensim does. Raise :class:`SdInputError` with the closest names when
        there is no such variable, or when it is not one of ``kinds``;
        ``where`` (e.g. ``" (in --set)"``) says where the name came from.
        """
        var = self._by_canon.get(_canon(name))
        pool = [v.name for v in self.variables.values()
                if kinds is None or v.kind in kinds]
        if var is None:
            hint = suggest(name, pool) or suggest(name, self.names())
            raise SdInputError(
                f"{self.path.name} has no {what} named {name!r}{where}."
                + (hint or f" Run 'sd info {self.path}' to list them."))
        if kinds is not None and var.kind not in kinds:
            raise SdInputError(
                f"{var.name!r}{where} is a {var.kind} in {self.path.name}, not a {what}."
                + (" Lookup tables are changed as x/y points in a scenario's [lookups] table."
                   if var.kind == "lookup" else "")
                + (suggest(name, pool) or f" The {what}s are listed by 'sd info {self.path}'."))
        return var

    def names(self, *kinds: str) -> list[str]:
        """Vensim names of the variables of the given kinds (all if none)."""
        return [v.name for v in self.variables.values() if not kinds or v.kind in kinds]

    # -- runs ------------------------------------------------------------
    def fresh(self):
        """A new PySD model object loaded from the cached translation."""
        import pysd

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pysd.load(str(self.translation))


def load(path: str | Path) -> Model:
    """Translate ``path`` (a Vensim ``.mdl``) once and describe its variables.

    Parameters
    ----------
    path : str or Path
        The Vensim model file.

    Returns
    -------
    Model

    Raises
    ------
    SdInputError
        The file is missing, is not a ``.mdl``, cannot be parsed (the message
        gives the line), or uses a function PySD does not implement.
    """
    path = Path(path)
    if not path.is_file():
        near = suggest(path.name, [p.name for p in path.parent.glob("*.mdl")]) \
            if path.parent.is_dir() else ""
        raise SdInputError(f"Model file not found: {path}." + near)
    if path.suffix.lower() != ".mdl":
        raise SdInputError(f"{path}: expected a Vensim model file ending in .mdl.")
    _check_text(path)
    digest = cache.file_sha256(path)
    translation = _translate(path, digest)
    pysd_model = _load_translation(translation)
    return Model(path=path.resolve(), sha256=digest, translation=translation,
                 variables=_describe(pysd_model))


def _check_text(path: Path) -> None:
    """Refuse files PySD would fail on obscurely: empty or not text."""
    data = path.read_bytes()
    if not data.strip():
        raise SdInputError(f"{path}: the file is empty; expected Vensim equations (save the "
                           "model from Vensim as a text .mdl).")
    if b"\x00" in data[:4096]:
        raise SdInputError(f"{path}: not a text file; Vensim's binary .vmf/.vpm formats are not "
                           "read: save the model from Vensim as a text .mdl.")


def _translate(path: Path, digest: str) -> Path:
    import pysd

    where = cache.entry("pysd", f"{digest}-{pysd.__version__}-{_CACHE_VERSION}")
    target = where / "model.py"
    if target.is_file():
        return target
    # Translate in a scratch copy so a half-written translation never sits in
    # the cache under its final name, and the user's folder is never touched.
    scratch = where / "tmp"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    shutil.copyfile(path, scratch / "model.mdl")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            pysd.read_vensim(str(scratch / "model.mdl"), initialize=False)
        except Exception as exc:  # parsimonious, PySD and Python errors alike
            raise SdInputError(_parse_message(path, exc)) from exc
    missing = _not_implemented(caught)
    if missing:
        raise SdInputError(
            f"{path}: PySD does not implement the Vensim function(s) "
            f"{', '.join(missing)}; rewrite those equations with supported functions "
            "(see https://pysd.readthedocs.io/en/master/structure/vensim_translation.html).")
    (scratch / "model.py").replace(target)
    shutil.rmtree(scratch, ignore_errors=True)
    return target


def _load_translation(translation: Path):
    import pysd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pysd.load(str(translation), initialize=False)


_NOT_IMPLEMENTED = re.compile(r"Trying to translate '([^']+)' which it is not implemented")


def _not_implemented(caught) -> list[str]:
    names = []
    for w in caught:
        m = _NOT_IMPLEMENTED.search(str(w.message))
        if m and m.group(1) not in names:
            names.append(m.group(1))
    return names


def _parse_message(path: Path, exc: Exception) -> str:
    """Turn a PySD/parsimonious failure into 'file:line: what went wrong'."""
    text = getattr(exc, "text", None)
    pos = getattr(exc, "pos", None)
    if isinstance(text, str) and isinstance(pos, int):
        line = _line_of(path, text, pos)
        where = f"{path}:{line}" if line else str(path)
        snippet = text[max(0, pos - 30):pos + 30].replace("\n", " ").strip()
        return (f"{where}: Vensim syntax PySD cannot parse near {snippet!r} "
                f"({type(exc).__name__}: {exc}). Check the equation's parentheses, "
                "operators and the ~ and | separators.")
    return f"{path}: PySD could not translate the model ({type(exc).__name__}: {exc})."


def _line_of(path: Path, text: str, pos: int) -> int | None:
    """Line in ``path`` where character ``pos`` of the element ``text`` lies.

    PySD hands the parser an element with its whitespace normalised, so the
    element is found again by its tokens, whatever blanks separate them.
    """
    tokens = text.split()
    if not tokens:
        return None
    source = path.read_text(encoding="utf-8", errors="replace")
    found = re.search(r"\s*".join(map(re.escape, tokens)), source)
    if found is None:
        return None
    # Count the tokens before ``pos`` to land on the offending line.
    before = len(text[:pos].split())
    inner = re.match(r"\s*".join(map(re.escape, tokens[:before])) or "", source[found.start():])
    offset = found.start() + (inner.end() if inner else 0)
    return source.count("\n", 0, offset) + 1


def _describe(pysd_model) -> dict[str, Variable]:
    """Classify every documented variable as Vensim users think of them."""
    doc = pysd_model.doc
    flows = _flow_py_names(pysd_model)
    out: dict[str, Variable] = {}
    for row in doc.itertuples(index=False):
        name, py = row[0], row[1]
        if name == "Time":
            continue
        ctype, subtype = str(row.Type), str(row.Subtype)
        if name in CONTROL:
            kind = "control"
        elif ctype == "Stateful" and subtype == "Integ":
            kind = "stock"
        elif ctype == "Lookup":
            kind = "lookup"
        elif py in flows:
            kind = "flow"
        elif ctype == "Constant":
            kind = "constant"
        else:
            kind = "auxiliary"
        subs = tuple(row.Subscripts) if isinstance(row.Subscripts, (list, tuple)) else ()
        out[name] = Variable(name=name, py_name=py, kind=kind,
                             units=_text(row.Units), comment=_text(row.Comment),
                             subscripts=subs)
    return out


def _flow_py_names(pysd_model) -> set[str]:
    deps = pysd_model._dependencies
    flows: set[str] = set()
    for key, value in deps.items():
        if key.startswith("_integ_") and isinstance(value, dict):
            flows.update(value.get("step", {}))
    return flows


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value).strip()


def _canon(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())
