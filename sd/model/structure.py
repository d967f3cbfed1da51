"""Checks that a parsed model is complete and consistent, before anything runs.

Each problem PySD or an engine would otherwise meet half-way through (a
crash deep in a translation, a hang, an internal error) is found here on the
abstract model and reported as an :class:`SdInputError` naming the file,
the line where it can be found, and the variable:

* a function PySD does not implement;
* a variable defined twice (two equations for the same name and elements);
* a simultaneous equation: auxiliaries that depend on each other with no
  stock or delay between them (``A = B``, ``B = A``);
* a missing control variable (INITIAL TIME, FINAL TIME, TIME STEP, SAVEPER);
* an equation for ``Time`` (Vensim's clock: the engines disagreed on which
  one an equation then meant);
* a reference to a name the model does not define (a typo: PySD failed with
  a bare ``KeyError`` while translating), with the nearest names.

Time settings themselves (values, grid, run length) are checked by
:mod:`sd.model.timing`, for the model and for every scenario override.
"""
from __future__ import annotations

import re

from .._common import CONTROL
from ..errors import SdInputError, suggest
from .source import Source

#: Structures whose value at a time does not need the current value of their
#: inputs (they hold state), so they break a simultaneous loop.
STATEFUL = ("IntegStructure", "SmoothStructure", "SmoothNStructure", "DelayStructure",
             "DelayNStructure", "DelayFixedStructure", "TrendStructure", "ForecastStructure",
             "SampleIfTrueStructure", "InitialStructure")


def check(abstract, source: Source) -> None:
    """Raise :class:`SdInputError` for the first problem listed in the module
    docstring."""
    main = abstract.sections[0]
    _functions(abstract, source)
    _unfinished(main, source)
    _time_values(abstract, source)
    _duplicates(main, source)
    _controls(main, source)
    _cells(main, source)
    for section in abstract.sections:
        _references(section, abstract, source)
    _simultaneous(main, source)


def where(source: Source, name: str) -> str:
    """``path:line`` of the definition of ``name`` (``path`` when not found)."""
    line = line_of_definition(source.text, name)
    return f"{source.path}:{line}" if line else str(source.path)


def line_of_definition(text: str, name: str, nth: int = 0) -> int | None:
    """Line of the ``nth`` equation defining ``name`` (Vensim spelling, any
    case and blanks), or None."""
    words = name.strip('"').split()
    if not words:
        return None
    pattern = r'(?im)^[ \t]*"?' + r"[ \t_]+".join(map(re.escape, words)) + \
        r'"?[ \t]*(\[[^\]]*\])?[ \t]*(=|:=|==|\(|:[A-Z ]+:)'
    hits = list(re.finditer(pattern, text))
    if len(hits) <= nth:
        return None
    return text.count("\n", 0, hits[nth].start()) + 1


def _functions(abstract, source: Source) -> None:
    from pysd.builders.python.python_functions import functionspace

    missing: dict[str, str] = {}
    for section in abstract.sections:
        known = {el.name.lower().replace(" ", "_") for el in section.elements}
        known |= {s.name.lower().replace(" ", "_") for s in abstract.sections[1:]}
        for el in section.elements:
            for comp in el.components:
                for node in walk(comp.ast):
                    if type(node).__name__ != "CallStructure":
                        continue
                    fn = node.function.reference
                    if fn in known or fn in functionspace or fn == "a_function_of":
                        continue
                    missing.setdefault(fn.upper().replace("_", " "), el.name)
    if "DELAY MATERIAL" in missing:
        raise SdInputError(
            f"{where(source, missing['DELAY MATERIAL'])}: DELAY MATERIAL in "
            f"{missing['DELAY MATERIAL']!r} has a delay time that may change during the run "
            "(or is not written directly after the equal sign): sd runs DELAY MATERIAL only "
            "with a constant delay time (then it is DELAY FIXED). Make the delay time a "
            "constant, or use DELAY FIXED, DELAY3 or DELAY N.")
    if "SINTEG" in missing:
        raise SdInputError(
            f"{where(source, missing['SINTEG'])}: SINTEG in {missing['SINTEG']!r}: sd runs "
            "SINTEG(rate, initial, min, max, quant, spec, thresh) written directly after the "
            "equal sign with its last five arguments numbers or :NA: (Vensim's rule) and no "
            "quantum (quant :NA:); round the stock where it is used instead.")
    if missing:
        first = next(iter(missing.values()))
        raise SdInputError(
            f"{where(source, first)}: PySD does not implement the Vensim function(s) "
            f"{', '.join(missing)} (used in {first!r}); rewrite those equations with supported "
            "functions (see https://pysd.readthedocs.io/en/master/structure/"
            "vensim_translation.html).")


