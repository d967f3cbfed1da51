"""Compile a model once per content hash and keep the artefact on disk.

The model is the snapshot of a loaded :class:`sd.model.Model` (a path is
loaded first), so every engine runs the text :func:`sd.model.load` read.
The cache key is the model's content key (its bytes and external files) plus
the engine's own source, the PySD and numba versions and the cache format,
so editing the model or upgrading the engine recompiles.

The generated source is checked by :mod:`.verify` before it is compiled. The
numba back end keeps it, with numba's machine-code cache (``__pycache__/*.nbi``,
an index that numba unpickles, and ``*.nbc``), in a sealed cache entry
(:func:`sd.model.cache.publish`): under a per-entry lock, the entry's HMAC
manifest is checked before the module is imported and before numba reads its
index, the function is compiled for the one signature the engine calls, the
new files are sealed, and numba's disk cache is then switched off for that
function so nothing unsealed is ever written.
"""
from __future__ import annotations

import ast
import copy
import hashlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import canon
from ..model import cache
from . import artefact as artefacts, runtime
from .model_ir import CONTROL, UnsupportedModel
from .verify import NUMBA_HEADER, NUMBA_DECORATOR, verify_expression, verify_source

_HERE = Path(__file__).parent
#: Above this many nodes + 4 x statefuls the default back end is numpy
#: (measured: ~500 nodes + 200 delays took 35 s to compile with numba).
NUMBA_MAX_SIZE = 600


def _size(comp) -> int:
    return len(comp.nodes) + 4 * len(comp.statefuls)


#: Compiled models of this process, by (content digest, back end).
_MEMO: dict = {}


def _numba_available() -> bool:
    # found, not imported: importing numba costs ~0.4 s a one-off run may not need
    import importlib.util

    return importlib.util.find_spec("numba") is not None


@dataclass(frozen=True)
class CompiledModel:
    """A model compiled for many runs.

    Attributes
    ----------
    path, digest, mode : model file, cache key, ``"numba"``, ``"numpy"`` or
        ``"python"`` (the numba back end's code run by CPython: no compile step).
    fn : the generated ``simulate`` function.
    size : nodes + 4 x statefuls of the generated code.
    params : tuple of (Vensim name, element tuple, default value), one per
        column of the constants matrix.
    tables : tuple of (xs, ys, owner Vensim name), one per lookup table.
    outputs : tuple of (Vensim name, dims, coords, first column, size).
    controls : code of (initial time, final time, time step, saveper).
    """

    path: Path
    digest: str
    mode: str
    fn: object = field(repr=False)
    params: tuple = field(repr=False)
    tables: tuple = field(repr=False)
    outputs: tuple = field(repr=False)
    controls: tuple = ()
    kinds: dict = field(default_factory=dict, repr=False)
    model: object = field(default=None, repr=False, compare=False)
    size: int = 0
    code: str = field(default="", repr=False)

    def param_columns(self) -> dict:
        """canon(Vensim name) -> list of constants-matrix columns."""
        out: dict = {}
        for i, (name, labels, _) in enumerate(self.params):
            out.setdefault(canon(name), []).append(i)
            if labels:
                out.setdefault(canon(f"{name}[{','.join(labels)}]"), []).append(i)
        return out


_DIGESTS: dict = {}


def _engine_digest() -> str:
    if "engine" not in _DIGESTS:
        from ..provenance import versions

        h = hashlib.sha256(f"format {cache.FORMAT}".encode())
        for f in sorted(_HERE.glob("*.py")):
            h.update(f.read_bytes())
        # versions from the installed metadata: importing PySD costs ~1 s
        h.update(f"pysd {versions().get('pysd')} numba {versions().get('numba')}".encode())
        _DIGESTS["engine"] = h.hexdigest()
    return _DIGESTS["engine"]


def _snapshot(model):
    """A Model is used as is (its snapshot); a path is loaded (memoised by content)."""
    from ..model.loading import as_model

    return as_model(model)


def model_digest(model) -> str:
    """Cache key: model content key + engine source + versions."""
    return key_digest(_snapshot(model).key)


