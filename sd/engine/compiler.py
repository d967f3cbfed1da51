"""AST -> straight-line scalar code, with PySD's semantics.

Each slot of each variable becomes a *node* (a local variable in the
generated function); each SMOOTH/DELAY/INTEG/... call becomes a *stateful*
with state variables, initialisation code, an output node and an Euler
update, mirroring ``pysd.py_backend.statefuls`` formula by formula so that
results agree with PySD to rounding (the agreement tests use rtol 1e-9).

The expression emitter is shared by both back ends; only IF THEN ELSE and
the state-array shapes differ between ``mode="numba"`` (scalars, one run at
a time) and ``mode="numpy"`` (arrays over the run axis).
"""
from __future__ import annotations

import numpy as np
import pysd.translators.structures.abstract_expressions as ae

from .nodes import (STATEFUL_KINDS as _STATEFUL_KINDS, Ctx, Node, Stateful,
                    as_float as _as_float, has_active_initial as _has_active_initial,
                    num as _num, walk as _walk)
from . import macros, vectors
from .external import Externals
from .runtime import TABLE_MODES
from .model_ir import CONTROL, ModelIR, UnsupportedModel, Var, clean

#: Vensim function (clean name) -> (runtime helper, number of arguments).
#: The helpers live in ``runtime`` and copy ``pysd.py_backend.functions``.
SIMPLE = {
    "abs": ("np.abs", 1), "exp": ("np.exp", 1), "sqrt": ("np.sqrt", 1),
    "ln": ("np.log", 1), "log": ("_log", 2), "sin": ("np.sin", 1),
    "cos": ("np.cos", 1), "tan": ("np.tan", 1), "arcsin": ("np.arcsin", 1),
    "arccos": ("np.arccos", 1), "arctan": ("np.arctan", 1),
    "sinh": ("np.sinh", 1), "cosh": ("np.cosh", 1), "tanh": ("np.tanh", 1),
    "min": ("_min", 2), "max": ("_max", 2), "power": ("_pow", 2),
    "integer": ("_integer", 1), "modulo": ("_modulo", 2), "quantum": ("_quantum", 2),
    "xidz": ("_xidz", 3), "zidz": ("_zidz", 2),
}
TIMED = {"step": ("_step", 2), "ramp": ("_ramp", 3), "pulse": ("_pulse", 2),
         "pulse_train": ("_pulse_train", 4)}
VECTOR = {"sum": "+", "prod": "*", "vmin": "_min", "vmax": "_max"}
OPS = {"=": "==", "<>": "!=", "^": "**"}


