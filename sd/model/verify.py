"""Step 5 of loading: check a PySD translation with ``ast`` before it is imported.

:mod:`sd.model.sanitize` keeps hostile text out of the builder; this module
checks the builder's output anyway, so that a gap in the first step (or a
PySD upgrade that writes something new) is refused instead of executed. The
generated module is parsed, never run, and accepted only if it has the
shapes PySD's Python builder emits (learned from ``pysd/builders/python`` and
the translations of the SDXorg test models):

* module level: the header docstring, imports of the known PySD, numpy,
  xarray and pathlib names, assignments of builder objects
  (``_integ_x = Integ(...)``), ``obj.add(...)`` calls and component functions
  decorated with ``@component.add(...)``;
* in functions: an optional docstring, assignments to the builder's locals
  (``value``, ``except_subs``, ``def_subs``) and a ``return``;
* expressions: literals, arithmetic, comparisons, subscripts, no-argument
  ``lambda``\\ s, and calls of names only: the builder's functions, the
  model's own components, and methods on an allow-list (``.loc``,
  ``.rename``, ``np.exp`` ...); no other attribute, no dunder, no f-string,
  comprehension, ``exec``, ``open`` or ``import`` in a body;
* every string literal accounted for: a name or argument of the model (all
  checked plain or written with ``repr`` by :mod:`sd.model.sanitize`), a
  harmless documentation text, the name of a component of this module, or a
  constant of the builder.

Anything else raises :class:`SdInputError` naming the model file and the
variable whose code did not pass.
"""
from __future__ import annotations

import ast
import dataclasses

from .._common import deep_recursion
from ..errors import SdInputError

#: pysd.py_backend modules a translation may import from (``utils`` only
#: serves split-view models, which ``sd`` never builds).
_PYSD_MODULES = ("functions", "statefuls", "external", "data", "lookups", "allocation", "model")

#: Attributes the builder uses (numpy / xarray / pathlib / PySD objects).
ATTRIBUTES = frozenset({
    "add", "DataArray", "zeros_like", "ones_like", "nan", "inf", "pi", "loc", "values",
    "rename", "expand_dims", "transpose", "reset_coords", "squeeze", "parent", "joinpath",
    "initial_time", "final_time", "time_step", "saveper", "stage", "arange", "array",
    "interp", "abs", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh",
    "tanh", "sqrt", "exp", "log", "power", "minimum", "maximum", "logical_and",
    "logical_or", "logical_not", "random", "uniform", "truncnorm", "truncexpon", "rvs",
})

#: Names the builder itself defines or uses in every translation.
_BUILDER_NAMES = frozenset({
    "np", "xr", "Path", "Component", "component", "__data", "__pysd_version__", "_root",
    "_subscript_dict", "_params", "_control_vars", "_init_outer_references", "time",
    "float", "len", "bool", "stats",
})
#: Locals of component functions.
_LOCALS = frozenset({"value", "except_subs", "def_subs", "x", "final_subs"})

#: String constants of the builder's templates (component types, dependency
#: keys, time-object attributes, data interpolation keywords).
BUILDER_STRINGS = frozenset({
    "time", "scope", "initial", "step", "Time", "Current time of the model.",
    "__external__", "__lookup__", "__data__", "initial_time", "final_time", "time_step",
    "saveper", "Auxiliary", "Constant", "Stateful", "Lookup", "Data", "Normal",
    "Unchangeable", "External", "Hardcoded", "Hardcoded lookup", "with Lookup", "Integ",
    "NonNegativeInteg", "Smooth", "Trend", "Delay", "DelayN", "DelayFixed", "Forecast",
    "SampleIfTrue", "Initial", "Macro", "TabData", "interpolate", "look_forward",
    "hold_backward", "raw", "extrapolate",
})


def model_strings(abstract) -> tuple[set, set]:
    """Every text of the (prepared) abstract model, and its documentation texts."""
    texts: set = set()
    docs: set = set()

    def walk(value):
        if isinstance(value, str):
            texts.add(value)
            texts.add(value + "!")
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(k)
                walk(v)
        elif isinstance(value, (list, tuple, set)):
            for v in value:
                walk(v)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                if f.name == "documentation":
                    docs.add(" ".join(getattr(value, f.name).split()))
                elif f.name != "path":
                    walk(getattr(value, f.name))

    walk(abstract.sections)
    return texts, docs


