"""Feedback loops of a model and their polarity, from its equations.

The graph has a node per stock, flow and auxiliary and an edge ``x -> y`` when
``y``'s equation uses ``x`` while the model runs (initial values, INITIAL()
and the initial arguments of SMOOTHI/DELAYI are left out: they act once). A
flow links to its stock with ``+`` (inflow) or ``-`` (outflow).

Link polarity is the sign of ``dy/dx`` read from the equation's syntax tree,
as textbooks define it: ``+`` when ``y`` rises with ``x`` all else equal, ``-``
when it falls, ``?`` when it depends on values (``x * (1 - x)``, ABS, IF
conditions, tables that rise and fall). Other factors of a product are taken
as positive (stocks and rates are), a literal negative number flips the sign;
a lookup table passes on its slope when it is monotone. Loop polarity is the
product of its links: R (reinforcing, even number of ``-``), B (balancing) or
U (a ``?`` link).

Elementary cycles are enumerated with Johnson's algorithm, stopping at
``max_loops`` (big models have millions); :class:`LoopReport` says when it
stopped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .equations import Equations, norm

__all__ = ["Loop", "LoopReport", "link_polarities", "find_loops"]

_SIGN = {1: "+", -1: "-", 0: "?"}


@dataclass(frozen=True)
class Loop:
    """One feedback loop.

    Attributes
    ----------
    label : str
        ``R1``, ``B2``, ``U3`` ... (numbered by kind, shortest loops first).
    polarity : str
        ``R``, ``B`` or ``U`` (unknown).
    variables : tuple of str
        Vensim names along the loop, starting from a stock where there is one.
    links : tuple of str
        ``+``, ``-`` or ``?`` for each link ``variables[i] -> variables[i+1]``
        (the last closes the loop).
    """

    label: str
    polarity: str
    variables: tuple[str, ...]
    links: tuple[str, ...]

    def __str__(self) -> str:
        path = "".join(f"{v} -({s})-> " for v, s in zip(self.variables, self.links))
        return f"{self.label} ({len(self.variables)} variables): {path}{self.variables[0]}"


@dataclass(frozen=True)
class LoopReport:
    """Loops found and whether the enumeration was complete.

    Attributes
    ----------
    loops : tuple of Loop
    complete : bool
        False when enumeration stopped at ``max_loops``.
    max_loops : int
    """

    loops: tuple[Loop, ...]
    complete: bool
    max_loops: int

    def counts(self) -> dict[str, int]:
        out = {"R": 0, "B": 0, "U": 0}
        for loop in self.loops:
            out[loop.polarity] += 1
        return out


# -- link polarity -------------------------------------------------------------
def link_polarities(eqs: Equations) -> dict[tuple[str, str], int]:
    """Every dynamic link ``(source key, target key)`` with its sign (+1, -1, 0).

    Parameters
    ----------
    eqs : Equations
        From :func:`sd.equations.read_equations`.

    Returns
    -------
    dict of (str, str) to int
    """
    links: dict[tuple[str, str], int] = {}
    nodes = {k for k, e in eqs.elements.items() if e.kind in ("stock", "flow", "auxiliary")}
    for key, el in eqs.elements.items():
        if key not in nodes:
            continue
        if el.kind == "stock":
            for flow, sign in eqs.flows.get(key, ()):
                _add(links, (flow, key), {sign})
            continue
        for ast in el.asts:
            for src, signs in _pol(ast, eqs).items():
                if src in nodes:
                    _add(links, (src, key), signs)
    return links


def _add(links, edge, signs) -> None:
    signs = set(signs) | ({links[edge]} if edge in links else set())
    links[edge] = signs.pop() if len(signs) == 1 else 0


def _merge(*maps) -> dict:
    out: dict[str, set] = {}
    for m in maps:
        for k, v in m.items():
            out.setdefault(k, set()).update(v)
    return out


def _scale(m: dict, factor: int) -> dict:
    return {k: {s * factor for s in v} for k, v in m.items()}


def _unknown(m: dict) -> dict:
    return {k: {0} for k in m}


def _pol(node, eqs: Equations) -> dict[str, set]:
    """Map each variable used in ``node`` to the set of signs of ``d node / d var``."""
    from pysd.translators.structures import abstract_expressions as ae

    if isinstance(node, ae.ReferenceStructure):
        return {norm(node.reference): {1}}
    if isinstance(node, ae.ArithmeticStructure):
        return _pol_arith(node, eqs)
    if isinstance(node, ae.CallStructure):
        return _pol_call(node, eqs)
    if isinstance(node, ae.InlineLookupsStructure):
        return _scale_table(_pol(node.argument, eqs), node.lookups)
    if isinstance(node, ae.InitialStructure):
        return {}
    if isinstance(node, (ae.SmoothStructure, ae.SmoothNStructure, ae.DelayStructure,
                         ae.DelayNStructure, ae.DelayFixedStructure)):
        time = getattr(node, "delay_time", getattr(node, "smooth_time", None))
        return _merge(_pol(node.input, eqs), _unknown(_pol(time, eqs)))
    if isinstance(node, ae.SampleIfTrueStructure):
        return _merge(_pol(node.input, eqs), _unknown(_pol(node.condition, eqs)))
    if isinstance(node, ae.IntegStructure):
        return _pol(node.flow, eqs)
    # comparisons, logic, TREND, FORECAST, GAME, ALLOCATE ...: direction not determinable
    return _unknown(_refs(node, eqs))


def _refs(node, eqs) -> dict:
    from .equations import references
    return {r: {1} for r in references(node) if r in eqs.elements}


def _pol_arith(node, eqs) -> dict:
    ops, args = list(node.operators), node.arguments
    if ops == ["negative"]:
        return _scale(_pol(args[0], eqs), -1)
    if set(ops) <= {"+", "-"}:
        return _merge(_pol(args[0], eqs),
                      *[_scale(_pol(a, eqs), 1 if op == "+" else -1) for op, a in zip(ops, args[1:])])
    if set(ops) <= {"*", "/"}:
        signs = [1] + [1 if op == "*" else -1 for op in ops]  # divided factors invert
        literal = int(np.prod([np.sign(a) for a in args if _literal(a)] or [1]))
        return _merge(*[_scale(_pol(a, eqs), s * (literal or 1)) for a, s in zip(args, signs)])
    if set(ops) == {"^"} and len(args) == 2:
        exp = args[1]
        base = _pol(args[0], eqs)
        if _literal(exp):
            base = _scale(base, int(np.sign(exp))) if exp != 0 else {}
        else:
            base = _unknown(base)
        return _merge(base, _unknown(_pol(exp, eqs)))
    return _unknown(_refs(node, eqs))


def _literal(node) -> bool:
    return isinstance(node, (int, float, np.number))


_MONOTONE_UP = {"min", "max", "exp", "ln", "log", "sqrt", "integer", "round", "sum", "vmin",
                "vmax", "prod", "arctan", "sinh", "tanh"}


def _pol_call(node, eqs) -> dict:
    from pysd.translators.structures import abstract_expressions as ae

    func = norm(node.function.reference) if isinstance(node.function, ae.ReferenceStructure) else ""
    args = node.arguments
    el = eqs.elements.get(func)
    if el is not None and el.kind == "lookup":
        table = next((a for a in el.asts if isinstance(a, ae.LookupsStructure)), None)
        return _scale_table(_pol(args[0], eqs), table) if args else {}
    if func in _MONOTONE_UP:
        first = _pol(args[0], eqs) if args else {}
        rest = [_pol(a, eqs) for a in args[1:]]
        if func in ("min", "max", "sum", "vmin", "vmax", "prod"):
            return _merge(first, *rest)
        return _merge(first, *map(_unknown, rest))  # LOG base, ROUND digits
    if func in ("if_then_else",):
        return _merge(_unknown(_pol(args[0], eqs)), _pol(args[1], eqs), _pol(args[2], eqs))
    if func in ("zidz", "xidz"):
        parts = [_pol(args[0], eqs), _scale(_pol(args[1], eqs), -1)]
        return _merge(*parts, *[_pol(a, eqs) for a in args[2:]])
    if func in ("step", "ramp"):
        return _merge(_pol(args[0], eqs), *[_unknown(_pol(a, eqs)) for a in args[1:]])
    if func == "active_initial":
        return _pol(args[0], eqs)
    return _unknown(_merge(*[_pol(a, eqs) for a in args]))


def _scale_table(inner: dict, table) -> dict:
    slope = _table_slope(table)
    return _scale(inner, slope) if slope else _unknown(inner)


def _table_slope(table) -> int:
    """+1 for a non-decreasing table, -1 for non-increasing, 0 otherwise (or flat)."""
    if table is None:
        return 0
    y = np.asarray(table.y, dtype=float)
    if y.ndim != 1 or y.size < 2:
        return 0
    steps = np.diff(y)
    if np.all(steps >= 0) and np.any(steps > 0):
        return 1
    if np.all(steps <= 0) and np.any(steps < 0):
        return -1
    return 0


# -- loop enumeration ------------------------------------------------------------
def find_loops(eqs: Equations, max_loops: int = 2000) -> LoopReport:
    """Enumerate the feedback loops of a model with their polarity.

    Parameters
    ----------
    eqs : Equations
        From :func:`sd.equations.read_equations`.
    max_loops : int
        Stop after this many loops.

    Returns
    -------
    LoopReport
    """
    links = link_polarities(eqs)
    graph: dict[str, list[str]] = {}
    for src, dst in links:
        graph.setdefault(src, []).append(dst)
        graph.setdefault(dst, [])
    cycles, complete = _simple_cycles(graph, max_loops)
    stocks = {k for k, e in eqs.elements.items() if e.kind == "stock"}
    found = []
    for cycle in cycles:
        cycle = _rotate(cycle, stocks, eqs)
        signs = [links[(a, b)] for a, b in zip(cycle, cycle[1:] + cycle[:1])]
        product = int(np.prod(signs))
        polarity = "U" if 0 in signs else ("R" if product > 0 else "B")
        found.append((polarity, tuple(eqs.name(k) for k in cycle), tuple(_SIGN[s] for s in signs)))
    found.sort(key=lambda f: (len(f[1]), f[1]))
    numbers = {"R": 0, "B": 0, "U": 0}
    loops = []
    for polarity, names, signs in found:
        numbers[polarity] += 1
        loops.append(Loop(f"{polarity}{numbers[polarity]}", polarity, names, signs))
    return LoopReport(tuple(loops), complete, max_loops)


def _rotate(cycle: list[str], stocks: set[str], eqs: Equations) -> list[str]:
    """Start at the stock whose name sorts first (else the first name), for stable output."""
    starts = [i for i, k in enumerate(cycle) if k in stocks] or range(len(cycle))
    i = min(starts, key=lambda i: eqs.name(cycle[i]).lower())
    return cycle[i:] + cycle[:i]


def _simple_cycles(graph: dict[str, list[str]], limit: int) -> tuple[list[list[str]], bool]:
    """Johnson's algorithm (elementary circuits), iterative, stopping at ``limit``."""
    order = sorted(graph)
    index = {v: i for i, v in enumerate(order)}
    cycles: list[list[str]] = []
    for start in order:
        # the subgraph of nodes >= start, restricted to start's strongly connected component
        sub = {v: [w for w in graph[v] if index[w] >= index[start]] for v in order
               if index[v] >= index[start]}
        comp = _component_of(start, sub)
        if len(comp) == 1 and start not in sub[start]:
            continue
        sub = {v: [w for w in sub[v] if w in comp] for v in comp}
        if not _circuits(start, sub, cycles, limit):
            return cycles, False
    return cycles, True