class Compiler:
    """Builds nodes, statefuls and lookup tables from a :class:`ModelIR`."""

    def __init__(self, ir: ModelIR, mode: str = "numba", forced: tuple = ()):
        self.ir, self.mode = ir, mode
        # variables held on an exogenous path (a table per run, see _add_forced)
        self.forced = frozenset(clean(n) for n in forced)
        self.nodes: dict[str, Node] = {}
        self.statefuls: list[Stateful] = []
        self.tables: list[tuple] = []          # (xs, ys, owner name)
        self.table_modes: list[str] = []       # how each table is read
        self.externals = Externals(ir)         # GET XLS/DIRECT values, read once
        self.table_of: dict[tuple, int] = {}   # (lookup var clean, slot) -> table
        self.params: list[tuple] = []          # (var, slot, default)
        self._memo: dict = {}
        self._vector_nodes: dict = {}          # shared array-valued nodes
        self._macro_instances: dict = {}       # inlined macro calls
        self.labels: dict = {}                 # extra node -> Vensim name
        self.var_index = {c: i for i, c in enumerate(ir.vars)}
        for cname, var in ir.vars.items():
            if var.kind == "lookup":
                self._add_lookup_var(cname, var)
        for cname, var in ir.vars.items():
            if var.kind != "lookup":
                self._add_var(cname, var)
        self.externals.close()
        self._mark_const()

    def node_name(self, cname: str, slot: int) -> str:
        return f"v{self.var_index[cname]}_{slot}"

    # -- variables -------------------------------------------------------
    def _add_lookup_var(self, cname: str, var: Var) -> None:
        for slot, entry in enumerate(var.flat):
            if entry is None:
                continue    # an element no equation defines: refused only if it is read
            comp, binding, local = entry
            ast = comp.ast
            if isinstance(ast, ae.GetLookupsStructure):
                xs, ys = self.externals.lookup(var, slot)
                self.table_of[(cname, slot)] = self._add_table(xs, ys, var.name, "interpolate")
                continue
            if not isinstance(ast, ae.LookupsStructure):
                raise UnsupportedModel(f"lookup {var.name!r} defined by "
                                       f"{type(ast).__name__}")
            self.table_of[(cname, slot)] = self._table(ast, var.name)

    def _table(self, ast, owner: str) -> int:
        xs = np.asarray(ast.x, dtype=float)
        ys = np.asarray(ast.y, dtype=float)
        if ys.ndim != 1 or len(xs) != len(ys):
            raise UnsupportedModel(f"multi-dimensional lookup table in {owner!r}")
        if len(np.unique(xs)) != len(xs):
            raise UnsupportedModel(f"lookup {owner!r} repeats an x value (PySD refuses it)")
        return self._add_table(xs, ys, owner, ast.type)

    def _add_table(self, xs, ys, owner: str, mode: str) -> int:
        """A table (lookup or data series), sorted by x; ``mode`` is how it is
        read between and beyond its points (``runtime.TABLE_MODES``)."""
        if mode not in TABLE_MODES:
            raise UnsupportedModel(f"lookup type {mode!r} in {owner!r}")
        if len(xs) == 0:
            raise UnsupportedModel(f"empty lookup or data table in {owner!r}")
        order = np.argsort(xs, kind="stable")
        self.tables.append((xs[order], ys[order], owner))
        self.table_modes.append(mode)
        return len(self.tables) - 1

    def _data(self, ctx) -> str:
        """One slot of a GET XLS/DIRECT DATA variable: its series read with
        PySD's method (interpolate, raw, hold backward, look forward)."""
        key = ("data", ctx.var.name, ctx.slot)
        if key not in self.table_of:
            xs, ys, mode = self.externals.series(ctx.var, ctx.slot)
            self.table_of[key] = self._add_table(xs, ys, ctx.var.name, mode)
        ctx.timed = True
        return self._lookup_code(self.table_of[key], "t")

    def _add_forced(self, cname: str, var: Var) -> None:
        """A variable held on a path given per run: its equation (a stock's
        integration included) is replaced by a time table owned by its name,
        which the run overrides (``lookups={name: (times, values)}``), as PySD
        does with ``params={name: pandas.Series}``."""
        if var.kind in ("control", "lookup"):
            raise UnsupportedModel(f"holding {var.name!r} on a path (a lookup or a control "
                                   "cannot be held)")
        # one table per element of a subscripted variable, owned by 'Name[a,b]'
        for slot, label in enumerate(var.labels()):
            owner = f"{var.name}[{','.join(label)}]" if label else var.name
            table = self._add_table(np.array([0.0, 1.0]), np.zeros(2), owner, "interpolate")
            code = self._lookup_code(table, "t")
            name = self.node_name(cname, slot)
            self.nodes[name] = Node(name, code, code, set(), set(), timed=True)

    def _add_var(self, cname: str, var: Var) -> None:
        if cname in self.forced:
            self._add_forced(cname, var)
            return
        for slot, entry in enumerate(var.flat):
            name = self.node_name(cname, slot)
            if entry is None:
                self.nodes[name] = Node(name, "np.nan", "np.nan", set(), set(), const=True)
                continue
            comp, binding, local = entry
            where = var.name
            if var.kind == "control":
                # ``Ci`` holds the values during initialisation: PySD
                # initialises at the model's INITIAL TIME even when a run
                # starts later (run(initial_condition=(t, {})))
                i = CONTROL[cname]
                self.nodes[name] = Node(name, f"C[{i}]", f"Ci[{i}]", set(), set(),
                                        const=cname != "initial_time")
                continue
            ast = comp.ast
            if var.literal or isinstance(ast, (np.ndarray, ae.GetConstantsStructure)):
                lens = [len(self.ir.elements(x)) for x in comp.subscripts[0]]
                value = self.externals.constant(var, slot) \
                    if isinstance(ast, ae.GetConstantsStructure) else \
                    _literal(ast, local, lens, where)
                if var.literal:
                    # a constant: a column of the constants matrix (sampled)
                    self.params.append((var, slot, value))
                    code = f"K{len(self.params) - 1}"
                else:
                    # numbers among the equations of a computed variable
                    # (``x[A] = y[A]`` ~~| ``x[B] = 1, 2``): PySD cannot
                    # set them apart from the rest, so neither can a sample
                    code = _num(value)
                self.nodes[name] = Node(name, code, code, set(), set(), const=True)
                continue
            dctx = Ctx(var, slot, binding, "dyn", set(), where)
            dyn, isb = self.emit(ast, dctx)
            ictx = Ctx(var, slot, binding, "init", set(), where)
            if _has_active_initial(ast):
                init, ib = self.emit(ast, ictx)
                init = _as_float(init, ib)
            else:
                init, ictx.deps, ictx.timed = dyn, set(dctx.deps), dctx.timed
                init = _as_float(init, isb)
            self.nodes[name] = Node(name, _as_float(dyn, isb), init, dctx.deps,
                                    ictx.deps, timed=dctx.timed or ictx.timed)

    def _mark_const(self) -> None:
        """Nodes that never change after initialisation are computed once."""
        changed = True
        while changed:
            changed = False
            for n in self.nodes.values():
                if n.const or n.timed or n.dyn != n.init:
                    continue
                if n.stateful is not None and self.statefuls[n.stateful].kind != "initial":
                    continue
                if all(self.nodes[d].const for d in n.deps_dyn):
                    n.const = changed = True

    # -- expressions -----------------------------------------------------
    def emit(self, ast, ctx: Ctx) -> tuple[str, bool]:
        """Code for ``ast`` and whether it is boolean-valued."""
        if isinstance(ast, bool):
            return ("1.0" if ast else "0.0"), False
        if isinstance(ast, (int, float, np.number)):
            return _num(ast), False
        if isinstance(ast, np.ndarray):
            raise UnsupportedModel(f"array literal inside an expression in {ctx.where!r}")
        if isinstance(ast, ae.ArithmeticStructure):
            return self._arith(ast, ctx)
        if isinstance(ast, ae.LogicStructure):
            return self._logic(ast, ctx)
        if isinstance(ast, ae.ReferenceStructure):
            return self._reference(ast, ctx), False
        if isinstance(ast, ae.CallStructure):
            return self._call(ast, ctx)
        if isinstance(ast, ae.InlineLookupsStructure):
            x = self.fl(ast.argument, ctx)
            return self._lookup_code(self._table(ast.lookups, ctx.where), x), False
        if isinstance(ast, ae.GetDataStructure) and ctx.scope is None and \
                ctx.var.flat[ctx.slot][0].ast is ast:
            return self._data(ctx), False
        if isinstance(ast, ae.GameStructure):
            # PySD has no gaming mode: GAME(x) is x
            return self.emit(ast.expression, ctx)
        if isinstance(ast, ae.AllocateByPriorityStructure):
            return vectors.allocate_by_priority(self, ast, ctx), False
        if isinstance(ast, ae.AllocateAvailableStructure):
            return vectors.allocate_available(self, ast, ctx), False
        stateful = _STATEFUL_KINDS.get(type(ast))
        if stateful:
            return self._stateful(stateful, ast, ctx), False
        name = type(ast).__name__.replace("Structure", "")
        raise UnsupportedModel(f"{name} in {ctx.where!r}")

    def fl(self, ast, ctx) -> str:
        code, isb = self.emit(ast, ctx)
        return _as_float(code, isb)

    def _arith(self, ast, ctx):
        ops, args = list(ast.operators), list(ast.arguments)
        if len(args) == 1:
            if ops[0] != "negative":
                raise UnsupportedModel(f"unary operator {ops[0]!r} in {ctx.where!r}")
            return f"(-{self.fl(args[0], ctx)})", False
        codes = [self.emit(a, ctx) for a in args]
        comparison = ops[0] in ("=", "<>", "<", ">", "<=", ">=")
        # comparisons keep booleans (a = b where both are logical); arithmetic
        # turns them into 0/1 floats, as numpy does with PySD's bools
        codes = [c if comparison else _as_float(c, b) for c, b in codes]
        if all(o == "^" for o in ops):   # PySD emits a**b**c: right-associative
            out = codes[-1]
            for c in reversed(codes[:-1]):
                out = f"({c} ** {out})"
            return out, False
        out = codes[0]
        for op, c in zip(ops, codes[1:]):
            out = f"({out} {OPS.get(op, op)} {c})"
        return out, comparison

    def _logic(self, ast, ctx):
        ops, args = list(ast.operators), list(ast.arguments)
        if ops == [":NOT:"] and len(args) == 1:
            return f"({self.emit(args[0], ctx)[0]} == 0)", True
        if all(o in ("=", "<>", "<", ">", "<=", ">=") for o in ops):
            return self._arith(ast, ctx)
        codes = [f"({self.emit(a, ctx)[0]} != 0)" for a in args]
        out = codes[0]
        for op, c in zip(ops, codes[1:]):
            sym = {":AND:": "&", ":OR:": "|"}.get(op)
            if sym is None:
                raise UnsupportedModel(f"logical operator {op!r} in {ctx.where!r}")
            out = f"({out} {sym} {c})"
        return out, True

    def _reference(self, ast, ctx) -> str:
        ref = ast.reference
        if ref == "time":
            ctx.timed = True
            return "t"
        if ctx.scope is not None:
            return macros.reference(self, ast, ctx)
        var = self.ir.vars.get(ref)
        if var is None:
            rng = {clean(r): r for r in self.ir.ranges}.get(ref)
            if rng is None:
                elem = {clean(e): e for e in self.ir.element_of}.get(ref)
                if elem is None:
                    raise UnsupportedModel(f"reference to unknown {ref!r} in {ctx.where!r}")
                # an element used as a value: its position in its range
                sup = [r for r in self.ir.ranges if elem in self.ir.ranges[r]]
                big = max(len(self.ir.ranges[r]) for r in sup)
                parent = next(r for r in sup if len(self.ir.ranges[r]) == big)
                return _num(self.ir.ranges[parent].index(elem) + 1)
            # a subscript range used as a value is the 1-based position of
            # the current element (PySD: np.arange(1, len(range) + 1))
            # of the current element in its parent (largest, first-defined)
            # range, as PySD numbers subranges and permutations
            elem = self.ir._bind(rng, ctx.binding, ctx.where)
            elems = set(self.ir.ranges[rng])
            sup = [r for r in self.ir.ranges if elems <= set(self.ir.ranges[r])]
            big = max(len(self.ir.ranges[r]) for r in sup)
            parent = next(r for r in sup if len(self.ir.ranges[r]) == big)
            return _num(self.ir.ranges[parent].index(elem) + 1)
        if var.kind == "lookup":
            raise UnsupportedModel(f"lookup {var.name!r} used as a value in {ctx.where!r}")
        subs = ast.subscripts.subscripts if ast.subscripts else None
        slot = self.ir.resolve(var, subs, ctx.binding, ctx.where)
        name = self.node_name(ref, slot)
        ctx.deps.add(name)
        return name

    def _call(self, ast, ctx):
        fname = ast.function.reference
        args = list(ast.arguments)
        if fname in self.ir.macros:
            return macros.call(self, ast, ctx), False
        if ctx.scope is not None and fname in ctx.scope.macro.vars:
            raise UnsupportedModel(f"lookup {fname!r} inside macro {ctx.scope.macro.name}")
        lookup = self.ir.vars.get(fname)
        if lookup is not None and lookup.kind == "lookup":
            subs = ast.function.subscripts.subscripts if ast.function.subscripts else None
            slot = self.ir.resolve(lookup, subs, ctx.binding, ctx.where)
            x = self.fl(args[0], ctx)
            if (fname, slot) not in self.table_of:
                raise UnsupportedModel(f"lookup {lookup.name!r} is not defined for "
                                       f"{list(lookup.labels()[slot])}, read in {ctx.where!r}")
            return self._lookup_code(self.table_of[(fname, slot)], x), False
        if fname == "if_then_else":
            c = self.emit(args[0], ctx)[0]
            a, b = self.fl(args[1], ctx), self.fl(args[2], ctx)
            if self.mode == "numba":
                return f"({a} if {c} else {b})", False
            return f"np.where({c}, {a}, {b})", False
        if fname == "active_initial":
            return self.fl(args[1] if ctx.phase == "init" else args[0], ctx), False
        if fname == "elmcount" and len(args) == 1 and isinstance(args[0], ae.ReferenceStructure):
            rng = {clean(r): r for r in self.ir.ranges}.get(args[0].reference)
            if rng is not None:
                return _num(len(self.ir.ranges[rng])), False
        if fname in VECTOR:
            return self._vector(fname, args, ctx), False
        if fname in vectors.FUNCTIONS:
            return vectors.call(self, fname, args, ctx), False
        if fname == "get_time_value":
            return self._get_time_value(args, ctx), False
        if fname.startswith("random_"):
            raise UnsupportedModel(
                f"{fname.upper().replace('_', ' ')} in {ctx.where!r}: random numbers come "
                "from PySD's generator (seeded from the model file, so a rerun repeats them); "
                "the fast engine cannot draw the same ones")
        if fname == "pi":
            return "np.pi", False
        spec = SIMPLE.get(fname) or TIMED.get(fname)
        if spec is None:
            raise UnsupportedModel(f"function {fname.upper().replace('_', ' ')} "
                                   f"in {ctx.where!r}")
        helper, nargs = spec
        if len(args) != nargs:
            raise UnsupportedModel(f"{fname.upper()} with {len(args)} arguments "
                                   f"in {ctx.where!r}")
        codes = [self.fl(a, ctx) for a in args]
        if fname in TIMED:
            ctx.timed = True
            codes = ["t", "dt"] + codes
        return f"{helper}({', '.join(codes)})", False

    def _get_time_value(self, args, ctx) -> str:
        """GET TIME VALUE(relativeto, offset, measure): PySD implements only
        the model's own time (relativeto 0, measure 0): ``Time + offset``."""
        if len(args) != 3:
            raise UnsupportedModel(f"GET TIME VALUE with {len(args)} arguments in {ctx.where!r}")
        rel, measure = args[0], args[2]
        if not all(isinstance(a, (int, float)) for a in (rel, measure)):
            raise UnsupportedModel(f"GET TIME VALUE with a computed relativeto or measure "
                                   f"in {ctx.where!r}")
        if rel == 0 and measure == 0:
            ctx.timed = True
            return f"(t + {self.fl(args[1], ctx)})"
        if rel == 2:
            why = "the computer's clock is not reproducible"
        elif rel == 1:
            why = "PySD does not implement relativeto=1"
        else:
            why = "PySD implements only relativeto=0 with measure=0 (model time)"
        raise UnsupportedModel(f"GET TIME VALUE({rel}, ..., {measure}) in {ctx.where!r}: {why}")

    def _vector(self, fname, args, ctx) -> str:
        bang = sorted({s for s in _subscripts_in(args[0]) if s.endswith("!")})
        if not bang:
            raise UnsupportedModel(f"{fname.upper()} without a '!' dimension in {ctx.where!r}")
        lists = [self.ir.elements(b[:-1]) for b in bang]
        import itertools
        terms = []
        for combo in itertools.product(*lists):
            sub = Ctx(ctx.var, ctx.slot, {**ctx.binding, **dict(zip(bang, combo))},
                      ctx.phase, ctx.deps, ctx.where, scope=ctx.scope)
            terms.append(self.fl(args[0], sub))
            ctx.timed |= sub.timed
        op = VECTOR[fname]
        out = terms[0] if fname in ("vmin", "vmax") else ("0.0" if op == "+" else "1.0")
        for term in (terms[1:] if fname in ("vmin", "vmax") else terms):
            out = f"{op}({out}, {term})" if op.startswith("_") else f"({out} {op} {term})"
        return out

    def _lookup_code(self, table: int, x: str) -> str:
        helper, extra = TABLE_MODES[self.table_modes[table]]
        return f"{helper}(LX, LY, LO[{table}], LN[{table}], {x}{extra})"

    # -- statefuls -------------------------------------------------------
    def _stateful(self, kind: str, ast, ctx) -> str:
        key = (id(ast), ctx.var.name, ctx.slot, id(ctx.scope))
        if key in self._memo:
            name = self._memo[key]
            ctx.deps.add(name)
            return name
        if kind == "integ" and getattr(ast, "non_negative", False):
            kind = "nn_integ"
        k = len(self.statefuls)
        st = Stateful(k, kind, ctx.where)
        self.statefuls.append(st)   # reserve k before nested statefuls take theirs
        dyn_deps: set = set()
        init_deps: set = set()

        def arg(field_name, ast_part, init=False):
            c = Ctx(ctx.var, ctx.slot, ctx.binding, "init" if init else "dyn",
                    set(), ctx.where, scope=ctx.scope)
            code = self.fl(ast_part, c)
            st.args[field_name] = code
            (init_deps if init else dyn_deps).update(c.deps)
            if c.timed:
                st.args.setdefault("_timed", "1")
            return c.deps

        if kind in ("integ", "nn_integ"):
            arg("flow", ast.flow)
            arg("init", ast.initial, True)
            out, out_deps = f"s{k}", set()
        elif kind in ("smooth", "smooth_n"):
            arg("input", ast.input)
            arg("time", ast.smooth_time)
            arg("init", ast.initial, True)
            oc = Ctx(ctx.var, ctx.slot, ctx.binding, "init", set(), ctx.where, scope=ctx.scope)
            st.order = self.fl(ast.order, oc)
            init_deps.update(oc.deps)
            out, out_deps = f"s{k}[n{k} - 1]", set()
        elif kind in ("delay", "delay_n"):
            arg("input", ast.input)
            tdeps = arg("time", ast.delay_time)
            init_deps.update(tdeps)
            arg("init", ast.initial, True)
            if kind == "delay":
                st.order = _num(ast.order)
            else:
                oc = Ctx(ctx.var, ctx.slot, ctx.binding, "init", set(), ctx.where, scope=ctx.scope)
                st.order = self.fl(ast.order, oc)
                init_deps.update(oc.deps)
            st.group = self._siblings(ast, ctx, init_deps)
            if kind == "delay":
                out, out_deps = f"(s{k}[n{k} - 1] / {st.args['time']})", set(tdeps)
            else:
                out, out_deps = f"(s{k}[n{k} - 1] / tm{k}[0])", set()
        elif kind == "delay_fixed":
            arg("input", ast.input)
            init_deps.update(arg("time", ast.delay_time))
            arg("init", ast.initial, True)
            out, out_deps = f"s{k}", set()
        elif kind == "trend":
            d = arg("input", ast.input) | arg("time", ast.average_time)
            init_deps.update(d)
            arg("init", ast.initial_trend, True)
            out = (f"_zidz({st.args['input']} - s{k}, "
                   f"{st.args['time']} * np.abs(s{k}))")
            out_deps = set(d)
        elif kind == "forecast":
            d = arg("input", ast.input) | arg("time", ast.average_time) | \
                arg("horizon", ast.horizon)
            init_deps.update(arg("init", ast.initial_trend, True))
            init_deps.update(d)
            i, a, h = st.args["input"], st.args["time"], st.args["horizon"]
            out = f"({i} * (1.0 + _zidz({i} - s{k}, {a} * s{k}) * {h}))"
            out_deps = set(d)
        elif kind == "sample_if_true":
            cc = Ctx(ctx.var, ctx.slot, ctx.binding, "dyn", set(), ctx.where, scope=ctx.scope)
            st.args["cond"] = self.emit(ast.condition, cc)[0]
            d = cc.deps | arg("input", ast.input)
            dyn_deps.update(cc.deps)
            arg("init", ast.initial, True)
            c, i = st.args["cond"], st.args["input"]
            out = (f"({i} if {c} else s{k})" if self.mode == "numba"
                   else f"np.where({c}, {i}, s{k})")
            out_deps = set(d)
        elif kind == "initial":
            arg("init", ast.initial, True)
            out, out_deps = f"s{k}", set()
        st.deps_init = init_deps
        st.deps_dyn = dyn_deps
        name = f"o{k}"
        timed = "_timed" in st.args and kind in ("trend", "forecast", "sample_if_true")
        self.nodes[name] = Node(name, out, out, out_deps, out_deps | {f"S{k}"},
                                timed=timed, stateful=k)
        self._memo[key] = name
        ctx.deps.add(name)
        return name

    def _siblings(self, ast, ctx, init_deps) -> list:
        """PySD reduces a delay's order using the minimum delay time over all
        elements of a subscripted delay, so every slot needs all of them."""
        codes = []
        comp = ctx.var.flat[ctx.slot][0]
        for slot, entry in enumerate(ctx.var.flat):
            if entry is None or entry[0] is not comp:
                continue
            c, binding, local = entry
            sub = _find_same(c.ast, ast)
            if sub is None:
                continue
            oc = Ctx(ctx.var, slot, binding, "init", set(), ctx.where, scope=ctx.scope)
            codes.append(self.fl(sub.delay_time, oc))
            init_deps.update(oc.deps)
        return codes


def _literal(ast, local, lens, where):
    """Value of one element of a literal constant. PySD's arrays drop the
    positions fixed to one element and may come flattened (tabbed arrays),
    so index row-major over the positions that vary."""
    if isinstance(ast, np.ndarray):
        vary = [(i, n) for i, n in zip(local, lens) if n > 1]
        if ast.size == 1:
            return float(ast.ravel()[0])
        if ast.size != int(np.prod([n for _, n in vary])):
            raise UnsupportedModel(f"array of shape {ast.shape} in {where!r}")
        flat = 0
        for i, n in vary:
            flat = flat * n + i
        return float(ast.ravel()[flat])
    return float(ast)


def _subscripts_in(ast):
    for n in _walk(ast):
        if isinstance(n, ae.SubscriptsReferenceStructure):
            yield from n.subscripts


def _find_same(root, target):
    """The node of ``root`` equal to ``target`` (same component AST)."""
    for n in _walk(root):
        if n is target:
            return n
    return None
