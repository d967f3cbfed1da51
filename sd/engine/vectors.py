"""Vector functions: ALLOCATE, VECTOR SELECT/SORT ORDER/RANK/REORDER, INVERT MATRIX.

PySD evaluates these on whole xarray arrays: each argument's dimensions are
the subscript ranges of its references (in order of appearance, a mapped
range renamed to its target as PySD's ``ReferenceBuilder`` does), and the
function works along the last dimension (or the ``!`` dimensions). The
engine keeps its scalar slots: for one slot of the defined variable, the
dimensions the function works along are iterated (each element emitted by
the scalar compiler with that element bound) and the other dimensions are
bound by the slot itself. A result that is a whole vector (an allocation, a
sort order, an inverse) becomes one array-valued *vector node*, shared by
every slot that reads an element of it.

The run-time helpers (:mod:`.vector_runtime`) copy PySD's algorithms
(``pysd.py_backend.functions`` and ``allocation``).
"""
from __future__ import annotations

import itertools

import pysd.translators.structures.abstract_expressions as ae

from .common import UnsupportedModel, clean
from .nodes import STATEFUL_KINDS, Ctx, Node, walk

#: Vensim function (clean name) -> handler name in this module.
FUNCTIONS = ("vector_select", "vector_sort_order", "vector_rank", "vector_reorder",
             "invert_matrix")
REDUCTIONS = ("sum", "prod", "vmin", "vmax")


# -- dimensions of an argument, as PySD gives them ---------------------------
def arg_dims(comp, ast, binding) -> list:
    """Ordered dimension names of ``ast`` evaluated as PySD does.

    A range subscript is a dimension named by the range, or by its mapping
    target when the target is one of the definition's ranges (``binding``
    holds them); ``x!`` is a dimension; an element is not.
    """
    out: list = []

    def add(d):
        if d not in out:
            out.append(d)

    def visit(node):
        if isinstance(node, ae.ReferenceStructure):
            ref = node.reference
            var = comp.ir.vars.get(ref)
            if var is None:
                rng = {clean(r): r for r in comp.ir.ranges}.get(ref)
                if rng is not None:
                    add(_named(comp, rng, binding))
                return
            subs = node.subscripts.subscripts if node.subscripts else list(var.dims)
            for s in subs:
                if s.endswith("!"):
                    add(s)
                elif s in comp.ir.ranges:
                    add(_named(comp, s, binding))
            return
        if isinstance(node, ae.CallStructure):
            fname = node.function.reference
            if fname in REDUCTIONS:
                for d in arg_dims(comp, node.arguments[0], binding):
                    if not d.endswith("!"):
                        add(d)
                return
            if fname == "elmcount":
                return
            lookup = comp.ir.vars.get(fname)
            if lookup is not None and lookup.kind == "lookup":
                visit(node.function)
            for a in node.arguments:
                visit(a)
            return
        if isinstance(node, ae.AbstractSyntax):
            for f in node.__dataclass_fields__:
                v = getattr(node, f)
                for c in (v if isinstance(v, (list, tuple)) else [v]):
                    visit(c)

    visit(ast)
    return out


def _named(comp, rng, binding) -> str:
    """The dimension name PySD gives a reference to range ``rng``."""
    if rng in binding:
        return rng
    for target in comp.ir.mapping.get(rng, ()):
        if target in binding:
            return target
    return rng


def _elements(comp, dim) -> list:
    return comp.ir.elements(dim[:-1] if dim.endswith("!") else dim)


def _combos(comp, dims):
    return itertools.product(*[_elements(comp, d) for d in dims])


def _check_args(args, where) -> None:
    for a in args:
        for n in walk(a):
            if type(n) in STATEFUL_KINDS or (isinstance(n, ae.CallStructure)
                                               and n.function.reference == "active_initial"):
                raise UnsupportedModel(f"stateful function inside a vector function's "
                                       f"argument in {where!r}")


def _sub(comp, ctx, extra):
    c = Ctx(ctx.var, ctx.slot, {**ctx.binding, **extra}, ctx.phase, ctx.deps, ctx.where,
            scope=ctx.scope)
    return c


def _codes(comp, ast, ctx, dims, fixed=None) -> list:
    """Scalar code of ``ast`` for every combination of ``dims`` (row-major)."""
    out = []
    for combo in _combos(comp, dims):
        sub = _sub(comp, ctx, {**(fixed or {}), **dict(zip(dims, combo))})
        out.append(comp.fl(ast, sub))
        ctx.timed |= sub.timed
    return out


def _array(comp, codes) -> str:
    """A vector argument: a tuple for numba (no allocation, no loop in the big
    function: list literals made numba's compile time explode), stacked
    arrays over runs for numpy."""
    if comp.mode == "numba":
        return f"({', '.join(codes)},)"
    return f"_vec({', '.join(codes)})"