def key_digest(content_key: str) -> str:
    """:func:`model_digest` of the model whose content key is ``content_key``."""
    h = hashlib.sha256(content_key.encode())
    h.update(_engine_digest().encode())
    return h.hexdigest()


def compile_model(path, mode: str | None = None, build: bool = True,
                  forced: tuple = ()) -> CompiledModel | None:
    """Translate ``path`` with PySD's parser and compile it for many runs.

    Parameters
    ----------
    path : sd.model.Model or str or Path
        A loaded model (its snapshot is compiled) or a ``.mdl`` to load.
    mode : {"numba", "numpy", "python"}, optional
        Back end; default numba when importable (numpy for very large
        models). ``python`` runs numba's code in CPython: no compile step,
        the choice for one run (:mod:`.backends`).
    build : bool
        ``False`` only checks support (raises :class:`UnsupportedModel`).
    forced : tuple of str
        Vensim names of variables held on a path given per run: each becomes
        a time table owned by its name, set with ``run_compiled(...,
        lookups={name: (times, values)})``. A separate artefact, compiled in
        this process (not kept with the model's stored artefacts).

    Raises
    ------
    UnsupportedModel
        The model uses a construct the engine does not implement.
    """
    model = _snapshot(path)
    path = model.path
    digest = model_digest(model)
    forced = tuple(sorted(set(forced)))
    if forced:
        digest = hashlib.sha256(f"{digest} forced {forced!r}".encode()).hexdigest()
    key = (digest, mode)
    if key in _MEMO:
        return _MEMO[key]
    if mode not in (None, "numba", "numpy", "python"):
        raise ValueError(f"mode={mode!r}: numba, numpy or python")
    numba = _numba_available()
    if mode == "numba" and not numba:
        raise ImportError("numba is not installed")
    scalar = mode in ("numba", "python") or (mode is None and numba)
    art = _artefact(model, digest, "numba" if scalar else "numpy", build, forced)
    if mode is None and scalar and art.size > NUMBA_MAX_SIZE:
        # numba's compile time grows faster than linearly with the function
        # (200 subscripted DELAY3 elements: ~35 s); vectorised numpy over
        # runs has no compile step and is fine for big subscripted models
        art = _artefact(model, digest, "numpy", build, forced)
    if not build:
        return None
    chosen = mode or art.compiler
    cm = CompiledModel(path, digest, chosen, _function(art.source, chosen, model),
                       art.params, art.tables, art.outputs, art.controls, art.kinds, model,
                       art.size, numba_digest(art.source))
    _MEMO[key] = _MEMO[(digest, chosen)] = cm
    _bound(_MEMO)
    return cm


#: Compiled models (and python back-end code) kept per process: a session
#: that reruns after every save (``sd run --watch``) must not keep them all.
MEMO_SIZE = 16


def _bound(memo: dict) -> None:
    while len(memo) > MEMO_SIZE:
        memo.pop(next(iter(memo)))


def _artefact(model, digest: str, compiler: str, build: bool,
              forced: tuple = ()) -> "artefacts.Artefact":
    """What the compiler makes of ``model``: stored (:mod:`.artefact`), or
    compiled now from the parsed model and stored (a variant with ``forced``
    variables is compiled, never stored)."""
    if build and not forced:
        found = artefacts.recall(model, digest, compiler, key_digest)
        if found is not None:
            for code in found.controls:
                verify_expression(code, model=str(model.path))
            return found
    from .codegen import generate
    from .compiler import Compiler
    from .model_ir import ModelIR

    ir = ModelIR(model)
    comp = Compiler(ir, compiler, forced)
    outputs, cols = [], []
    col = 0
    for cname, var in ir.vars.items():
        if var.kind == "lookup":
            continue
        names = [comp.node_name(cname, s) for s in range(var.size)]
        cols.extend(names)
        outputs.append((var.name, var.dims, var.coords, col, var.size))
        col += var.size
    source = generate(comp, cols)
    controls = _controls(ir, comp)
    for code in controls:
        verify_expression(code, model=str(model.path))
    params = tuple((var.name, var.labels()[slot], value) for var, slot, value in comp.params)
    kinds = {canon(v.name): v.kind if not v.literal or v.kind != "aux" else "constant"
             for v in ir.vars.values()}
    art = artefacts.Artefact(compiler, source, _size(comp), params, tuple(comp.tables),
                             tuple(outputs), controls, kinds)
    if build and not forced:
        artefacts.keep(digest, art)
    return art