def allowed_imports() -> dict:
    """{module: names} a translation may import."""
    import importlib

    out = {"pathlib": {"Path"}, "pysd": {"Component"}, "scipy": {"stats"}}
    for short in _PYSD_MODULES:
        module = importlib.import_module(f"pysd.py_backend.{short}")
        names = set(module.__dir__()) if callable(getattr(module, "__dir__", None)) else set()
        out[f"pysd.py_backend.{short}"] = {n for n in names if not n.startswith("_")}
    out["pysd.py_backend.model"] = {"Macro"}
    # the functions sd adds (sd.model.extend), and only while they are sd's own
    from .pysd_functions import RUNTIME

    functions = importlib.import_module("pysd.py_backend.functions")
    out["pysd.py_backend.functions"] -= set(RUNTIME)
    out["pysd.py_backend.functions"] |= {n for n, f in RUNTIME.items()
                                         if getattr(functions, n, None) is f}
    return out


def verify_translation(code: str, *, file: str, model: str, texts: set, docs: set,
                       module_names: set) -> None:
    """Refuse ``code`` (the text of a generated module) unless it has only
    the shapes described in the module docstring.

    Parameters
    ----------
    file : str
        The generated file's name (``model.py`` or a macro's module).
    model : str
        The ``.mdl`` it came from (for the message).
    texts, docs : set
        From :func:`model_strings`.
    module_names : set
        File names of the translation's modules (their header docstrings).
    """
    with deep_recursion():           # a long equation is a deep syntax tree
        try:
            tree = ast.parse(code, filename=file)
            _Checker(file, model, texts, docs, module_names).module(tree)
        except SyntaxError as exc:
            raise SdInputError(f"{model}: the translation ({file}) is not valid Python "
                               f"(line {exc.lineno}); the model was refused.") from None
        except RecursionError:
            raise SdInputError(f"{model}: an equation is nested too deeply to check its "
                               f"translation ({file}); split it into several variables.") \
                from None


class _Refused(Exception):
    pass


