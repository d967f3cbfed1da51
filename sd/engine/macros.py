"""Vensim macros, inlined: every call becomes its own copy of the macro.

PySD builds each macro as a separate module and each call site as a
``Macro`` object: a sub-model whose statefuls integrate with the main
model's (same Euler step, same time) and whose arguments are re-evaluated in
the caller whenever the macro reads them. The engine flattens that: each
call (per calling variable slot, per call site) gets its own instance, whose
variables are nodes ``m<k>_<i>`` and whose arguments are nodes ``a<k>_<j>``
computed in the caller's context; the macro's own statefuls are ordinary
statefuls of the instance. The call's value is the instance's variable named
like the macro. Macro variables are not outputs (PySD does not report them).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .common import UnsupportedModel, clean
from .nodes import Ctx, Node, as_float, has_active_initial, num

#: Deepest nesting of macro calls (a macro calling itself never ends).
MAX_DEPTH = 20


@dataclass
class MacroDef:
    """One ``:MACRO: NAME(params)`` section."""

    name: str
    params: tuple               # clean names, in call order
    vars: dict                  # clean name -> Var (scalar)
    output: str                 # clean name of the variable named like the macro


@dataclass
class Instance:
    """One call of a macro: its nodes and the caller's context."""

    k: int
    macro: MacroDef
    caller: object              # the caller's Ctx (binding, scope, where)
    args: tuple
    depth: int
    nodes: dict = field(default_factory=dict)   # clean name -> node name
    argnodes: dict = field(default_factory=dict)  # param clean name -> node name


def read_macros(ir, sections) -> dict:
    """MacroDef by clean name for every macro section of the model."""
    out = {}
    for s in sections:
        where = f"macro {s.name!r}"
        if s.returns:
            raise UnsupportedModel(f"{where} returns additional outputs "
                                   f"({', '.join(s.returns)})")
        if s.subscripts:
            raise UnsupportedModel(f"{where} defines subscript ranges")
        vars_: dict = {}
        for el in s.elements:
            ir._add_element(el, into=vars_)
        for v in vars_.values():
            if v.dims:
                raise UnsupportedModel(f"subscripted variable {v.name!r} in {where}")
            if v.kind != "aux":
                raise UnsupportedModel(f"{v.kind} {v.name!r} in {where}")
        output = clean(s.name)
        if output not in vars_:
            raise UnsupportedModel(f"{where} has no variable named like the macro")
        out[clean(s.name)] = MacroDef(s.name, tuple(clean(p) for p in s.params), vars_,
                                      output)
    return out


def call(comp, ast, ctx) -> str:
    """Node of the value of the macro call ``ast`` in ``ctx``."""
    macro = comp.ir.macros[ast.function.reference]
    args = tuple(ast.arguments)
    if len(args) != len(macro.params):
        raise UnsupportedModel(f"macro {macro.name} called with {len(args)} arguments "
                               f"(it takes {len(macro.params)}) in {ctx.where!r}")
    key = (id(ast), ctx.var.name, ctx.slot, id(ctx.scope))
    inst = comp._macro_instances.get(key)
    if inst is None:
        depth = (ctx.scope.depth + 1) if ctx.scope is not None else 1
        if depth > MAX_DEPTH:
            raise UnsupportedModel(f"macro calls nested deeper than {MAX_DEPTH} (a macro "
                                   f"calling itself?) in {ctx.where!r}")
        inst = Instance(len(comp._macro_instances), macro, ctx, args, depth)
        comp._macro_instances[key] = inst
        _build(comp, inst)
    name = inst.nodes[macro.output]
    ctx.deps.add(name)
    return name


_CONTROLS = ("time_step", "initial_time", "final_time", "saveper")


def reference(comp, ast, ctx) -> str:
    """Node read by a reference inside a macro: an argument or a macro variable."""
    inst, ref = ctx.scope, ast.reference
    if ast.subscripts:
        raise UnsupportedModel(f"subscripted reference {ref!r} inside macro "
                               f"{inst.macro.name} (called in {inst.caller.where!r})")
    if ref in inst.argnodes:
        name = inst.argnodes[ref]
    elif ref in inst.nodes:
        name = inst.nodes[ref]
    elif ref in _CONTROLS and ref in comp.ir.vars:
        name = comp.node_name(ref, 0)       # a macro reads the model's time settings
    else:
        raise UnsupportedModel(f"macro {inst.macro.name} reads {ref!r}, which is neither "
                               f"one of its arguments nor one of its variables")
    ctx.deps.add(name)
    return name


def _build(comp, inst) -> None:
    """Nodes of every argument (in the caller) and macro variable (in the
    instance), named first so that references between them need no order."""
    k = inst.k
    for j, p in enumerate(inst.macro.params):
        inst.argnodes[p] = f"a{k}_{j}"
    for i, cname in enumerate(inst.macro.vars):
        inst.nodes[cname] = f"m{k}_{i}"
    caller = inst.caller
    label = f"{caller.where} (macro {inst.macro.name})"

    def node(name, ast, make_ctx):
        dctx = make_ctx("dyn")
        dyn, isb = comp.emit(ast, dctx)
        if has_active_initial(ast):
            ictx = make_ctx("init")
            init, ib = comp.emit(ast, ictx)
            init, ideps, itimed = as_float(init, ib), ictx.deps, ictx.timed
        else:
            init, ideps, itimed = as_float(dyn, isb), set(dctx.deps), dctx.timed
        comp.nodes[name] = Node(name, as_float(dyn, isb), init, dctx.deps, ideps,
                                timed=dctx.timed or itimed)
        comp.labels[name] = label

    for j, p in enumerate(inst.macro.params):
        node(inst.argnodes[p], inst.args[j],
             lambda phase: Ctx(caller.var, caller.slot, caller.binding, phase, set(),
                               caller.where, scope=caller.scope))
    for cname, var in inst.macro.vars.items():
        comp_ = var.flat[0][0]
        name = inst.nodes[cname]
        if var.literal:
            if not isinstance(comp_.ast, (int, float)):
                raise UnsupportedModel(f"GET XLS/DIRECT CONSTANTS in macro {inst.macro.name}")
            code = num(comp_.ast)
            comp.nodes[name] = Node(name, code, code, set(), set(), const=True)
            comp.labels[name] = label
            continue
        node(name, comp_.ast,
             lambda phase, var=var: Ctx(var, 0, {}, phase, set(), label, scope=inst))