def _circuits(start, sub, cycles, limit) -> bool:
    blocked, bmap = {start}, {v: set() for v in sub}
    path, stack, closed = [start], [(start, iter(sub[start]))], [False]
    while stack:
        node, neighbours = stack[-1]
        nxt = next(neighbours, None)
        if nxt is not None:
            if nxt == start:
                cycles.append(list(path))
                closed[-1] = True
                if len(cycles) >= limit:
                    return False
            elif nxt not in blocked:
                path.append(nxt)
                stack.append((nxt, iter(sub[nxt])))
                closed.append(False)
                blocked.add(nxt)
            continue
        stack.pop()
        found = closed.pop()
        if found:
            _unblock(node, blocked, bmap)
            if closed:
                closed[-1] = True
        else:
            for w in sub[node]:
                bmap[w].add(node)
        path.pop()
    return True


def _unblock(node, blocked, bmap) -> None:
    todo = [node]
    while todo:
        v = todo.pop()
        if v in blocked:
            blocked.discard(v)
            todo.extend(bmap[v])
            bmap[v].clear()


def _component_of(start, graph) -> set[str]:
    """Nodes reachable from ``start`` that also reach it."""
    forward = _reach(start, graph)
    reverse: dict[str, list[str]] = {v: [] for v in graph}
    for v, ws in graph.items():
        for w in ws:
            reverse[w].append(v)
    return forward & _reach(start, reverse)


def _reach(start, graph) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for w in graph[todo.pop()]:
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen
