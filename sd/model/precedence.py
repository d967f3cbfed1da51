"""Vensim's precedence of ``:AND:`` over ``:OR:``, made explicit in the parse.

PySD's grammar reads ``a :AND: b :OR: c`` as one flat logical structure
(operators ``[':AND:', ':OR:']``, three operands) and its builder nests it
from the right, ``a and (b or c)``; the fast engine read it from the left.
Vensim binds ``:AND:`` tighter than ``:OR:`` (as C and Java do):
``(a and b) or c``. :func:`group` rewrites every such flat structure, in
place, as the ``:OR:`` of its ``:AND:`` groups, so both engines compute what
Vensim computes.
"""
from __future__ import annotations

from .structure import walk

_LOGICAL = (":AND:", ":OR:")


def group(abstract) -> None:
    """Nest every mixed ``:AND:``/``:OR:`` chain of ``abstract`` (module docstring)."""
    from pysd.translators.structures import abstract_expressions as ae

    for section in abstract.sections:
        for el in section.elements:
            for comp in el.components:
                for node in walk(comp.ast):
                    if isinstance(node, ae.LogicStructure):
                        _regroup(node, ae)


def _regroup(node, ae) -> None:
    ops = [str(o).upper() for o in node.operators]
    if len(set(ops)) < 2 or not set(ops) <= set(_LOGICAL):
        return
    args = list(node.arguments)
    groups, current = [], [args[0]]
    for op, arg in zip(ops, args[1:]):
        if op == ":OR:":
            groups.append(current)
            current = [arg]
        else:
            current.append(arg)
    groups.append(current)
    terms = tuple(g[0] if len(g) == 1 else ae.LogicStructure([":AND:"] * (len(g) - 1), tuple(g))
                  for g in groups)
    object.__setattr__(node, "operators", [":OR:"] * (len(terms) - 1))
    object.__setattr__(node, "arguments", terms)
