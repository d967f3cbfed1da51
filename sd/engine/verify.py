"""Check the engine's generated source with ``ast`` before it is compiled.

:mod:`.codegen` never writes text from the model into the source: variables
are ``v<index>_<slot>``, statefuls ``s<k>``/``o<k>``, constants ``K<i>``
(values arrive as arguments), numbers are written with ``repr(float)``, and
the only strings are two fixed labels. This module enforces that: the source
must be one ``simulate`` function (plus the fixed numba header) built from
assignments, ``for``/``if``/``break``/``return``, arithmetic, comparisons,
subscripts and calls of the runtime helpers and a few numpy functions.
Anything else (a name, attribute, string or statement codegen does not emit)
is refused before ``compile``/``exec``, naming the model.
"""
from __future__ import annotations

import ast
import re

from ..errors import SdInputError

#: The fixed module header of the numba back end (checked statement by statement).
NUMBA_HEADER = ("import numpy as np\nimport numba\n"
                "from sd.engine.runtime import numba_helpers as _nh\n"
                "globals().update(_nh())\n\n")
NUMBA_DECORATOR = "numba.njit(cache=True, error_model='numpy', nogil=True)"
ARGS = ("P", "C", "Ci", "LX", "LY", "LO", "LN", "times", "save_idx", "sel", "out")
#: Locals codegen creates.
_LOCAL = re.compile(r"\A(dt|nt|N|t|r|k|j|si|c|row|[Kvma]\d+(_\d+)?|[osnpLx]\d+|tm\d+|gm\d+"
                    r"|pipe\d+)\Z")
_HELPERS = frozenset({
    "_smooth_step", "_delay_step", "_delayn_step", "_delay_order", "_min", "_max", "_pow",
    "_log", "_integer", "_quantum", "_modulo", "_xidz", "_zidz", "_step", "_ramp", "_pulse",
    "_pulse_train", "_lookup", "_held", "_raw", "_extrapolate", "_uniform_int",
    "range", "int", "max",
    # vector functions (sd.engine.vector_runtime)
    "_vselect", "_vsort", "_vrank", "_pick", "_inv", "_alloc_priority", "_alloc_available",
    "_vec",
})
_NUMPY = frozenset({
    "abs", "exp", "sqrt", "log", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh",
    "cosh", "tanh", "where", "empty", "rint", "maximum", "minimum", "nan", "inf", "pi",
})
_STRINGS = frozenset({"SMOOTH order", "DELAY FIXED length"})


class _Refused(Exception):
    pass


def verify_source(source: str, *, model: str, numba: bool) -> None:
    """Refuse the generated module ``source`` unless it has codegen's shapes."""
    try:
        if numba:
            if not source.startswith(NUMBA_HEADER):
                raise _Refused("the module header")
            tree = ast.parse(source)
            body = tree.body[4:]
            if len(body) != 1 or not isinstance(body[0], ast.FunctionDef) or \
                    [ast.unparse(d) for d in body[0].decorator_list] != [NUMBA_DECORATOR]:
                raise _Refused("the numba decorator")
        else:
            tree = ast.parse(source)
            body = tree.body
            if len(body) != 1 or not isinstance(body[0], ast.FunctionDef) or \
                    body[0].decorator_list:
                raise _Refused("the module is not one function")
        fn = body[0]
        a = fn.args
        if fn.name != "simulate" or tuple(x.arg for x in a.args) != ARGS or a.vararg or \
                a.kwarg or a.kwonlyargs or a.posonlyargs or a.defaults or fn.returns:
            raise _Refused("the signature of simulate")
        _Body().stmts(fn.body)
    except _Refused as exc:
        raise SdInputError(f"{model}: refused: the fast engine generated code that does not "
                           f"have its known shape ({exc}); nothing was compiled.") from None
    except SyntaxError as exc:
        raise SdInputError(f"{model}: refused: the fast engine generated invalid code (line "
                           f"{exc.lineno}); nothing was compiled.") from None


def verify_expression(code: str, *, model: str) -> None:
    """Refuse a control-value expression (evaluated with ``eval``) unless it
    is arithmetic of numbers, constants ``K<i>`` and the control array."""
    try:
        tree = ast.parse(code, mode="eval")
        _Body(extra={"C", "Ci"}).expr(tree.body)
    except (_Refused, SyntaxError) as exc:
        raise SdInputError(f"{model}: refused: a control value compiled to unexpected code "
                           f"({exc}); nothing was evaluated.") from None


