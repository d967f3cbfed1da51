"""Fast engine: one compiled function advances many runs of a Vensim model.

The model goes through PySD's own translator (``VensimFile`` ->
``AbstractModel``); :mod:`.compiler` turns the ASTs into straight-line
scalar code with PySD's formulas and :mod:`.codegen` wraps it in a loop over
runs and time. Generated source (and numba's machine-code cache) is stored by
model content hash under ``sd.cache.entry("engine", digest)``.

Back end choice (measured on this 2-core machine, 40-variable Juárez kiln
model, 1988-2000, TIME STEP 1/16, see ``benchmarks/engine.py``): numba
(loop over runs outside, time inside, scalars) takes ~0.02 ms per run at
N=1,000 and ~0.05 ms for one run; the numpy back end (arrays over the run
axis, Python loop over time) takes ~25 ms for one run (per-step dispatch of
~300 numpy operations) and ~40 ms for 1,000 runs. numba is used when it is
importable, numpy otherwise.
"""
from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

from .model_ir import UnsupportedModel
from .build import CompiledModel, compile_model
from .execute import run_fast, run_scenario_fast

__all__ = ["UnsupportedModel", "CompiledModel", "compile_model", "run_fast", "supports",
           "run_scenario_fast"]


def supports(path) -> tuple[bool, str]:
    """Whether the fast engine can run the model at ``path``.

    Returns
    -------
    (bool, str)
        ``(True, "")`` or ``(False, reason)``; the reason names the
        unsupported construct and the variable using it.
    """
    try:
        compile_model(path, build=False)
    except UnsupportedModel as exc:
        return False, str(exc)
    return True, ""
