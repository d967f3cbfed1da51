"""DELAY MATERIAL with a constant delay time, read as the DELAY FIXED it equals.

Vensim's ``DELAY MATERIAL(input, delay time, initial value, missval)`` is
"the same as DELAY FIXED except that delay time can be a variable": while the
delay time does not change, every input leaves exactly one delay time later,
so the missing value is never used and the output is DELAY FIXED's. PySD
implements neither variant's variable delay, so :func:`fix` rewrites each
DELAY MATERIAL whose delay time is a constant for the whole run (numbers and
constants, also through a macro's parameter when every call passes one) as
a DELAY FIXED structure, which both engines run. A delay time that may
change during the run is left as written and refused by name
(:mod:`sd.model.structure`).
"""
from __future__ import annotations

import dataclasses

from .structure import walk

NAME = "delay_material"


def _clean(name: str) -> str:
    return name.lower().replace(" ", "_")


def _constants(section) -> set:
    """Clean names of the section's variables that hold the same value for a
    whole run: every component numbers and arithmetic on such variables
    (one pass over the dependencies: linear in the model's size)."""
    from pysd.translators.structures import abstract_expressions as ae

    refs: dict = {}
    for el in section.elements:
        names: set = set()
        if all(type(c).__name__ in ("AbstractComponent", "AbstractUnchangeableConstant") and
               _constant(c.ast, None, ae, names) for c in el.components):
            refs[_clean(el.name)] = names
    pending, users = {}, {}
    for name, deps in refs.items():
        if all(d in refs for d in deps):
            pending[name] = len(deps)
            for d in deps:
                users.setdefault(d, []).append(name)
    ready = [n for n, count in pending.items() if count == 0]
    done: set = set()
    while ready:
        name = ready.pop()
        done.add(name)
        for user in users.get(name, ()):
            pending[user] -= 1
            if pending[user] == 0:
                ready.append(user)
    return done


def _constant(tree, constants, ae, seen: set | None = None) -> bool:
    """Whether ``tree`` is numbers and ``constants`` joined by arithmetic
    (``constants`` None: any reference, each added to ``seen``)."""
    for node in walk(tree):
        if isinstance(node, (int, float)) or \
                isinstance(node, (ae.ArithmeticStructure, ae.SubscriptsReferenceStructure)):
            continue
        if isinstance(node, ae.ReferenceStructure) and (constants is None or
                                                         node.reference in constants):
            if seen is not None:
                seen.add(node.reference)
            continue
        if node is None or isinstance(node, (str, list, tuple)):   # operators, subscripts
            continue
        return False
    return True


def _macro_calls(abstract, macro) -> list:
    """The argument tuples of every call of ``macro`` in the model."""
    from pysd.translators.structures import abstract_expressions as ae

    name = _clean(macro.name)
    calls = []
    for section in abstract.sections:
        for el in section.elements:
            for comp in el.components:
                calls += [n.arguments for n in walk(comp.ast)
                          if isinstance(n, ae.CallStructure) and n.function.reference == name]
    return calls


def fix(abstract) -> None:
    """Rewrite, in place, each DELAY MATERIAL with a constant delay time
    (module docstring)."""
    from pysd.translators.structures import abstract_expressions as ae

    found = [(section, el, i) for section in abstract.sections for el in section.elements
             for i, comp in enumerate(el.components)
             if isinstance(comp.ast, ae.CallStructure) and comp.ast.function.reference == NAME
             and len(comp.ast.arguments) == 4]
    if not found:
        return
    main = next((s for s in abstract.sections if s.type == "main"), None)
    main_constants = _constants(main) if main is not None else set()
    of_section: dict = {}
    for section, el, i in found:
        comp = el.components[i]
        if id(section) not in of_section:
            of_section[id(section)] = _constants(section)
        constants = of_section[id(section)]
        params = [_clean(p) for p in section.params] if section.type != "main" else []
        source, delay, initial, _missing = comp.ast.arguments
        if not _constant(delay, constants | set(params), ae):
            continue
        used = {n.reference for n in walk(delay) if isinstance(n, ae.ReferenceStructure)}
        through = [params.index(p) for p in used if p in params]
        if through and not all(
                _constant(args[k], main_constants, ae)
                for args in _macro_calls(abstract, section) for k in through
                if k < len(args)):
            continue
        el.components[i] = dataclasses.replace(
            comp, ast=ae.DelayFixedStructure(source, delay, initial))