class _Body:
    def __init__(self, extra=()):
        self.names = set(ARGS) | set(extra)

    def stmts(self, body) -> None:
        for s in body:
            self.stmt(s)

    def stmt(self, s) -> None:
        t = type(s)
        if t is ast.Assign:
            if len(s.targets) != 1:
                raise _Refused("a chained assignment")
            self.target(s.targets[0])
            return self.expr(s.value)
        if t is ast.For:
            if not (isinstance(s.target, ast.Name) and s.target.id in ("r", "k", "j")) or \
                    s.orelse:
                raise _Refused("a for loop")
            self.names.add(s.target.id)
            self.expr(s.iter)
            return self.stmts(s.body)
        if t is ast.If:
            self.expr(s.test)
            self.stmts(s.body)
            return self.stmts(s.orelse)
        if t is ast.Break:
            return
        if t is ast.Return:
            if not (isinstance(s.value, ast.Name) and s.value.id == "out"):
                raise _Refused("a return of something other than out")
            return
        if t is ast.Expr and isinstance(s.value, ast.Call) and \
                isinstance(s.value.func, ast.Name) and s.value.func.id in _HELPERS:
            return self.expr(s.value)
        raise _Refused(f"a {t.__name__} statement")

    def target(self, node) -> None:
        if isinstance(node, ast.Name):
            if not _LOCAL.match(node.id):
                raise _Refused(f"an assignment to {node.id!r}")
            self.names.add(node.id)
            return
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and \
                (_LOCAL.match(node.value.id) or node.value.id == "out"):
            return self.expr(node.slice)
        raise _Refused("an assignment target")

    def expr(self, node) -> None:
        t = type(node)
        if t is ast.Constant:
            v = node.value
            if isinstance(v, bool) or v is None or (isinstance(v, (int, float))) or \
                    (isinstance(v, str) and v in _STRINGS):
                return
            raise _Refused(f"the literal {v!r:.40}")
        if t is ast.Name:
            if node.id in self.names or node.id in _HELPERS or node.id == "np" or \
                    _LOCAL.match(node.id):
                return
            raise _Refused(f"the name {node.id!r}")
        if t is ast.Attribute:
            if isinstance(node.value, ast.Name) and ((node.value.id == "np" and node.attr in _NUMPY)
                                                     or (node.value.id in ("P", "times")
                                                         and node.attr == "shape")):
                return
            if node.attr == "copy" and isinstance(node.value, ast.Subscript):
                return self.expr(node.value)   # pipe[p].copy() (numpy back end)
            raise _Refused(f"the attribute .{node.attr}")
        if t is ast.Call:
            f = node.func
            if isinstance(f, ast.Attribute) and f.attr == "copy" and not node.args:
                return self.expr(f)
            if not ((isinstance(f, ast.Name) and f.id in _HELPERS) or
                    (isinstance(f, ast.Attribute) and _is_np(f))):
                raise _Refused(f"a call of {ast.unparse(f)[:40]}")
            if node.keywords:
                raise _Refused("a keyword argument")
            for a in node.args:
                self.expr(a)
            return
        if t is ast.BinOp:
            self.expr(node.left)
            return self.expr(node.right)
        if t is ast.UnaryOp:
            return self.expr(node.operand)
        if t is ast.BoolOp:
            for v in node.values:
                self.expr(v)
            return
        if t is ast.Compare:
            self.expr(node.left)
            for c in node.comparators:
                self.expr(c)
            return
        if t is ast.IfExp:
            for part in (node.test, node.body, node.orelse):
                self.expr(part)
            return
        if t is ast.Subscript:
            self.expr(node.value)
            return self.expr(node.slice)
        if t is ast.Slice:
            for part in (node.lower, node.upper, node.step):
                if part is not None:
                    self.expr(part)
            return
        if t is ast.Tuple:
            for e in node.elts:
                self.expr(e)
            return
        raise _Refused(f"a {t.__name__} expression")


def _is_np(node: ast.Attribute) -> bool:
    return isinstance(node.value, ast.Name) and node.value.id == "np" and node.attr in _NUMPY