def _controls(ir, comp) -> tuple:
    """Code of each control value (numbers or expressions of constants and
    other control values, e.g. SAVEPER = TIME STEP, which then follows a
    TIME STEP override as in PySD)."""
    from .nodes import Ctx

    codes = []
    for cname in CONTROL:
        var = ir.vars.get(cname)
        if var is None:
            raise UnsupportedModel(f"control variable {cname.upper()} is missing")
        ctx = Ctx(var, 0, {}, "init", set(), var.name)
        code, _ = comp.emit(var.flat[0][0].ast, ctx)
        if ctx.timed:
            raise UnsupportedModel(f"control variable {var.name!r} depends on Time (sd "
                                   "refuses time settings that change during a run on every "
                                   "engine: sd.model.timing)")
        for d in sorted(ctx.deps, key=len, reverse=True):
            code = code.replace(d, comp.nodes[d].init)
        codes.append(code)
    return tuple(codes)


def eval_controls(cm, overrides: dict) -> list:
    """Control values with ``overrides`` ({index: value}) applied."""
    env = {"np": np, **runtime.NUMPY}
    env.update({f"K{i}": p[2] for i, p in enumerate(cm.params)})
    out = [overrides.get(i) for i in range(4)]
    env["C"] = env["Ci"] = out
    for _ in range(5):
        for i, code in enumerate(cm.controls):
            if out[i] is None:
                try:
                    out[i] = float(eval(code, env))
                except TypeError:
                    pass
    if any(v is None for v in out):
        raise UnsupportedModel("control variables that are not constants")
    return out


def _function(source: str, mode: str, model):
    """The callable ``simulate`` of verified ``source`` for back end ``mode``."""
    if mode == "python":
        return _python(source, model)
    return _load(source, numba_digest(source), mode, str(model.path))


def numba_digest(source: str) -> str:
    """Key of the compiled code of ``source``: the code, not the model, so a
    model whose constants changed uses the machine code compiled before."""
    return hashlib.sha256((source + _engine_digest()).encode()).hexdigest()


def numba_ready(cm: CompiledModel) -> str | None:
    """``"memory"`` when this process has compiled ``cm``'s code with numba,
    ``"disk"`` when the cache has it (checked when loaded), else ``None``."""
    if f"sd_engine_{cm.code[:16]}" in sys.modules:
        return "memory"
    try:
        if (cache.cache_dir() / "engine" / cm.code[:40]).is_dir():
            return "disk"
    except Exception:  # noqa: BLE001 - an unusable cache is a cache without it
        pass
    return None


class _Python:
    """The numba back end's source run by CPython, with the helpers as plain
    functions: no compile step, ~0.1 us per node and time step (a one-off run
    of a model of ~100 equations over ~2,000 steps takes ~20 ms).

    CPython raises where numba's numpy error model gives inf or NaN (x/0, a
    negative number to a fractional power, an overflow), so a run that
    raises is done again with numpy floats throughout (the arrays as they
    are, every literal of the code a numpy float): it then ends as on every
    engine, with the NaN or inf reported by the run layer."""

    def __init__(self, tree, fn, model):
        self.model, self.fn, self._tree = model, fn, tree
        self._numpy_literals = None

    def __call__(self, P, C, Ci, LX, LY, LO, LN, times, save_idx, sel, out):
        # Python floats and lists, not numpy scalars and arrays: CPython's own
        # float arithmetic and list indexing take half the time (the same
        # IEEE operations: identical results)
        native = [_Sequence(a.tolist()) for a in (C, Ci, LX, LY, LO, LN, times, save_idx, sel)]
        try:
            return self.fn(_Rows(P), *native, out)
        except (ArithmeticError, ValueError, TypeError):
            args = (C, Ci, LX, LY, LO, LN, times, save_idx, sel, out)
            if self._numpy_literals is None:
                tree = _NumpyLiterals().visit(copy.deepcopy(self._tree))
                self._numpy_literals = _exec(ast.fix_missing_locations(tree))
            return self._numpy_literals(P, *args)


