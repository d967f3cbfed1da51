"""Load a Vensim model once, run it many times in isolation, resolve its names.

The ``.mdl`` is the only source of a model, and it is untrusted data.
:func:`load` reads the file once (:mod:`sd.model.source`: the snapshot every
later use works from), parses it (:mod:`sd.model.parse`), checks every text
in it (:mod:`sd.model.sanitize`) and reads the variable table (units,
comments, kinds) from the parsed model: ``sd info`` and ``sd check`` never
generate or import code. The PySD translation is built, verified and cached
only when the PySD engine first needs it (:attr:`Model.translation`,
:mod:`sd.model.translate`). :meth:`Model.fresh` gives a new PySD model object
for every run: PySD's ``run(params=...)`` changes the model it is called on
for good, so two runs must never share one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Mapping

from .._common import CONTROL
from ..errors import SdInputError, canon, suggest
from . import datafiles, sanitize, source as source_mod, structure
from .parse import parse
from .structure import STATEFUL as _STATEFUL, children as _children, walk


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
    limits : tuple
        ``(low, high)`` of the range in the units field (Vensim's slider
        range, ``~ Dmnl [0.05,0.5]``); None where absent or ``?``.
    """

    name: str
    py_name: str
    kind: str
    units: str = ""
    comment: str = ""
    subscripts: tuple[str, ...] = ()
    limits: tuple = (None, None)


@dataclass(frozen=True)
class Model:
    """A Vensim model as read once: file, hash, variables and parsed equations.

    Build one with :func:`load`. The object is a snapshot: every engine and
    every run of it uses the text read by :func:`load`, whatever happens to
    the file afterwards. It holds no simulation state; every PySD run starts
    from :meth:`fresh`.

    Attributes
    ----------
    path : Path
        The model file (absolute).
    sha256 : str
        SHA-256 of the file's bytes as read.
    variables : mapping of str to Variable
        By Vensim name, in file order.
    source : sd.model.source.Source
        The snapshot: bytes, decoded text, encoding.
    abstract : pysd AbstractModel
        PySD's parse of the snapshot (never modified); parsed on first use
        when the model's description came from the cache.
    prepared : sd.model.sanitize.Prepared
        The checked copy code is generated from, and the external files.
    externals : tuple of sd.model.sanitize.External
        The external data files the model reads.
    stored : dict or None
        The description :mod:`sd.model.stored` keeps in the cache
        (dependencies, time settings, entries), when there is one.
    data_files : tuple of sd.model.datafiles.DataFile
        Data files for the data variables without an equation (read once).
    """

    path: Path
    sha256: str
    variables: Mapping[str, Variable] = field(repr=False)
    source: source_mod.Source = field(repr=False, compare=False)
    parsed: "Parsed" = field(repr=False, compare=False)
    stored: dict | None = field(default=None, repr=False, compare=False)
    data_files: tuple = field(default=(), repr=False)

    @property
    def abstract(self):
        return self.parsed.abstract

    @property
    def prepared(self) -> sanitize.Prepared:
        return self.parsed.prepared

    @property
    def externals(self) -> tuple:
        return self.parsed.externals

    @property
    def key(self) -> str:
        """Content key: the model's equations (the text PySD parses, without
        the sketch, so moving a diagram element changes nothing that is
        compiled), the external files it reads and its data files."""
        from .digest import content_key, equations_digest

        key = content_key(equations_digest(self.source), self.externals)
        if not self.data_files:
            return key
        import hashlib

        return hashlib.sha256(" ".join([key, *(d.sha256 for d in self.data_files)])
                              .encode()).hexdigest()

    @cached_property
    def translation(self) -> Path:
        """The verified PySD translation (built and cached on first use), in a
        folder private to this process."""
        from .translate import translate

        return translate(self.source, self.prepared)

    @cached_property
    def dependencies(self) -> dict[str, tuple[str, ...]]:
        """Vensim name -> the variables its equation reads within one time step.

        A stock or another stateful variable (SMOOTH, DELAY, ...) reads none:
        its value comes from the previous step. Used to name the root of a
        NaN rather than one of its consequences.
        """
        if self.stored is not None and "dependencies" in self.stored:
            return {k: tuple(v) for k, v in self.stored["dependencies"].items()}
        by_clean = {v.name.lower().replace(" ", "_"): v.name for v in self.variables.values()}
        out = {}
        for el in self.abstract.sections[0].elements:
            refs = set().union(*(_direct_refs(c.ast) for c in el.components))
            out[el.name] = tuple(sorted(by_clean[r] for r in refs if r in by_clean))
        return out

    @cached_property
    def missing(self):
        """Where a run may hold no number (:mod:`sd.model.missing`): elements a
        variable does not define, and Vensim's ``:NA:``."""
        from . import missing

        if self.stored is not None and "missing" in self.stored:
            return missing.Missing.from_json(self.stored["missing"])
        return missing.of(self.abstract)

    # -- names -----------------------------------------------------------
    @cached_property
    def _by_canon(self) -> dict[str, Variable]:
        table = {}
        for var in self.variables.values():
            table[canon(var.name)] = var
            table[canon(var.py_name)] = var
        return table

    def variable(self, name: str, *, kinds: tuple[str, ...] | None = None,
                 what: str = "variable", where: str = "") -> Variable:
        """Return the variable called ``name`` (Vensim or Python name).

        Matching ignores case, repeated blanks and ``_`` versus space, as
        Vensim does. Raise :class:`SdInputError` with the closest names when
        there is no such variable, or when it is not one of ``kinds``;
        ``where`` (e.g. ``" (in --set)"``) says where the name came from.
        """
        var = self._by_canon.get(canon(name))
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
        """A new PySD model object loaded from the verified translation (and the
        data files' snapshot)."""
        from .translate import load as load_translation

        datafiles.require(self.path, self.abstract, self.data_files)
        return load_translation(self.translation, data_files=self._data_paths,
                                model=self.path)

    @cached_property
    def _data_paths(self) -> dict:
        from .translate import private_files

        return private_files(self.data_files)


class Parsed:
    """The parse of a snapshot and its checked copy: given at load, or made on
    first use for a model whose description came from the cache (the file
    passed every check when that description was made)."""

    def __init__(self, source: source_mod.Source, abstract=None,
                 prepared: sanitize.Prepared | None = None, externals: tuple | None = None):
        import threading

        self._source, self._abstract, self._prepared = source, abstract, prepared
        self._externals = externals
        self._lock = threading.Lock()

    def __getstate__(self):          # a lock does not pickle; a new one is made
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state):
        import threading

        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _parse(self) -> None:
        with self._lock:
            if self._prepared is None:
                abstract = parse(self._source)
                self._prepared = sanitize.prepare(abstract, self._source)
                self._abstract = abstract

    @property
    def abstract(self):
        if self._abstract is None:
            self._parse()
        return self._abstract

    @property
    def prepared(self) -> sanitize.Prepared:
        if self._prepared is None:
            self._parse()
        return self._prepared

    @property
    def externals(self) -> tuple:
        if self._externals is not None:
            return self._externals
        return self.prepared.externals


#: Model file suffixes: Vensim, then XMILE (Stella, iThink, Simlin).
SUFFIXES = (".mdl", *source_mod.XMILE_SUFFIXES)


def check_path(path: Path) -> None:
    """Refuse a path that is not an existing model file (closest names)."""
    if path.exists() and not path.is_file():
        what = "a folder" if path.is_dir() else "not a regular file (a device, pipe or socket)"
        raise SdInputError(f"{path}: is {what}; expected a Vensim .mdl or XMILE model file.")
    if not path.is_file():
        near = suggest(path.name, [p.name for p in path.parent.iterdir()
                                   if p.suffix.lower() in SUFFIXES]) \
            if path.parent.is_dir() else ""
        raise SdInputError(f"Model file not found: {path}." + near)
    if path.suffix.lower() not in SUFFIXES:
        raise SdInputError(f"{path}: expected a Vensim model file ending in .mdl, or an "
                           "XMILE model (.xmile, .stmx, .itmx).")


def from_source(src: source_mod.Source, known_names: dict | None = None,
                data_files: tuple = ()) -> Model:
    """The :class:`Model` of an already read file (see :func:`load`);
    ``known_names`` as in :func:`describe`; ``data_files`` as read by
    :func:`sd.model.datafiles.read`."""
    abstract = parse(src)
    prepared = sanitize.prepare(abstract, src)
    structure.check(abstract, src)
    datafiles.check(src.path, abstract, data_files)
    return Model(path=src.path, sha256=src.sha256, variables=describe(abstract, known_names),
                 source=src, parsed=Parsed(src, abstract, prepared), data_files=data_files)