def _bound(comp, dims, ctx) -> tuple:
    """Elements the slot binds for ``dims`` (the dims not iterated)."""
    return tuple(comp.ir._bind(d, ctx.binding, ctx.where) for d in dims)


def _shared(comp, key, ctx, build) -> str:
    """One array-valued node per (call, bound elements), shared by slots:
    ``build(iso)`` returns its code, emitted in a context ``iso`` that
    collects the node's own dependencies."""
    name = comp._vector_nodes.get(key)
    if name is None:
        iso = _isolated(comp, ctx)
        code = build(iso)
        name = f"x{len(comp._vector_nodes)}"
        comp._vector_nodes[key] = name
        comp.nodes[name] = Node(name, code, code, set(iso.deps), set(iso.deps),
                                timed=iso.timed)
        comp.labels[name] = ctx.where
    ctx.deps.add(name)
    ctx.timed |= comp.nodes[name].timed
    return name


def _isolated(comp, ctx):
    """A context collecting its own dependencies (for a shared vector node)."""
    return Ctx(ctx.var, ctx.slot, dict(ctx.binding), ctx.phase, set(), ctx.where,
               scope=ctx.scope)


# -- functions -----------------------------------------------------------------
def call(comp, fname, args, ctx) -> str:
    """Scalar code of one slot's value of a vector function call."""
    _check_args(args, ctx.where)
    return globals()[f"_{fname}"](comp, args, ctx)


def _vector_select(comp, args, ctx) -> str:
    """VECTOR SELECT(selection, expression, missing, numerical action, error
    action): PySD broadcasts selection and expression together and reduces
    over the ``!`` dimensions; the other dimensions are the slot's."""
    if len(args) != 5:
        raise UnsupportedModel(f"VECTOR SELECT with {len(args)} arguments in {ctx.where!r}")
    dims = arg_dims(comp, args[0], ctx.binding)
    dims += [d for d in arg_dims(comp, args[1], ctx.binding) if d not in dims]
    bang = [d for d in dims if d.endswith("!")]
    if not bang:
        raise UnsupportedModel(f"VECTOR SELECT without a '!' dimension in {ctx.where!r}")
    sel = _codes(comp, args[0], ctx, bang)
    expr = _codes(comp, args[1], ctx, bang)
    rest = [comp.fl(a, ctx) for a in args[2:]]
    return f"_vselect({_array(comp, sel)}, {_array(comp, expr)}, {', '.join(rest)})"


def _along_last(comp, ast, ctx, what):
    """Dims of ``ast``, split into the bound ones and the last one."""
    dims = arg_dims(comp, ast, ctx.binding)
    if not dims:
        raise UnsupportedModel(f"{what} of a value without subscripts in {ctx.where!r}")
    if any(d.endswith("!") for d in dims):
        raise UnsupportedModel(f"{what} of a '!' dimension in {ctx.where!r}")
    return dims[:-1], dims[-1]


def _sorting(comp, args, ctx, fname) -> str:
    what = fname.upper().replace("_", " ")
    if len(args) != 2:
        raise UnsupportedModel(f"{what} with {len(args)} arguments in {ctx.where!r}")
    lead, last = _along_last(comp, args[0], ctx, what)
    fixed = dict(zip(lead, _bound(comp, lead, ctx)))
    helper = "_vsort" if fname == "vector_sort_order" else "_vrank"

    def build(iso):
        codes = _codes(comp, args[0], iso, [last], fixed)
        dctx = _sub(comp, iso, fixed)
        direction = comp.fl(args[1], dctx)
        iso.timed |= dctx.timed
        return f"{helper}({_array(comp, codes)}, {direction})"
    node = _shared(comp, (fname, id(args[0]), id(ctx.scope), tuple(fixed.items())), ctx, build)
    i = _elements(comp, last).index(comp.ir._bind(last, ctx.binding, ctx.where))
    return f"{node}[{i}]"


def _vector_sort_order(comp, args, ctx) -> str:
    return _sorting(comp, args, ctx, "vector_sort_order")


def _vector_rank(comp, args, ctx) -> str:
    return _sorting(comp, args, ctx, "vector_rank")


def _vector_reorder(comp, args, ctx) -> str:
    """VECTOR REORDER(vector, order): along the order's last dimension, the
    element at position i is the vector's element at position order[i]."""
    if len(args) != 2:
        raise UnsupportedModel(f"VECTOR REORDER with {len(args)} arguments in {ctx.where!r}")
    lead, last = _along_last(comp, args[1], ctx, "VECTOR REORDER")
    vdims = arg_dims(comp, args[0], ctx.binding)
    if last not in vdims:
        raise UnsupportedModel(f"VECTOR REORDER whose vector lacks the order's last "
                               f"dimension {last!r} in {ctx.where!r}")
    others = [d for d in vdims if d != last]
    fixed = dict(zip(others, _bound(comp, others, ctx)))
    node = _shared(comp, ("vector_reorder", id(args[0]), id(ctx.scope), tuple(fixed.items())),
                   ctx, lambda iso: _array(comp, _codes(comp, args[0], iso, [last], fixed)))
    return f"_pick({node}, {comp.fl(args[1], ctx)})"


