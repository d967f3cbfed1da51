"""Compile a model once per content hash and keep the artefact on disk.

The cache key is the SHA-256 of the ``.mdl`` bytes plus the engine's own
source and the PySD and numba versions, so editing the model or upgrading
the engine recompiles; the numba machine code lives in the ``__pycache__``
beside the generated source inside ``sd.model.cache.entry("engine", digest)``.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..model import cache
from . import runtime
from .codegen import generate
from .compiler import Compiler
from .model_ir import CONTROL, ModelIR, UnsupportedModel, canon

_HERE = Path(__file__).parent
#: Above this many nodes + 4 x statefuls the default back end is numpy
#: (measured: ~500 nodes + 200 delays took 35 s to compile with numba).
NUMBA_MAX_SIZE = 600


def _size(comp) -> int:
    return len(comp.nodes) + 4 * len(comp.statefuls)


#: Compiled models of this process, by (content digest, back end).
_MEMO: dict = {}


def _numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class CompiledModel:
    """A model compiled for many runs.

    Attributes
    ----------
    path, digest, mode : model file, cache key, ``"numba"`` or ``"numpy"``.
    fn : the generated ``simulate`` function.
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
        h = hashlib.sha256()
        for f in sorted(_HERE.glob("*.py")):
            h.update(f.read_bytes())
        import pysd

        h.update(pysd.__version__.encode())
        try:
            import numba

            h.update(numba.__version__.encode())
        except ImportError:
            pass
        _DIGESTS["engine"] = h.hexdigest()
    return _DIGESTS["engine"]


def model_digest(path) -> str:
    """Cache key: model bytes + engine source + PySD/numba versions (memoised
    per file state, so repeated small batches do not re-hash)."""
    st = Path(path).stat()
    key = (str(Path(path).resolve()), st.st_mtime_ns, st.st_size)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        h.update(cache.file_sha256(path).encode())
        h.update(_engine_digest().encode())
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def compile_model(path, mode: str | None = None, build: bool = True) -> CompiledModel | None:
    """Translate ``path`` with PySD's parser and compile it for many runs.

    Parameters
    ----------
    path : str or Path or object with ``.path``
        The Vensim ``.mdl``.
    mode : {"numba", "numpy"}, optional
        Back end; default numba when importable.
    build : bool
        ``False`` only checks support (raises :class:`UnsupportedModel`).

    Raises
    ------
    UnsupportedModel
        The model uses a construct the engine does not implement.
    """
    path = Path(getattr(path, "path", path))
    digest = model_digest(path)
    key = (digest, mode)
    if key in _MEMO:
        return _MEMO[key]
    ir = ModelIR(path)
    chosen = mode or ("numba" if _numba_available() else "numpy")
    comp = Compiler(ir, chosen)
    if mode is None and chosen == "numba" and _size(comp) > NUMBA_MAX_SIZE:
        # numba's compile time grows faster than linearly with the function
        # (200 subscripted DELAY3 elements: ~35 s); vectorised numpy over
        # runs has no compile step and is fine for big subscripted models
        comp = Compiler(ir, "numpy")
    mode = comp.mode
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
    if not build:
        return None
    fn = _load(source, digest, mode)
    params = tuple((var.name, var.labels()[slot], value) for var, slot, value in comp.params)
    kinds = {canon(v.name): v.kind if not v.literal or v.kind != "aux" else "constant"
             for v in ir.vars.values()}
    cm = CompiledModel(path, digest, mode, fn, params,
                       tuple(comp.tables), tuple(outputs), controls, kinds)
    _MEMO[key] = cm
    _MEMO[(digest, mode)] = cm
    return cm


def _controls(ir: ModelIR, comp: Compiler) -> tuple:
    """Code of each control value (numbers or expressions of constants and
    other control values, e.g. SAVEPER = TIME STEP, which then follows a
    TIME STEP override as in PySD)."""
    from .compiler import Ctx

    codes = []
    for cname in CONTROL:
        var = ir.vars.get(cname)
        if var is None:
            raise UnsupportedModel(f"control variable {cname.upper()} is missing")
        ctx = Ctx(var, 0, {}, "init", set(), var.name)
        code, _ = comp.emit(var.flat[0][0].ast, ctx)
        if ctx.timed:
            raise UnsupportedModel(f"time-dependent control variable {var.name!r}")
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


def _load(source: str, digest: str, mode: str):
    where = cache.entry("engine", digest)
    if mode == "numpy":
        # no JIT, nothing worth caching: generate and exec in memory
        env = {"np": np, "_uniform_int": runtime.uniform_int, **runtime.NUMPY}
        code = compile(source, str(where / "model_numpy.py"), "exec")
        exec(code, env)
        return env["simulate"]
    header = ("import numpy as np\nimport numba\n"
              "from sd.engine.runtime import numba_helpers as _nh\n"
              "globals().update(_nh())\n\n"
              "@numba.njit(cache=True, error_model='numpy', nogil=True)\n")
    target = where / "model_numba.py"
    text = header + source
    if not target.is_file() or target.read_text() != text:
        # atomic: parallel workers may compile the same model at once
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, target)
    name = f"sd_engine_{digest[:16]}"
    if name in sys.modules:
        return sys.modules[name].simulate
    spec = importlib.util.spec_from_file_location(name, target)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.simulate
