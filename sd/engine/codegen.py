"""Assemble the generated ``simulate`` function from the compiler's nodes.

Layout of the generated function (both back ends)::

    simulate(P, C, Ci, LX, LY, LO, LN, times, save_idx, sel, out)

``P`` (runs x constants) holds every literal constant, ``C`` the four control
values (``Ci`` during initialisation, which PySD does at the model's own
INITIAL TIME even when the run starts later), ``LX/LY/LO/LN`` all lookup tables concatenated (offsets, lengths),
``times`` PySD's integration times, ``save_idx`` the output row of each step
(-1: not saved) and ``sel`` the output column of each variable slot (-1: not
kept), so a subset of variables and times never costs memory. Constants,
tables and control values are arguments, so one compiled artefact serves
every sample, lookup override and time setting.

numba back end: loop over runs outside, over time inside, scalars in
registers. numpy back end: loop over time, arrays over runs.
"""
from __future__ import annotations

from .compiler import Compiler
from .model_ir import UnsupportedModel


def topo(nodes: dict, keys, deps_of, what: str) -> list:
    """Dependency order of ``keys``; a cycle is refused naming a variable."""
    order, state = [], {}
    # sorted: the generated source must not depend on set order (string hashing
    # varies per process), or numba's on-disk cache never hits
    for root in sorted(keys):
        if root in state:
            continue
        stack = [(root, iter(sorted(deps_of(root))))]
        state[root] = 1
        while stack:
            name, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                state[name] = 2
                order.append(name)
                continue
            if nxt not in keys:
                continue
            s = state.get(nxt)
            if s == 1:
                raise UnsupportedModel(f"circular {what} involving {nodes.get(nxt, nxt)}")
            if s is None:
                state[nxt] = 1
                stack.append((nxt, iter(sorted(deps_of(nxt)))))
    return order


def generate(comp: Compiler, outputs: list) -> str:
    """Python source of ``simulate`` for ``comp.mode``.

    ``outputs`` lists the node names saved, in column order of ``sel``.
    """
    numba = comp.mode == "numba"
    nodes, sts = comp.nodes, comp.statefuls
    labels = {}
    for cname, var in comp.ir.vars.items():
        if var.kind != "lookup":
            for slot in range(var.size):
                labels[comp.node_name(cname, slot)] = repr(var.name)
    for st in sts:
        labels[f"S{st.k}"] = labels[f"o{st.k}"] = repr(st.where)
    labels.update({k: repr(v) for k, v in comp.labels.items()})

    # initialisation: every node and every stateful's state, by init deps
    init_keys = set(nodes) | {f"S{st.k}" for st in sts}

    def init_deps(key):
        if key.startswith("S"):
            return sts[int(key[1:])].deps_init
        return nodes[key].deps_init
    init_order = topo(labels, init_keys, init_deps, "initialisation")
    dyn_keys = {n for n, node in nodes.items() if not node.const}
    dyn_order = topo(labels, dyn_keys, lambda k: nodes[k].deps_dyn, "equation (algebraic loop)")

    ind = " " * 8 if numba else " " * 4
    L = []
    L.append("def simulate(P, C, Ci, LX, LY, LO, LN, times, save_idx, sel, out):")
    L.append("    dt = C[2]")
    L.append("    nt = times.shape[0]")
    if numba:
        L.append(f"    row = np.empty({max(len(outputs), 1)})")
        L.append("    for r in range(P.shape[0]):")
        for i in range(len(comp.params)):
            L.append(f"{ind}K{i} = P[r, {i}]")
    else:
        L.append("    N = P.shape[0]")
        for i in range(len(comp.params)):
            L.append(f"{ind}K{i} = P[:, {i}]")
    L.append(f"{ind}t = Ci[0]")
    shared: dict = {}
    for key in init_order:
        if key.startswith("S"):
            L.extend(ind + line for line in _init_state(sts[int(key[1:])], numba, shared))
        else:
            L.append(f"{ind}{key} = {nodes[key].init}")
    L.append(f"{ind}for k in range(nt):")
    i2 = ind + "    "
    L.append(f"{i2}t = times[k]")
    for key in dyn_order:
        L.append(f"{i2}{key} = {nodes[key].dyn}")
    L.append(f"{i2}si = save_idx[k]")
    L.append(f"{i2}if si >= 0:")
    i3 = i2 + "    "
    if numba:
        # values go to a row buffer without a branch each, then one loop
        # scatters the kept ones: a branch per output (hundreds in a
        # subscripted model) made numba's SSA pass recurse past Python's limit
        for j, name in enumerate(outputs):
            L.append(f"{i3}row[{j}] = {name}")
        L.append(f"{i3}for j in range({len(outputs)}):")
        L.append(f"{i3}    c = sel[j]")
        L.append(f"{i3}    if c >= 0:")
        L.append(f"{i3}        out[r, si, c] = row[j]")
    else:
        for j, name in enumerate(outputs):
            L.append(f"{i3}c = sel[{j}]")
            L.append(f"{i3}if c >= 0:")
            L.append(f"{i3}    out[:, si, c] = {name}")
    L.append(f"{i2}if k == nt - 1:")
    L.append(f"{i3}break")
    for st in sts:
        L.extend(i2 + line for line in _update(st, numba))
    L.append("    return out")
    return "\n".join(L) + "\n"