def describe(abstract, known_names: dict | None = None) -> dict[str, Variable]:
    """The variable table of the main section, classified as PySD's builder
    types its components (``Constant``: no reference to anything; a stock:
    an INTEG; a flow: referenced directly by a stock's rate).

    ``known_names`` (Vensim name -> PySD name, in file order) are the Python
    names of an earlier version of the model: PySD names a variable from the
    ordered list of all names alone, so when that list is unchanged (an
    equation edit) they are reused instead of importing PySD's namespace
    module, which imports scipy (~0.5 s)."""
    from pysd.translators.structures.abstract_model import AbstractLookup

    section = abstract.sections[0]
    if known_names is not None and list(known_names) == [el.name for el in section.elements] \
            and not section.params:
        py_names = dict(known_names)
    else:
        from .extend import reserve_names

        names = reserve_names()(section.params)
        for el in section.elements:
            names.add_to_namespace(el.name)
        py_names = names.namespace
    ranges = {r.name: r.subscripts for r in section.subscripts}
    variables = {el.name.lower().replace(" ", "_") for el in section.elements} | {"time"}
    flows: set = set()
    for el in section.elements:
        for comp in el.components:
            for integ in _statefuls(comp.ast, "IntegStructure"):
                flows |= _direct_refs(integ.flow)
    out: dict[str, Variable] = {}
    for el in section.elements:
        asts = [c.ast for c in el.components]
        clean = el.name.lower().replace(" ", "_")
        if el.name in CONTROL:
            kind = "control"
        elif _outer_stateful(asts) == "IntegStructure":
            kind = "stock"
        elif all(isinstance(c, AbstractLookup) or _is_type(c.ast, "GetLookupsStructure")
                 for c in el.components):
            kind = "lookup"
        elif clean in flows:
            kind = "flow"
        elif all(_constant(c, variables) for c in el.components):
            kind = "constant"
        else:
            kind = "auxiliary"
        out[el.name] = Variable(name=el.name, py_name=py_names[el.name], kind=kind,
                                units=(el.units or "").strip(),
                                comment=(el.documentation or "").strip(),
                                subscripts=_dims(el.components, ranges),
                                limits=_limits(el.limits))
    return out


def _limits(limits) -> tuple:
    """``(low, high)`` of a units-field range; None for an absent or ``?`` end."""
    import math

    ends = tuple(limits or ())[:2] + (None, None)
    return tuple(float(v) if v is not None and math.isfinite(v) else None for v in ends[:2])


def _is_type(node, name: str) -> bool:
    return type(node).__name__ == name


def _statefuls(node, name: str):
    return (n for n in walk(node) if _is_type(n, name))


def _outer_stateful(asts) -> str | None:
    """PySD types a component by the outermost stateful in it (its builder
    runs last)."""
    found = None
    for ast in asts:
        stack = [ast]
        while stack:
            node = stack.pop()
            if type(node).__name__ in _STATEFUL:
                found = type(node).__name__
                break
            stack.extend(_children(node))
    return found


def _direct_refs(node) -> set:
    """Names a rate depends on directly (statefuls inside it are objects)."""
    if type(node).__name__ in _STATEFUL:
        return set()
    if _is_type(node, "ReferenceStructure"):
        return {node.reference}
    out: set = set()
    for child in _children(node):
        out |= _direct_refs(child)
    return out


def _constant(comp, variables: set) -> bool:
    """PySD's type ``Constant``: an external constant, or no reference at all."""
    if _is_type(comp.ast, "GetConstantsStructure"):
        return True
    if type(comp).__name__ in ("AbstractLookup", "AbstractData"):
        return False
    return _outer_stateful([comp.ast]) is None and not _any_ref(comp.ast, variables) and \
        not _any_type(comp.ast, ("GetDataStructure", "GetLookupsStructure", "DataStructure"))


def _any_ref(node, variables: set) -> bool:
    """Whether ``node`` depends on a variable or the clock (a subscript range
    or element used as a value is a number)."""
    if _is_type(node, "ReferenceStructure"):
        return node.reference in variables
    if _is_type(node, "CallStructure"):
        # a built-in function is no dependency unless it reads the clock (PySD
        # adds "time" to its dependencies); a lookup or macro call is one
        from pysd.builders.python.python_functions import functionspace

        fn = node.function.reference
        if fn not in functionspace or fn == "active_initial" or fn.startswith("random") \
                or "__data" in functionspace[fn][0]:
            return True
        return any(_any_ref(a, variables) for a in node.arguments)
    return any(_any_ref(c, variables) for c in _children(node))


def _any_type(node, names) -> bool:
    if type(node).__name__ in names:
        return True
    return any(_any_type(c, names) for c in _children(node))


def _dims(components, ranges) -> tuple:
    subs = components[0].subscripts[0] if components and components[0].subscripts else []
    out = []
    for s in subs:
        if s in ranges:
            out.append(s)
        else:
            out.append(next((r for r, el in ranges.items()
                             if isinstance(el, list) and s in el), s))
    return tuple(out)