class _Sequence(list):
    """A list with the ``shape`` the generated code reads."""

    @property
    def shape(self) -> tuple:
        return (len(self),)


class _Rows:
    """The constants matrix as Python floats, indexed ``P[r, i]``."""

    def __init__(self, P):
        self.shape, self._rows = P.shape, P.tolist()

    def __getitem__(self, key):
        return self._rows[key[0]][key[1]]


class _NumpyLiterals(ast.NodeTransformer):
    """Every float literal ``1.5`` of verified code as ``_f64(1.5)``."""

    def visit_Constant(self, node):
        if type(node.value) is float:
            return ast.copy_location(ast.Call(ast.Name("_f64", ast.Load()), [node], []), node)
        return node


def _exec(tree):
    env = {"np": np, "_f64": np.float64, **runtime.python_helpers()}
    exec(compile(tree, "<sd engine python>", "exec"), env)
    return env["simulate"]


def _python(source: str, model) -> _Python:
    key = hashlib.sha256(source.encode()).hexdigest()
    if key not in _PYTHON:      # verified and compiled once per process
        verify_source(source, model=str(model.path), numba=False)
        tree = ast.parse(source)
        _PYTHON[key] = (tree, _exec(tree))
        _bound(_PYTHON)
    return _Python(*_PYTHON[key], model)


#: Verified python back-end code of this process, by its source's digest.
_PYTHON: dict = {}


def _load(source: str, digest: str, mode: str, model: str):
    if mode == "numpy":
        # no JIT, nothing worth caching: verify, then compile and exec in memory
        verify_source(source, model=model, numba=False)
        env = {"np": np, "_uniform_int": runtime.uniform_int, **runtime.NUMPY}
        code = compile(source, f"<sd engine {digest[:16]}>", "exec")
        exec(code, env)
        return env["simulate"]
    text = NUMBA_HEADER + f"@{NUMBA_DECORATOR}\n" + source
    verify_source(text, model=model, numba=True)
    name = f"sd_engine_{digest[:16]}"
    if name in sys.modules:
        return sys.modules[name].simulate
    with cache.lock("engine", digest):
        def write(folder: Path) -> None:
            (folder / "model_numba.py").write_text(text, encoding="utf-8")

        where = cache.publish("engine", digest, write)
        target = where / "model_numba.py"
        if target.read_text(encoding="utf-8") != text:   # sealed, so only a hash collision
            cache.discard(where, "model_numba.py is not the generated source")
            where = cache.publish("engine", digest, write)
        fn = _import(name, target)
        _compile_sealed(fn, where, digest)
    return fn


def _import(name: str, target: Path):
    """Import the verified source (never a ``.pyc``: none is written or read)."""
    spec = importlib.util.spec_from_file_location(name, target)
    module = importlib.util.module_from_spec(spec)
    before = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = before
    sys.modules[name] = module
    return module.simulate


def _compile_sealed(fn, where: Path, digest: str) -> None:
    """Compile ``fn`` for the engine's signature, reading or writing numba's
    disk cache only inside the (checked) entry, then seal what numba wrote
    and stop it writing more."""
    from numba.core.caching import NullCache

    located = Path(getattr(fn._cache, "_cache_path", "")).resolve()
    if where.resolve() not in (located, *located.parents):
        fn._cache = NullCache()     # e.g. NUMBA_CACHE_DIR elsewhere: compile in memory only
    fn.compile(_signature())
    if not isinstance(fn._cache, NullCache):
        cache.sign(where, "engine", digest)
    fn._cache = NullCache()


def _signature():
    """The argument types of every call the engine makes (C-contiguous arrays)."""
    from numba import types

    f1, i1 = types.float64[::1], types.int64[::1]
    return (types.float64[:, ::1], f1, f1, f1, f1, i1, i1, f1, i1, i1, types.float64[:, :, ::1])