class _Checker:
    def __init__(self, file, model, texts, docs, module_names):
        self.file, self.model = file, model
        self.texts, self.docs = texts, docs
        self.headers = {f"\nPython model '{m}'\nTranslated using PySD\n" for m in module_names}
        self.modules = set(module_names)
        self.imports = allowed_imports()
        self.names = set(_BUILDER_NAMES)
        self.defined: set = set()
        self.elements: set = set()
        self.where = "the module header"

    # -- entry -----------------------------------------------------------------
    def module(self, tree: ast.Module) -> None:
        try:
            self._collect(tree)
            for i, stmt in enumerate(tree.body):
                self._top(stmt, first=i == 0)
        except _Refused as exc:
            raise SdInputError(
                f"{self.model}: refused: the code generated for {self.where} ({self.file}) "
                f"does not have a shape PySD's builder emits: {exc}. No code from the model "
                "was run.") from None

    def _collect(self, tree) -> None:
        """Names the module defines (components, builder objects) and imports."""
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and _is_name(stmt.targets[0], "_subscript_dict"):
                self._subscript_dict(stmt.value)
            if isinstance(stmt, ast.Assign) and _is_name(stmt.targets[0], "_params") and \
                    isinstance(stmt.value, ast.Dict):
                # a macro's arguments: components passed in by the caller
                for v in stmt.value.values:
                    if isinstance(v, ast.Constant) and isinstance(v.value, str):
                        self._identifier(v.value)
                        self.names.add(v.value)
            if isinstance(stmt, ast.FunctionDef):
                self._identifier(stmt.name)
                self.defined.add(stmt.name)
            elif isinstance(stmt, ast.Assign):
                for t in stmt.targets:
                    if isinstance(t, ast.Name):
                        self._identifier(t.id)
                        self.defined.add(t.id)
            elif isinstance(stmt, ast.ImportFrom):
                allowed = self.imports.get(stmt.module or "")
                for alias in stmt.names:
                    if allowed is None or alias.name not in allowed or alias.asname:
                        raise _Refused(f"import of {stmt.module}.{alias.name}")
                    self.names.add(alias.name)
            elif isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    if (alias.name, alias.asname) not in (("numpy", "np"), ("xarray", "xr")):
                        raise _Refused(f"import of {alias.name}")
        self.names |= self.defined

    def _subscript_dict(self, node) -> None:
        """``_subscript_dict = {range: [element, ...]}``: element names may come
        from numeric ranges (``(A1-A5)``) or a GET DIRECT SUBSCRIPT file, so
        they are accepted here, as plain strings, for use elsewhere."""
        from .sanitize import unsafe_char

        self.where = "the subscript ranges"
        if not isinstance(node, ast.Dict):
            raise _Refused("_subscript_dict is not a dict")
        for k, v in zip(node.keys, node.values):
            if not (isinstance(k, ast.Constant) and isinstance(k.value, str)
                    and isinstance(v, ast.List)):
                raise _Refused("_subscript_dict is not {name: [elements]}")
            for e in v.elts:
                if not (isinstance(e, ast.Constant) and isinstance(e.value, str)) \
                        or unsafe_char(e.value):
                    raise _Refused(f"the subscript element {ast.unparse(e)[:40]} of {k.value!r}")
                self.elements.add(e.value)
                self.elements.add(e.value + "!")

    def _identifier(self, name: str) -> None:
        if name in ("__data", "__pysd_version__"):
            return
        if name.startswith("__") or not name.isidentifier() or not name.isascii():
            raise _Refused(f"the name {name!r}")

    # -- statements --------------------------------------------------------------
    def _top(self, stmt, first: bool) -> None:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            return  # checked in _collect
        if isinstance(stmt, ast.Expr) and first and isinstance(stmt.value, ast.Constant):
            if stmt.value.value not in self.headers:
                raise _Refused("an unexpected module docstring")
            return
        if isinstance(stmt, ast.FunctionDef):
            return self._function(stmt)
        if isinstance(stmt, ast.Assign):
            return self._module_assign(stmt)
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            # obj.add(...): more data for an external object
            f = stmt.value.func
            if isinstance(f, ast.Attribute) and f.attr == "add" and \
                    isinstance(f.value, ast.Name) and f.value.id in self.defined:
                self.where = f"the object {f.value.id}"
                return self._call_args(stmt.value, set())
        raise _Refused(f"a module-level {type(stmt).__name__}")

    def _module_assign(self, stmt: ast.Assign) -> None:
        if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
            raise _Refused("an assignment to something other than one name")
        name = stmt.targets[0].id
        self.where = f"the object {name}"
        v = stmt.value
        if name == "_root":
            # _root = Path(__file__).parent: the only use of __file__
            ok = (isinstance(v, ast.Attribute) and v.attr == "parent"
                  and isinstance(v.value, ast.Call) and _is_name(v.value.func, "Path")
                  and len(v.value.args) == 1 and _is_name(v.value.args[0], "__file__")
                  and not v.value.keywords)
            if not ok:
                raise _Refused("_root is not Path(__file__).parent")
            return
        if name == "__pysd_version__":
            if not (isinstance(v, ast.Constant) and isinstance(v.value, str)
                    and v.value.replace(".", "").isalnum()):
                raise _Refused("an unexpected __pysd_version__")
            return
        self.expr(v, set())

    def _function(self, fn: ast.FunctionDef) -> None:
        self.where = f"function {fn.name}"
        if fn.name == "_init_outer_references":
            return self._init_outer_references(fn)
        if len(fn.decorator_list) != 1:
            raise _Refused("a function without the @component.add decorator")
        dec = fn.decorator_list[0]
        if not (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute)
                and dec.func.attr == "add" and _is_name(dec.func.value, "component")
                and not dec.args):
            raise _Refused("a decorator other than @component.add(...)")
        for kw in dec.keywords:
            if kw.arg is None:
                raise _Refused("** in the decorator")
            if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                self.where = f"variable {kw.value.value!r}"
            self.literal(kw.value)
        args = fn.args
        params = [a.arg for a in args.args]
        if args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs or \
                params not in ([], ["x", "final_subs"]) or \
                any(not (isinstance(d, ast.Constant) and d.value is None) for d in args.defaults):
            raise _Refused("an unexpected function signature")
        if fn.returns is not None or fn.type_comment:
            raise _Refused("an annotated function")
        local = set(params)
        body = list(fn.body)
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            doc = " ".join(body[0].value.value.split())
            if doc not in self.docs and doc not in BUILDER_STRINGS:
                raise _Refused("a docstring that is not the variable's documentation")
            body = body[1:]
        if not body or not isinstance(body[-1], ast.Return) or body[-1].value is None:
            raise _Refused("a function that does not end with a return")
        for stmt in body[:-1]:
            if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
                raise _Refused(f"a {type(stmt).__name__} statement in a component")
            target = stmt.targets[0]
            if isinstance(target, ast.Name) and target.id in _LOCALS:
                local.add(target.id)
            elif isinstance(target, ast.Subscript) and _root_name(target) in _LOCALS:
                self.expr(target, local | {_root_name(target)}, store=True)
            else:
                raise _Refused("an assignment to something other than a local")
            self.expr(stmt.value, local)
        self.expr(body[-1].value, local)

    def _init_outer_references(self, fn: ast.FunctionDef) -> None:
        expected = ("def _init_outer_references(data):\n    for key in data:\n"
                    "        __data[key] = data[key]")
        if ast.unparse(fn) != expected:
            raise _Refused("an unexpected _init_outer_references")

    # -- expressions ---------------------------------------------------------------
    def literal(self, node) -> None:
        """Decorator metadata: constants, containers of constants, np.nan/np.inf."""
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, (ast.List, ast.Tuple)):
            for e in node.elts:
                self.literal(e)
            return
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                if k is None:
                    raise _Refused("** in a dict")
                self.literal(k)
                self.literal(v)
            return
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return self.literal(node.operand)
        if isinstance(node, ast.Attribute) and _is_name(node.value, "np") and \
                node.attr in ("nan", "inf"):
            return
        raise _Refused(f"{type(node).__name__} in the component's metadata")

    def _constant(self, node: ast.Constant) -> None:
        v = node.value
        if v is None or isinstance(v, (bool, int)):
            return
        if isinstance(v, float):
            return
        if isinstance(v, str):
            if v in self.texts or v in self.defined or v in self.elements or v in self.modules \
                    or _builder_string(v):
                return
            raise _Refused(f"the string {v[:60]!r}, which is not a name or argument of the "
                           "model")
        raise _Refused(f"a {type(v).__name__} literal")

    def _call_args(self, call: ast.Call, local: set) -> None:
        for a in call.args:
            if isinstance(a, ast.Starred):
                raise _Refused("* in a call")
            self.expr(a, local)
        for kw in call.keywords:
            if kw.arg is None:
                raise _Refused("** in a call")
            self.expr(kw.value, local)

    def expr(self, node, local: set, store: bool = False) -> None:
        t = type(node)
        if t is ast.Constant:
            return self._constant(node)
        if t is ast.Name:
            if node.id in local or node.id in self.names:
                return
            raise _Refused(f"the name {node.id!r}")
        if t is ast.Attribute:
            if node.attr not in ATTRIBUTES:
                raise _Refused(f"the attribute .{node.attr}")
            return self.expr(node.value, local)
        if t is ast.Call:
            f = node.func
            if isinstance(f, ast.Name):
                if f.id == "Path" or (f.id not in self.names and f.id not in local):
                    raise _Refused(f"a call of {f.id!r}")
            elif isinstance(f, ast.Attribute):
                self.expr(f, local)
            elif not _is_time_object(f):
                raise _Refused("a call of a computed function")
            return self._call_args(node, local)
        if t is ast.Lambda:
            a = node.args
            if a.args or a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs:
                raise _Refused("a lambda with arguments")
            return self.expr(node.body, local)
        if t in (ast.BinOp,):
            self.expr(node.left, local)
            return self.expr(node.right, local)
        if t is ast.UnaryOp:
            return self.expr(node.operand, local)
        if t is ast.BoolOp:
            for v in node.values:
                self.expr(v, local)
            return
        if t is ast.Compare:
            self.expr(node.left, local)
            for c in node.comparators:
                self.expr(c, local)
            return
        if t is ast.IfExp:
            for part in (node.test, node.body, node.orelse):
                self.expr(part, local)
            return
        if t is ast.Subscript:
            self.expr(node.value, local)
            return self.expr(node.slice, local)
        if t is ast.Slice:
            for part in (node.lower, node.upper, node.step):
                if part is not None:
                    self.expr(part, local)
            return
        if t in (ast.List, ast.Tuple):
            for e in node.elts:
                if isinstance(e, ast.Starred):
                    raise _Refused("* in a list")
                self.expr(e, local)
            return
        if t is ast.Dict:
            for k, v in zip(node.keys, node.values):
                if k is None:
                    raise _Refused("** in a dict")
                self.expr(k, local)
                self.expr(v, local)
            return
        raise _Refused(f"a {t.__name__} expression")


def _builder_string(v: str) -> bool:
    """A builder constant, a ", "-joined list of them (an element defined with
    several component types), or an ASCII identifier (the builder's Python
    names of components and objects: nothing in them can end a literal)."""
    if v in BUILDER_STRINGS or all(p in BUILDER_STRINGS for p in v.split(", ")):
        return True
    return v.isascii() and v.isidentifier() and not v.startswith("__") or \
        v in ("__external__", "__lookup__", "__data__")


def _is_name(node, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _is_time_object(node) -> bool:
    """``__data['time']``: the model's clock, called as ``__data['time']()``."""
    return (isinstance(node, ast.Subscript) and _is_name(node.value, "__data")
            and isinstance(node.slice, ast.Constant) and node.slice.value == "time")


def _root_name(node) -> str | None:
    while isinstance(node, (ast.Subscript, ast.Attribute)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None

