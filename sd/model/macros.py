"""Vensim macros expanded into the model the PySD builder sees: one copy per call.

PySD builds a macro as a separate module and each call as a ``Macro`` object
that evaluates the macro's variables as whole values. That breaks where
Vensim evaluates a macro per element: a macro called in a subscripted
equation (``CX[N] = CLIP(0, 1, X[N], 1)``: ``'int' object has no attribute
'values'``, or endless recursion), and a macro named like a Python built-in.
Vensim itself treats a macro as text substituted at each call, and so does
:func:`inline`, on the builder's copy of the abstract model
(:mod:`sd.model.extend`):

* every call ``M(a, b)`` in an equation defined over ``[subs]`` becomes a
  reference ``M#k.M[subs]`` to the copy ``k`` of the macro's output
  variable; each argument becomes a variable ``M#k.param[subs] = a`` (so an
  argument is computed once per step, as in Vensim, even a RANDOM draw);
  each variable ``X`` of the macro becomes ``M#k.X[subs]``, with its
  references to parameters and to the macro's variables renamed, and its
  stocks and delays its own;
* calls inside macros are expanded in turn (at most :data:`MAX_DEPTH` deep);
* a macro with extra outputs (``:MACRO: SSTATS(h, s : R2, MAE)``) is called
  once per output, with a selector :mod:`sd.model.prepass` added (0 the
  macro's value, k its k-th output): each such call is a copy of its own.

The copies are model variables for the builder only: the variable table,
the results and the engines see the model as written (the fast engine
inlines macros itself).
"""
from __future__ import annotations

import copy
import dataclasses
import itertools

from ..errors import SdInputError

#: Expansion depth at which a macro calling itself is refused.
MAX_DEPTH = 20
#: Marks an expanded copy in a variable name (no Vensim name holds it).
MARK = "#"


def _clean(name: str) -> str:
    return name.lower().replace(" ", "_")


def is_copy(name: str) -> bool:
    """Whether ``name`` is a variable :func:`inline` made."""
    return MARK in name and "." in name.split(MARK, 1)[1]


def inline(abstract, where: str = "") -> None:
    """Expand every macro call of ``abstract`` (in place) and drop the macros."""
    macros = {_clean(s.name): s for s in abstract.sections[1:]}
    if not macros:
        return
    main = abstract.sections[0]
    counter = itertools.count(1)
    work = [(el, 0) for el in main.elements]
    while work:
        el, depth = work.pop(0)
        for comp in el.components:
            made: list = []
            comp.ast = _expand(comp.ast, comp.subscripts, macros, counter, made, el, where,
                               depth)
            work += [(new, depth + 1) for new in made]
            main.elements += made
    abstract.sections = [main]


def _expand(node, subscripts, macros, counter, made, owner, where, depth):
    """``node`` with every macro call replaced by a reference to its copy."""
    from pysd.translators.structures import abstract_expressions as ae

    if isinstance(node, ae.CallStructure) and node.function.reference in macros:
        if depth >= MAX_DEPTH:
            raise SdInputError(f"{where}: variable {owner.name!r}: macros call each other "
                               f"more than {MAX_DEPTH} deep (a macro calling itself?).")
        args = [_expand(a, subscripts, macros, counter, made, owner, where, depth)
                for a in node.arguments]
        return _instance(macros[node.function.reference], args, subscripts, next(counter),
                         made, owner, where)
    if isinstance(node, (list, tuple)):
        items = [_expand(v, subscripts, macros, counter, made, owner, where, depth)
                 for v in node]
        return type(node)(items) if isinstance(node, list) else tuple(items)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            new = _expand(value, subscripts, macros, counter, made, owner, where, depth)
            if new is not value:
                object.__setattr__(node, f.name, new)
    return node


def _instance(macro, args, subscripts, k, made, owner, where):
    """Add the copy ``k`` of ``macro`` for arguments ``args`` to ``made``; return
    the reference that replaces the call."""
    from pysd.translators.structures import abstract_expressions as ae
    from pysd.translators.structures.abstract_model import AbstractComponent, AbstractElement

    name = macro.name.upper().replace("_", " ")
    wanted = macro.name
    if macro.returns and len(args) == len(macro.params) + 1 and \
            isinstance(args[-1], (int, float)) and 0 <= args[-1] <= len(macro.returns):
        # an output selector written by sd.model.prepass: 0 the macro's value,
        # k its k-th extra output
        wanted = macro.returns[int(args[-1]) - 1] if args[-1] else macro.name
        args = args[:-1]
    if len(args) != len(macro.params):
        raise SdInputError(f"{where}: variable {owner.name!r}: macro {name} takes "
                           f"{len(macro.params)} arguments, {len(args)} given.")
    prefix = f"{name}{MARK}{k}."
    subs = list(subscripts[0]) if subscripts and subscripts[0] else []
    ref_subs = ae.SubscriptsReferenceStructure(list(subs)) if subs else None
    renamed = {_clean(p): _clean(prefix + p) for p in macro.params}
    renamed |= {_clean(el.name): _clean(prefix + el.name) for el in macro.elements}
    for p, arg in zip(macro.params, args):
        made.append(AbstractElement(
            name=prefix + p, units="", limits=(None, None), documentation="",
            components=[AbstractComponent(subscripts=copy.deepcopy(subscripts), ast=arg)]))
    output = None
    for el in macro.elements:
        new = copy.deepcopy(el)
        new.name = prefix + el.name
        for comp in new.components:
            if comp.subscripts and comp.subscripts[0]:
                raise SdInputError(f"{where}: macro {name}: {el.name!r} is subscripted inside "
                                   "the macro, which sd does not expand.")
            comp.subscripts = copy.deepcopy(subscripts)
            try:
                comp.ast = _rename(comp.ast, renamed, ref_subs)
            except ValueError:
                raise SdInputError(f"{where}: macro {name}: {el.name!r} uses a subscripted "
                                   "variable of the macro, which sd does not expand.") from None
        made.append(new)
        if _clean(el.name) == _clean(wanted):
            output = new
    if output is None:
        raise SdInputError(f"{where}: macro {name} does not define its output {wanted!r}.")
    return ae.ReferenceStructure(_clean(output.name), copy.deepcopy(ref_subs))


def _rename(node, renamed: dict, ref_subs):
    """References to the macro's parameters and variables, renamed to the copy's."""
    from pysd.translators.structures import abstract_expressions as ae

    if isinstance(node, ae.ReferenceStructure) and node.reference in renamed:
        if node.subscripts is not None:
            raise ValueError("subscripted reference inside a macro")
        return ae.ReferenceStructure(renamed[node.reference], copy.deepcopy(ref_subs))
    if isinstance(node, (list, tuple)):
        items = [_rename(v, renamed, ref_subs) for v in node]
        return type(node)(items) if isinstance(node, list) else tuple(items)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            new = _rename(value, renamed, ref_subs)
            if new is not value:
                object.__setattr__(node, f.name, new)
    return node
