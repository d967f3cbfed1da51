"""Which back end gives ONE run its results soonest.

A batch (calibration, ensemble) compiles once and runs many times, so it
uses numba (:func:`~sd.engine.build.compile_model`). One run (``sd run``,
:func:`sd.run`, each rerun of ``sd run --watch``) pays for the start-up too:
numba costs an import (~0.4 s) and either loading its cached machine code
(~0.3 s) or compiling (seconds: ~4.5 s for the Juárez model), while the
same generated code run by CPython (back end ``python``) starts at once and
costs ~0.1-0.3 us per node and time step. :func:`one_run` compares the two
estimates; the constants are measured (``benchmarks/interactive.py`` prints
them for the machine it runs on; figures below from a shared 2-core VM):

======================================  =================
python back end, per node x time step   0.1-0.3 us
numba import                            0.35-0.5 s
numba, load cached code                 0.2-0.3 s
numba, compile                          ~0.04 s per node
======================================  =================

So a one-off run of the Juárez model (107 nodes x 241 steps: ~5 ms in
CPython) or World3 (395 x 401: ~30 ms) never waits for numba; a run of
10^7 node-steps uses numba when its code is cached.
"""
from __future__ import annotations

import sys

from .build import CompiledModel, NUMBA_MAX_SIZE, _numba_available, compile_model, numba_ready

#: Seconds per node and time step of the python back end (upper end measured).
PYTHON_NODE_STEP = 3e-7
#: Seconds to import numba and its helpers.
NUMBA_IMPORT = 0.4
#: Seconds to load a cached compiled function (index check, helpers).
NUMBA_LOAD = 0.3
#: Seconds to compile, per unit of size (nodes + 4 x statefuls), and fixed.
NUMBA_COMPILE = 0.04
NUMBA_COMPILE_FIXED = 1.0


def one_run(model) -> CompiledModel:
    """The compiled model that runs one run of ``model`` soonest."""
    from ..model.timing import settings

    cm = compile_model(model, "python")
    if not _numba_available() or cm.size > NUMBA_MAX_SIZE:
        return cm
    steps = settings(cm.model).steps + 1
    return compile_model(model, "numba") if choose(cm, steps) == "numba" else cm


def choose(cm: CompiledModel, steps: int) -> str:
    """``"python"`` or ``"numba"``: the smaller estimated wall time."""
    python = PYTHON_NODE_STEP * steps * cm.size
    ready = numba_ready(cm)
    numba = 0.0 if "numba" in sys.modules else NUMBA_IMPORT
    numba += {"memory": 0.0, "disk": NUMBA_LOAD}.get(
        ready, NUMBA_COMPILE_FIXED + NUMBA_COMPILE * cm.size)
    return "python" if python <= numba else "numba"