def _unfinished(section, source: Source) -> None:
    """``A FUNCTION OF(...)``: Vensim's placeholder for an equation not yet
    written (every variable of a causal-loop diagram has one)."""
    for el in section.elements:
        for comp in el.components:
            if any(type(n).__name__ == "CallStructure" and n.function.reference == "a_function_of"
                   for n in walk(comp.ast)):
                raise SdInputError(
                    f"{where(source, el.name)}: {el.name!r} is A FUNCTION OF(...), a placeholder "
                    "for an equation not yet written (a causal-loop diagram): the model cannot "
                    "be simulated, in Vensim either. Write its equation.")


def _time_values(abstract, source: Source) -> None:
    """GET TIME VALUE(relativeto, offset, measure): PySD implements the current
    time in model units (0, _, 0) and the computer clock (2, _, 1..10); the
    calendar measures of model time, and times relative to INITIAL TIME, need
    the model's date settings, which it does not read."""
    for section in abstract.sections:
        for el in section.elements:
            for comp in el.components:
                for node in walk(comp.ast):
                    if type(node).__name__ != "CallStructure" or \
                            node.function.reference != "get_time_value":
                        continue
                    args = list(node.arguments)
                    rel = args[0] if args else None
                    measure = args[2] if len(args) > 2 else None
                    if (rel, measure) == (0, 0) or (rel == 2 and measure in range(1, 11)):
                        continue
                    shown = ", ".join(str(a) if isinstance(a, (int, float)) else "..."
                                      for a in args)
                    raise SdInputError(
                        f"{where(source, el.name)}: GET TIME VALUE({shown}) in {el.name!r}: "
                        "only the current time in model units (GET TIME VALUE(0, offset, 0)) "
                        "and the computer clock (GET TIME VALUE(2, 0, 1..10)) are supported; "
                        "times relative to INITIAL TIME and calendar measures of model time "
                        "need Vensim's date settings, which PySD does not implement.")


def _duplicates(section, source: Source) -> None:
    seen: dict[str, str] = {}
    for el in section.elements:
        key = " ".join(el.name.lower().replace("_", " ").split())
        if key in seen:
            line = line_of_definition(source.text, el.name, nth=1)
            at = f"{source.path}:{line}" if line else str(source.path)
            raise SdInputError(f"{at}: {el.name!r} is defined twice (also as "
                               f"{seen[key]!r}); keep one equation.")
        seen[key] = el.name
        combos: dict = {}
        for comp in el.components:
            subs, excepts = comp.subscripts
            if excepts:
                continue
            k = tuple(subs)
            if k in combos:
                line = line_of_definition(source.text, el.name, nth=1)
                at = f"{source.path}:{line}" if line else str(source.path)
                raise SdInputError(f"{at}: {el.name!r}{list(subs) if subs else ''} is "
                                   "defined twice; keep one equation.")
            combos[k] = True


#: Default bound on the array values of a model (every element of every variable).
DEFAULT_CELL_LIMIT = 10**5


def cell_limit() -> int:
    """Array values a model may hold (``SD_CELL_LIMIT``)."""
    from .._common import env_limit

    return env_limit("SD_CELL_LIMIT", DEFAULT_CELL_LIMIT, "array values")


def _cells(section, source: Source) -> None:
    """A few subscript ranges multiply into any number of values
    (``x[a, b, c]`` over three ranges of 1,000 is 10^9): the model's values,
    every element of every variable, are counted before anything is built."""
    sizes: dict = {}
    for rng in section.subscripts:
        if isinstance(rng.subscripts, list):
            sizes[rng.name.lower()] = len(rng.subscripts)
    for rng in section.subscripts:       # a copy (b <-> a) is as large as its original
        if isinstance(rng.subscripts, str):
            sizes[rng.name.lower()] = sizes.get(rng.subscripts.lower(), 1)
    limit, total = cell_limit(), 0
    for el in section.elements:
        cells = 0
        for comp in el.components:
            n = 1
            for dim in comp.subscripts[0]:
                n *= sizes.get(dim.lower(), 1)
            cells = max(cells, n)
        total += cells
        if total > limit:
            raise SdInputError(
                f"{where(source, el.name)}: the model holds more than {limit:,} array values "
                f"(every element of every variable; {el.name!r} alone has {cells:,}); check its "
                "subscript ranges, or raise the limit with the environment variable "
                "SD_CELL_LIMIT.")