def _alloc(name, n, numba):
    return f"{name} = np.empty({n})" if numba else f"{name} = np.empty(({n}, N))"


def _init_state(st, numba, shared) -> list:
    k, a = st.k, st.args
    kind = st.kind
    if kind in ("integ", "nn_integ", "sample_if_true", "initial"):
        return [f"s{k} = {a['init']}"]
    if kind == "trend":
        return [f"s{k} = {a['input']} / (1.0 + {a['init']} * {a['time']})"]
    if kind == "forecast":
        return [f"s{k} = {a['input']} / (1.0 + {a['init']})"]
    if kind == "smooth" or kind == "smooth_n":
        n = f"int({st.order})" if numba else f"_uniform_int({st.order}, 'SMOOTH order')"
        return [f"n{k} = {n}", _alloc(f"s{k}", f"n{k}", numba), f"s{k}[:] = {a['init']}"]
    if kind in ("delay", "delay_n"):
        # PySD casts the order to int, then lowers it while order*dt exceeds
        # the smallest delay time (over all elements of a subscripted delay)
        lines = []
        if len(st.group) > 1:
            # one minimum per subscripted delay, shared by its elements
            key = tuple(st.group)
            if key not in shared:
                mn = st.group[0]
                for c in st.group[1:]:
                    mn = f"_min({mn}, {c})"
                shared[key] = f"gm{k}"
                lines.append(f"gm{k} = {mn}")
            mn = shared[key]
        else:
            mn = a["time"]
        lines += [f"n{k} = _delay_order({st.order}, dt, {mn})",
                 _alloc(f"s{k}", f"n{k}", numba), f"s{k}[:] = {a['init']} * {a['time']}"]
        if kind == "delay_n":
            lines += [_alloc(f"tm{k}", f"n{k}", numba), f"tm{k}[:] = {a['time']}"]
        return lines
    if kind == "delay_fixed":
        length = f"np.rint(max({a['time']} / dt, 1.0) + 1e-6)" if numba else \
            f"_uniform_int(np.rint(np.maximum({a['time']} / dt, 1.0) + 1e-6), 'DELAY FIXED length')"
        return [f"L{k} = int({length})", f"p{k} = 0", _alloc(f"pipe{k}", f"L{k}", numba),
                f"pipe{k}[:] = {a['init']}", f"s{k} = {a['init']}" + ("" if numba else f" + 0.0 * pipe{k}[0]")]
    raise UnsupportedModel(f"{kind} in {st.where!r}")


def _update(st, numba) -> list:
    """Euler step of one stateful: ``state + ddt * dt`` as PySD computes it."""
    k, a, kind = st.k, st.args, st.kind
    if kind == "integ":
        return [f"s{k} = s{k} + {a['flow']} * dt"]
    if kind == "nn_integ":
        return [f"s{k} = _max(s{k} + {a['flow']} * dt, 0.0)"]
    if kind in ("trend", "forecast"):
        return [f"s{k} = s{k} + (({a['input']} - s{k}) / {a['time']}) * dt"]
    if kind == "sample_if_true":
        pick = f"({a['input']} if {a['cond']} else s{k})" if numba else \
            f"np.where({a['cond']}, {a['input']}, s{k})"
        return [f"s{k} = s{k} * 0.0 + {pick}"]
    if kind == "initial":
        return []
    if kind in ("smooth", "smooth_n"):
        return [f"_smooth_step(s{k}, n{k}, {a['input']}, {a['time']}, dt)"]
    if kind == "delay":
        return [f"_delay_step(s{k}, n{k}, {a['input']}, {a['time']}, dt)"]
    if kind == "delay_n":
        return [f"_delayn_step(s{k}, tm{k}, n{k}, {a['input']}, {a['time']}, dt)"]
    if kind == "delay_fixed":
        return [f"pipe{k}[p{k}] = {a['input']}", f"p{k} = (p{k} + 1) % L{k}",
                f"s{k} = pipe{k}[p{k}]" + ("" if numba else ".copy()")]
    raise UnsupportedModel(f"{kind} in {st.where!r}")
