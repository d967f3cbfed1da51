"""From PySD's abstract model to a flat, scalar view of a Vensim model.

PySD's parser (through :mod:`sd.model.parse`, on the loaded model's snapshot) gives
elements whose components carry an AST and the subscripts they define. The
engine flattens every subscripted variable into one scalar *slot* per element
combination, so the code generator only ever deals with scalars: this makes
1-D (and simple N-D) subscripts cost nothing at run time and keeps the
generated loop free of array temporaries.

Nothing here evaluates the model; it only resolves names, dimensions and
which component defines each slot. Anything it cannot map exactly the way
PySD does raises :class:`UnsupportedModel` naming the construct and variable.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .common import CONTROL, UnsupportedModel, clean  # noqa: F401 (re-exported)


@dataclass
class Var:
    """One Vensim element, flattened.

    ``flat`` holds, per slot (row-major over ``dims``), the component that
    defines it and the binding of subscript names to element names.
    """

    name: str
    kind: str                      # aux | lookup | control
    dims: tuple = ()
    coords: tuple = ()             # tuple of element-name lists, per dim
    flat: list = field(default_factory=list)   # [(component, binding)]
    literal: bool = False          # every component is a number/array

    @property
    def size(self) -> int:
        return int(np.prod([len(c) for c in self.coords])) if self.coords else 1

    def labels(self) -> list:
        """Element tuples in slot order."""
        return list(itertools.product(*self.coords)) if self.coords else [()]


class ModelIR:
    """Variables, subscript ranges and lookups of one model's main section."""

    def __init__(self, model):
        """``model``: a loaded :class:`sd.model.Model` (its snapshot's parse is
        used) or the path of a ``.mdl`` (read and checked by :func:`sd.model.load`)."""
        if not hasattr(model, "abstract"):
            from ..model import load

            model = load(model)
        self.path = Path(model.path)
        self.model = model
        self.sources: list = []             # external files the model reads
        am = model.abstract
        section = next(s for s in am.sections if s.type == "main")
        self.ranges: dict[str, list] = {}
        self._read_ranges(section.subscripts)
        self.element_of: dict[str, str] = {}   # element name -> a range holding it
        for rname, elems in self.ranges.items():
            for e in elems:
                self.element_of.setdefault(e, rname)
        self.vars: dict[str, Var] = {}          # by clean name
        for el in section.elements:
            self._add_element(el)
        from .macros import read_macros

        self.macros = read_macros(self, [s for s in am.sections if s.type != "main"])

    # -- subscript ranges ------------------------------------------------
    def _read_ranges(self, subs) -> None:
        """Ranges by name, and each range's mapping targets as PySD's
        ``SubscriptManager`` records them (a copy ``A <-> B`` maps to B)."""
        self.mapping: dict[str, list] = {}
        pending = list(subs)
        for _ in range(len(pending) + 1):
            rest = []
            for r in pending:
                if isinstance(r.subscripts, list):
                    self.ranges[r.name] = list(r.subscripts)
                    # only a copy's ``mapping`` is PySD's shared mutable
                    # default list (other translations append to it); a
                    # range defined by its elements always has its own list
                    self.mapping[r.name] = list(r.mapping or [])
                elif isinstance(r.subscripts, str) and r.subscripts in self.ranges:
                    self.ranges[r.name] = list(self.ranges[r.subscripts])
                    self.mapping[r.name] = [r.subscripts]
                elif isinstance(r.subscripts, str):
                    rest.append(r)
                elif isinstance(r.subscripts, dict):
                    self.ranges[r.name] = self._file_range(r)
                    self.mapping[r.name] = []
                else:
                    raise UnsupportedModel(f"subscript range {r.name!r} defined by "
                                           f"{type(r.subscripts).__name__}")
            if not rest:
                self._expand_nested()
                for name, targets in self.mapping.items():
                    for t in targets:
                        if t not in self.ranges:
                            raise UnsupportedModel(f"subscript range {name!r} maps to "
                                                   f"unknown range {t!r}")
                        if len(self.ranges[t]) != len(self.ranges[name]):
                            raise UnsupportedModel(
                                f"subscript mapping {name!r} -> {t!r} between ranges of "
                                f"different sizes")
                return
            pending = rest
        raise UnsupportedModel(f"subscript range {pending[0].name!r} copies an unknown range")

    def _file_range(self, r) -> list:
        """``GET XLS/DIRECT SUBSCRIPT``: elements read from the file beside
        the model, with PySD's own reader."""
        from .external import read_subscript

        return read_subscript(self, r.name, r.subscripts)

    def _expand_nested(self) -> None:
        """``dim: A, sub1, B`` where ``sub1`` is itself a range: splice its
        elements in, as PySD does."""
        for _ in range(len(self.ranges) + 1):
            changed = False
            for name, elems in self.ranges.items():
                if any(e in self.ranges and e != name for e in elems):
                    out = []
                    for e in elems:
                        out.extend(self.ranges[e] if e in self.ranges and e != name else [e])
                    self.ranges[name] = out
                    changed = True
            if not changed:
                return
        raise UnsupportedModel("circular subscript range definitions")

    def elements(self, sub: str) -> list:
        """Elements named by a subscript in a definition: range or element."""
        if sub in self.ranges:
            return self.ranges[sub]
        if sub in self.element_of:
            return [sub]
        raise UnsupportedModel(f"unknown subscript {sub!r}")

    # -- elements --------------------------------------------------------
    def _add_element(self, el, into: dict | None = None) -> None:
        from pysd.translators.structures.abstract_model import (
            AbstractControlElement, AbstractData, AbstractLookup)

        import pysd.translators.structures.abstract_expressions as ae

        comps = el.components
        for c in comps:
            if isinstance(c, AbstractData) and (c.ast is None
                                                or isinstance(c.ast, ae.DataStructure)):
                raise UnsupportedModel(
                    f"data variable {el.name!r} without an equation: its values come from a "
                    "data file named at run time (PySD's data_files), which sd does not pass")

        def is_lookup(c):
            return isinstance(c, AbstractLookup) or isinstance(c.ast, ae.GetLookupsStructure)
        if isinstance(el, AbstractControlElement):
            kind = "control"
        elif all(is_lookup(c) for c in comps):
            kind = "lookup"
        elif any(is_lookup(c) for c in comps):
            raise UnsupportedModel(f"mixed lookup/expression definitions of {el.name!r}")
        else:
            kind = "aux"
        var = Var(el.name, kind)
        var.literal = all(_is_literal(c.ast) for c in comps)
        self._set_dims(var, comps)
        (self.vars if into is None else into)[clean(el.name)] = var

    def _set_dims(self, var: Var, comps) -> None:
        ndim = {len(c.subscripts[0]) for c in comps}
        if len(ndim) != 1:
            raise UnsupportedModel(f"components of {var.name!r} differ in dimension count")
        n = ndim.pop()
        dims = []
        for i in range(n):
            used = [c.subscripts[0][i] for c in comps]
            union = []
            for s in used:
                for e in self.elements(s):
                    if e not in union:
                        union.append(e)
            dims.append(self._range_for(used, union, var.name))
        dims = self._distinct_dims(dims, [[c.subscripts[0][i] for c in comps]
                                          for i in range(n)], var.name)
        var.dims = tuple(dims)
        var.coords = tuple(self.ranges[d] for d in dims)
        index = {lab: k for k, lab in enumerate(var.labels())}
        var.flat = [None] * len(index)
        for comp in comps:
            subs, excepts = comp.subscripts
            lists = [self.elements(s) for s in subs]
            skip = set()
            for exc in excepts:
                skip.update(itertools.product(*[self.elements(s) for s in exc]))
            for pos, combo in enumerate(itertools.product(*lists)):
                if combo in skip:
                    continue
                binding = {}
                for s, d, e in zip(subs, var.dims, combo):
                    binding[d] = e
                    if s in self.ranges:
                        binding[s] = e
                local = tuple(lst.index(e) for lst, e in zip(lists, combo))
                k = index[combo]
                if var.flat[k] is not None:
                    raise UnsupportedModel(f"{var.name!r}{list(combo)} is defined twice")
                var.flat[k] = (comp, binding, local)
        # elements no equation defines are NaN in PySD (xr.DataArray(np.nan))

    def _distinct_dims(self, dims, used, name) -> list:
        """A range repeated in one variable (``matrix[A, dim]`` with ``A`` an
        element of ``dim``): as PySD's ``make_merge_list``, the position that
        names the range keeps it, the others take another range with the same
        elements or a copy named ``<range><j>`` (shared by later variables)."""
        dims = list(dims)
        for d in dict.fromkeys(dims):
            pos = [i for i, x in enumerate(dims) if x == d]
            if len(pos) == 1:
                continue
            named = [i for i in pos if d in used[i]]
            if len(named) > 1:
                raise UnsupportedModel(f"subscript range {d!r} used twice in the definition "
                                       f"of {name!r}")
            keep = named[0] if named else pos[0]
            for i in pos:
                if i == keep:
                    continue
                elems = self.ranges[d]
                alt = next((r for r, e in self.ranges.items()
                            if r not in dims and set(e) == set(elems)), None)
                if alt is None:
                    j = 1
                    while f"{d}{j}" in self.ranges:
                        j += 1
                    alt = f"{d}{j}"
                    self.ranges[alt] = list(elems)
                    self.mapping[alt] = []
                dims[i] = alt
        return dims

    def _range_for(self, used, union, name) -> str:
        """The dimension PySD gives a variable position: the range whose
        elements are exactly (preferably) or minimally a superset of the union."""
        cands = [r for r in self.ranges if set(union) <= set(self.ranges[r])]
        if not cands:
            raise UnsupportedModel(f"no subscript range holds {union} in {name!r}")
        exact = [r for r in cands if len(self.ranges[r]) == len(union)]
        pool = exact or cands
        preferred = [r for r in pool if r in used]
        if preferred:
            best = preferred[0]
        else:
            best = min(pool, key=lambda r: (len(self.ranges[r]), list(self.ranges).index(r)))
        # keep the order of the chosen range (PySD outputs in range order)
        return best

    # -- references ------------------------------------------------------
    def resolve(self, var: Var, subs, binding: dict, where: str) -> int:
        """Slot index of ``var[subs]`` evaluated under ``binding``."""
        if subs is None:
            subs = list(var.dims)
        if len(subs) != len(var.dims):
            raise UnsupportedModel(f"reference to {var.name!r} with {len(subs)} subscripts "
                                   f"in {where!r}")
        idx = 0
        for sub, dim, coords in zip(subs, var.dims, var.coords):
            e = self._bind(sub, binding, where)
            if e not in coords:
                raise UnsupportedModel(f"subscript mapping {sub!r}->{dim!r} in {where!r}")
            idx = idx * len(coords) + coords.index(e)
        return idx

    def _bind(self, sub: str, binding: dict, where: str) -> str:
        if sub in binding:
            return binding[sub]
        if sub.endswith("!"):
            raise UnsupportedModel(f"vector operation over {sub!r} outside SUM/PROD/VMIN/VMAX "
                                   f"in {where!r}")
        if sub in self.ranges:
            # a mapped range (``DimC: c1, c2 -> DimB``) referenced inside a
            # definition over the target: PySD relabels the values by
            # position (element i of DimC stands for element i of DimB)
            for target in self.mapping.get(sub, ()):
                if target in binding and binding[target] in self.ranges[target]:
                    return self.ranges[sub][self.ranges[target].index(binding[target])]
            elems = set(self.ranges[sub])
            hits = {e for k, e in binding.items()
                    if k in self.ranges and e in elems
                    and (set(self.ranges[k]) <= elems or elems <= set(self.ranges[k]))}
            if len(hits) == 1:
                return hits.pop()
            raise UnsupportedModel(f"subscript {sub!r} cannot be matched (subscript "
                                   f"updimensioning or mapping) in {where!r}")
        if sub in self.element_of:
            return sub
        raise UnsupportedModel(f"unknown subscript {sub!r} in {where!r}")


def _is_literal(ast) -> bool:
    """A number, an array of numbers, or constants read from a file."""
    import pysd.translators.structures.abstract_expressions as ae

    if isinstance(ast, ae.GetConstantsStructure):
        return True
    return isinstance(ast, (int, float, np.ndarray, np.number)) and not isinstance(ast, bool)