def _invert_matrix(comp, args, ctx) -> str:
    """INVERT MATRIX(m[..., a, b], n): PySD inverts over the last two
    dimensions (``np.linalg.inv``); ``n`` is not used."""
    dims = arg_dims(comp, args[0], ctx.binding)
    if len(dims) < 2 or any(d.endswith("!") for d in dims):
        raise UnsupportedModel(f"INVERT MATRIX of a value without two dimensions in "
                               f"{ctx.where!r}")
    lead, (a, b) = dims[:-2], dims[-2:]
    if len(_elements(comp, a)) != len(_elements(comp, b)):
        raise UnsupportedModel(f"INVERT MATRIX of a non-square matrix in {ctx.where!r}")
    fixed = dict(zip(lead, _bound(comp, lead, ctx)))
    n = len(_elements(comp, a))

    def build(iso):
        return f"_inv({_array(comp, _codes(comp, args[0], iso, [a, b], fixed))}, {n})"
    node = _shared(comp, ("invert_matrix", id(args[0]), id(ctx.scope), tuple(fixed.items())),
                   ctx, build)
    i = _elements(comp, a).index(comp.ir._bind(a, ctx.binding, ctx.where))
    j = _elements(comp, b).index(comp.ir._bind(b, ctx.binding, ctx.where))
    return f"{node}[{i * n + j}]"


def _allocation(comp, ast, ctx, what, args, extra=()):
    """The dimension an allocation works along (the request's last) and the
    elements the slot binds for every other dimension of its arguments
    (``extra`` dimensions are iterated inside, like the last one)."""
    _check_args(args, ctx.where)
    dims = arg_dims(comp, args[0], ctx.binding)
    if not dims:
        raise UnsupportedModel(f"{what} of a request without subscripts in {ctx.where!r}")
    last = dims[-1]
    every = []
    for a in args:
        every += [d for d in arg_dims(comp, a, ctx.binding) if d not in every]
    lead = [d for d in every if d != last and d not in extra]
    return last, dict(zip(lead, _bound(comp, lead, ctx)))


def _allocated(comp, ast, ctx, kind, last, fixed, scalars, build_vectors) -> str:
    """The slot's element of the shared allocation node ``kind(vectors...,
    scalars...)``; the scalars take the slot's bound elements."""
    def build(iso):
        vectors = build_vectors(iso)
        fctx = _sub(comp, iso, fixed)
        rest = [comp.fl(a, fctx) for a in scalars]
        iso.timed |= fctx.timed
        return f"{kind}({', '.join(vectors + rest)})"
    node = _shared(comp, (kind, id(ast), id(ctx.scope), tuple(fixed.items())), ctx, build)
    i = _elements(comp, last).index(comp.ir._bind(last, ctx.binding, ctx.where))
    return f"{node}[{i}]"


def allocate_by_priority(comp, ast, ctx) -> str:
    """ALLOCATE BY PRIORITY(request, priority, size, width, supply): along the
    request's last dimension; width and supply take the other dimensions."""
    last, fixed = _allocation(comp, ast, ctx, "ALLOCATE BY PRIORITY",
                              [ast.request, ast.priority, ast.width, ast.supply])
    return _allocated(comp, ast, ctx, "_alloc_priority", last, fixed, [ast.width, ast.supply],
                      lambda iso: [_array(comp, _codes(comp, a, iso, [last], fixed))
                                   for a in (ast.request, ast.priority)])


def allocate_available(comp, ast, ctx) -> str:
    """ALLOCATE AVAILABLE(request, pp, avail): the priority profile's last
    subscript stands for the whole profile range (PySD replaces it with the
    profile variable's last dimension)."""
    pp = ast.pp
    pvar = comp.ir.vars.get(pp.reference) if isinstance(pp, ae.ReferenceStructure) else None
    if pvar is None or not pvar.dims or not pp.subscripts:
        raise UnsupportedModel(f"ALLOCATE AVAILABLE whose priority profile is not a "
                               f"subscripted variable in {ctx.where!r}")
    profile = pvar.dims[-1]
    subs = list(pp.subscripts.subscripts[:-1]) + [profile]
    pp = ae.ReferenceStructure(pp.reference, ae.SubscriptsReferenceStructure(tuple(subs)))
    last, fixed = _allocation(comp, ast, ctx, "ALLOCATE AVAILABLE",
                              [ast.request, pp, ast.avail], extra=(profile,))
    size = len(_elements(comp, profile))
    return _allocated(comp, ast, ctx, "_alloc_available", last, fixed, [size, ast.avail],
                      lambda iso: [_array(comp, _codes(comp, ast.request, iso, [last], fixed)),
                                   _array(comp, _codes(comp, pp, iso, [last, profile], fixed))])
