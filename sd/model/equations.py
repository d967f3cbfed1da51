"""The equations of a Vensim model as PySD's parser reads them, nothing built.

:func:`read_equations` runs PySD's Vensim parser through
:mod:`sd.model.parse` (which replaces the parser's ``eval`` with a literal-only
evaluator): no Python is written or imported, so it is safe on untrusted files. Units analysis, feedback loops and the sketch
checks all start from the :class:`Equations` it returns, so a check parses
the model once.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .._common import TIME_KEYS
from ..errors import SdInputError

__all__ = ["Element", "Equations", "read_equations", "norm"]

#: Vensim's control variables (normalised names).
CONTROL = frozenset(TIME_KEYS)


def norm(name: str) -> str:
    """Normalise a Vensim name the way PySD writes references (case, blanks, quotes)."""
    name = name.strip().strip('"')
    return re.sub(r"[\s_]+", "_", name).lower()


@dataclass(frozen=True)
class Element:
    """One equation (or several, one per subscript range) of the model.

    Attributes
    ----------
    name : str
        Vensim name as written.
    key : str
        Normalised name (:func:`norm`), the form PySD's references use.
    units : str
        The units field without its range ("" when empty).
    kind : str
        ``stock``, ``flow``, ``auxiliary``, ``constant``, ``lookup``,
        ``data`` or ``control``.
    asts : tuple
        The PySD abstract syntax tree of each component.
    limits : tuple
        The ``[min, max]`` range of the units field (None where absent).
    comment : str
        The comment field ("" when empty).
    """

    name: str
    key: str
    units: str
    kind: str
    asts: tuple = ()
    limits: tuple = (None, None)
    comment: str = ""


@dataclass(frozen=True)
class Equations:
    """All elements of a model, by normalised name.

    Attributes
    ----------
    path : pathlib.Path
        The ``.mdl`` file.
    elements : dict of str to Element
        By normalised name, in file order.
    flows : dict of str to tuple of (str, int)
        Stock key to its flows as (flow key, +1 inflow / -1 outflow / 0 unclear).
    """

    path: Path
    elements: dict = field(repr=False)
    flows: dict = field(repr=False)

    def name(self, key: str) -> str:
        """Vensim spelling of a normalised name (``Time`` for ``time``)."""
        if key == "time":
            return "Time"
        el = self.elements.get(key)
        return el.name if el else key


def read_equations(path) -> Equations:
    """Parse a ``.mdl`` with PySD's parser (through :mod:`sd.model.parse`).

    Parameters
    ----------
    path : str or pathlib.Path or sd.model.Model
        The Vensim model (a loaded :class:`~sd.model.Model` is not parsed again).

    Returns
    -------
    Equations

    Raises
    ------
    SdInputError
        When the file is missing or is not Vensim syntax PySD can parse
        (the message names the line).
    """
    from pysd.translators.structures import abstract_expressions as ae

    if hasattr(path, "abstract"):   # a loaded Model: its snapshot, parsed once
        model, path = path.abstract, path.path
    else:
        from .parse import parse
        from .source import read

        path = Path(path)
        if not path.is_file():
            raise SdInputError(f"{path}: no such model file.")
        model = parse(read(path))
    raw = []
    for section in model.sections[:1]:  # macros are their own sections: not model variables
        for element in section.elements:
            asts = tuple(c.ast for c in element.components)
            raw.append((element, asts, {type(c).__name__ for c in element.components}))
    flows: dict[str, tuple] = {}
    for element, asts, _ in raw:
        integ = [a for a in asts if isinstance(a, ae.IntegStructure)]
        if integ:
            flows[norm(element.name)] = _signed_flows(integ[0].flow)
    flow_keys = {f for pairs in flows.values() for f, _ in pairs}
    elements = {}
    for element, asts, ctypes in raw:
        key = norm(element.name)
        kind = _kind(key, asts, ctypes, key in flows, key in flow_keys)
        elements[key] = Element(name=element.name, key=key, units=(element.units or "").strip(),
                                kind=kind, asts=asts, limits=tuple(element.limits or (None, None)),
                                comment=" ".join((element.documentation or "").split()))
    flows = {s: tuple((f, sign) for f, sign in pairs if f in elements) for s, pairs in flows.items()}
    return Equations(path=path, elements=elements, flows=flows)


def _kind(key, asts, ctypes, is_stock, is_flow) -> str:
    from pysd.translators.structures import abstract_expressions as ae

    if key in CONTROL:
        return "control"
    if is_stock:
        return "stock"
    if "AbstractLookup" in ctypes or any(isinstance(a, ae.LookupsStructure) for a in asts):
        return "lookup"
    if "AbstractData" in ctypes:
        return "data"
    if is_flow:
        return "flow"
    if all(_is_literal(a) for a in asts):
        return "constant"
    return "auxiliary"


def _is_literal(ast) -> bool:
    import numpy as np

    return isinstance(ast, (int, float, np.ndarray, np.number))


def _signed_flows(node, sign: int = 1) -> tuple:
    """The references in a stock's rate with their sign (+1 in, -1 out, 0 unclear)."""
    from pysd.translators.structures import abstract_expressions as ae

    if isinstance(node, ae.ReferenceStructure):
        return ((norm(node.reference), sign),)
    if isinstance(node, ae.ArithmeticStructure):
        ops = list(node.operators)
        if ops == ["negative"]:
            return _signed_flows(node.arguments[0], -sign)
        if set(ops) <= {"+", "-"}:
            out = _signed_flows(node.arguments[0], sign)
            for op, arg in zip(ops, node.arguments[1:]):
                out += _signed_flows(arg, sign if op == "+" else -sign)
            return out
    refs: set[str] = set()
    _collect(node, refs)
    return tuple((r, 0) for r in sorted(refs))


def _collect(node, out: set) -> None:
    from pysd.translators.structures import abstract_expressions as ae

    if isinstance(node, ae.ReferenceStructure):
        out.add(norm(node.reference))
        return
    if isinstance(node, (list, tuple)):
        for item in node:
            _collect(item, out)
        return
    for name in getattr(node, "__dataclass_fields__", ()):
        _collect(getattr(node, name), out)


def references(node) -> set[str]:
    """Normalised names referenced anywhere in an AST (functions included)."""
    out: set[str] = set()
    _collect(node, out)
    return out