def _references(section, abstract, source: Source) -> None:
    """Every name an equation of ``section`` reads is a variable of that
    section, a macro argument, ``Time`` (or ``DT``), or a subscript range or
    element (a value in Vensim: its position)."""
    def key(name: str) -> str:
        return name.lower().replace(" ", "_")

    defined = {key(el.name): el.name for el in section.elements}
    if "time" in defined:
        raise SdInputError(f"{where(source, defined['time'])}: {defined['time']!r} is Vensim's "
                           "clock (Time), which a model cannot define; rename the variable.")
    # (DT: Stella's time step, which sd.model.extend reads as TIME STEP)
    known = set(defined) | {key(p) for p in section.params} | {"time", "dt"}
    if section is not abstract.sections[0]:     # a macro: TIME STEP$ and the like
        known |= {key(el.name) for el in abstract.sections[0].elements}
    for rng in abstract.sections[0].subscripts:
        known.add(key(rng.name))
        if isinstance(rng.subscripts, list):       # (a copy names its original instead)
            known |= {key(e) for e in rng.subscripts}
    for el in section.elements:
        for comp in el.components:
            stack = [comp.ast]
            while stack:
                node = stack.pop()
                kind = type(node).__name__
                if kind == "ReferenceStructure" and node.reference not in known:
                    raise SdInputError(
                        f"{where(source, el.name)}: the equation of {el.name!r} uses "
                        f"{node.reference.replace('_', ' ')!r}, which the model does not "
                        "define." + (suggest(node.reference, defined.values()) or
                                     " Define it, or correct the name."))
                if kind == "CallStructure":      # the function's name is checked above
                    stack.extend(node.arguments)
                else:
                    stack.extend(children(node))


def _controls(section, source: Source) -> None:
    names = {" ".join(el.name.replace("_", " ").upper().split()) for el in section.elements}
    missing = [c for c in CONTROL if c not in names]
    if missing:
        raise SdInputError(
            f"{source.path}: the model has no {', '.join(missing)}; every Vensim model needs "
            "INITIAL TIME, FINAL TIME, TIME STEP and SAVEPER (Model > Settings in Vensim, or "
            "an equation such as 'FINAL TIME = 100 ~ Month ~ |').")


def _simultaneous(section, source: Source) -> None:
    """Auxiliaries that need each other's current value: a cycle with no
    stateful structure on it (PySD recurses forever, the engine refuses)."""
    from pysd.translators.structures.abstract_model import AbstractLookup

    names = {el.name.lower().replace(" ", "_"): el for el in section.elements
             if not all(isinstance(c, AbstractLookup) for c in el.components)}
    deps = {}
    for key, el in names.items():
        refs: set = set()
        for comp in el.components:
            refs |= _instant_refs(comp.ast)
        subscripted = any(c.subscripts[0] for c in el.components)
        # x[A2] = x[A1] * 2 is legal: elements of one variable may use each other
        deps[key] = sorted(r for r in refs if r in names and not (r == key and subscripted))
    state: dict = {}
    for root in names:
        if root in state:
            continue
        stack = [(root, iter(deps[root]))]
        state[root] = 1
        path = [root]
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                shown = " -> ".join(names[c].name for c in cycle)
                if any(c.subscripts[0] for k in cycle for c in names[k].components):
                    raise SdInputError(
                        f"{where(source, names[nxt].name)}: subscripted variables that need "
                        f"each other's value at the same time: {shown}. Vensim orders their "
                        "elements one by one and accepts this when no element needs itself; "
                        "PySD computes each variable as a whole and cannot. Break the loop with "
                        "a stock or a delay, or split the variables by element.")
                raise SdInputError(
                    f"{where(source, names[nxt].name)}: simultaneous equations: {shown}. "
                    "Each needs the other's value at the same time; break the loop with a "
                    "stock (INTEG) or a delay, or give one of them an initial value "
                    "(ACTIVE INITIAL).")
            if nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(deps[nxt])))


def _instant_refs(node) -> set:
    """Variables whose current value ``node`` needs (not through a stateful,
    and not the initial-value argument of ACTIVE INITIAL)."""
    name = type(node).__name__
    if name in STATEFUL:
        return set()
    if name == "ReferenceStructure":
        return {node.reference}
    if name == "CallStructure":
        fn = node.function.reference
        args = list(node.arguments)
        if fn == "active_initial" and args:
            args = args[:1]
        out = {fn}
        for a in args:
            out |= _instant_refs(a)
        return out
    out = set()
    for child in children(node):
        out |= _instant_refs(child)
    return out


def children(node):
    """The sub-expressions of an abstract-model node (or the items of a list)."""
    if isinstance(node, (list, tuple)):
        yield from node
    elif hasattr(node, "__dataclass_fields__"):
        for f in node.__dataclass_fields__:
            yield getattr(node, f)


def walk(node):
    """``node`` and every node below it, depth first."""
    yield node
    for child in children(node):
        yield from walk(child)
