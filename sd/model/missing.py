"""Where a run may legitimately hold no number: what Vensim itself leaves blank.

A run that produces NaN has failed (:mod:`sd.simulation.simulate`), except in
two places Vensim leaves blank on purpose:

* elements a variable does not define. Vensim lets an equation cover part
  of a range (``x[A] = 1``, ``x[C] = 2`` over ``Dims: A, B, C``); ``x[B]`` is
  no variable at all (Vensim's output has no such column), while a result
  dataset, one array per variable, holds NaN there;
* Vensim's ``:NA:`` ("not available"), written by the modeler, and what is
  computed from it (``IF THEN ELSE(Time > 5, :NA:, Time)``). Vensim saves a
  blank; it is NaN here. A ``:RAW:`` data variable is ``:NA:`` between its
  data points, so it counts too. Only NaN is excused there, never an
  infinity.

Both are read from the parsed model, not guessed from the numbers.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from .structure import walk

#: Above this many element combinations a variable is taken as fully defined
#: (the check would cost more than it could find).
_MAX_CELLS = 1_000_000


def _key(name) -> str:
    return " ".join(str(name).replace("_", " ").lower().split())


@dataclass(frozen=True)
class Missing:
    """The blanks a model's runs may hold.

    Attributes
    ----------
    defined : dict
        Vensim name -> frozenset of element tuples (normalised names) the
        variable defines, for subscripted variables whose ranges are known;
        absent: every element is defined.
    na : frozenset
        Vensim names of the variables that may be ``:NA:``.
    """

    defined: dict
    na: frozenset

    def as_json(self) -> dict:
        """JSON-ready form (kept in the model's stored description)."""
        return {"defined": {k: sorted(map(list, v)) for k, v in self.defined.items()},
                "na": sorted(self.na)}

    @classmethod
    def from_json(cls, data: dict) -> "Missing":
        return cls(defined={k: frozenset(map(tuple, v)) for k, v in data["defined"].items()},
                   na=frozenset(data["na"]))

    def undefined(self, name: str, coords) -> np.ndarray | None:
        """Boolean array over ``coords`` (the element lists of the variable's
        dimensions, in order): True where the variable defines nothing. None
        when it defines every element."""
        cells = self.defined.get(name)
        if cells is None or not coords:
            return None
        keys = [[_key(e) for e in c] for c in coords]
        mask = np.array([combo not in cells for combo in itertools.product(*keys)],
                        dtype=bool).reshape([len(c) for c in coords])
        return mask if mask.any() else None


def of(abstract) -> Missing:
    """The :class:`Missing` of a parsed model (its main section)."""
    section = abstract.sections[0]
    return Missing(defined=_defined(section), na=frozenset(_na(section)))


# -- elements -------------------------------------------------------------------
def _defined(section) -> dict:
    ranges = {_key(r.name): r.subscripts for r in section.subscripts}

    def expand(name, seen=()):
        k = _key(name)
        if k not in ranges:
            return [k]                       # an element
        value = ranges[k]
        if isinstance(value, str) and k not in seen:
            return expand(value, seen + (k,))  # a copy of another range
        if isinstance(value, list):
            out = []
            for item in value:
                sub = expand(item, seen + (k,)) if _key(item) in ranges and \
                    _key(item) not in seen + (k,) else [_key(item)]
                if sub is None:
                    return None
                out += sub
            return out
        return None                          # elements read from a file

    out = {}
    for el in section.elements:
        cells: set = set()
        known = True
        for comp in el.components:
            subs, excepts = comp.subscripts
            if not subs:
                known = False
                break
            combos = _product([expand(s) for s in subs])
            if combos is None:
                known = False
                break
            for ex in excepts or []:
                removed = _product([expand(s) for s in ex])
                if removed is None:
                    known = False
                    break
                combos -= removed
            cells |= combos
        if known and cells:
            out[el.name] = frozenset(cells)
    return out


def _product(lists):
    if any(x is None for x in lists) or \
            math.prod(len(x) for x in lists) > _MAX_CELLS:
        return None
    return set(itertools.product(*lists))


# -- :NA: -------------------------------------------------------------------------
def _holds_na(node) -> bool:
    for n in walk(node):
        if isinstance(n, float) and math.isnan(n):
            return True
        if isinstance(n, np.ndarray) and n.dtype.kind == "f" and np.isnan(n).any():
            return True
    return False


def _na(section) -> set:
    """Variables whose equation holds ``:NA:``, and every variable computed from
    one of them (through any link, stocks and delays included)."""
    by_key = {_key(el.name): el.name for el in section.elements}
    readers: dict = {}
    seeds = []
    for el in section.elements:
        asts = [c.ast for c in el.components]
        if any(_holds_na(a) for a in asts) or \
                any(getattr(c, "keyword", None) == "raw" for c in el.components):
            seeds.append(el.name)
        for a in asts:
            for n in walk(a):
                if type(n).__name__ == "ReferenceStructure" and _key(n.reference) in by_key:
                    readers.setdefault(by_key[_key(n.reference)], set()).add(el.name)
    found, todo = set(seeds), list(seeds)
    while todo:
        for reader in readers.get(todo.pop(), ()):
            if reader not in found:
                found.add(reader)
                todo.append(reader)
    return found
