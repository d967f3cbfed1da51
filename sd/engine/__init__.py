"""Fast engine: one compiled function advances many runs of a Vensim model.

The model goes through PySD's own translator (``VensimFile`` ->
``AbstractModel``); :mod:`.compiler` turns the ASTs into straight-line
scalar code with PySD's formulas and :mod:`.codegen` wraps it in a loop over
runs and time. What the compiler made of a model is stored as sealed JSON by
the model's content key (:mod:`.artefact`); numba's machine code is stored by
the generated source, which depends only on the model's structure
(:func:`.build.numba_digest`). One run uses the back end that starts soonest
(:mod:`.backends`): usually the numba back end's code run by CPython.

Back end choice, measured with ``run_fast`` end to end (full Dataset, all 72
variables, 61 saved times) on this 2-core machine (shared, loaded) for the
Juárez kiln model, 1985-2000, TIME STEP 1/16 (241 Euler steps):

=========  ==========  ===========  ============
back end   1 run       1,000 runs   10,000 runs
=========  ==========  ===========  ============
numba      0.67 ms     13 ms        77 ms
numpy      16 ms       40 ms        350 ms
=========  ==========  ===========  ============

numba (loop over runs outside, time inside, every value a scalar local) wins
everywhere: numpy pays ~1 us of dispatch per operation per time step, which
dominates below ~10,000 runs. So numba is the default when importable; numpy
is the fallback, and is also chosen for very large generated functions
(``build.NUMBA_MAX_SIZE``), where numba's compile time explodes.
"""
from __future__ import annotations

from .model_ir import UnsupportedModel
from .build import CompiledModel, compile_model
from .execute import run_compiled, run_fast

__all__ = ["UnsupportedModel", "CompiledModel", "compile_model", "run_compiled", "run_fast",
           "supports"]


def supports(path) -> tuple[bool, str]:
    """Whether the fast engine can run the model at ``path``.

    Returns
    -------
    (bool, str)
        ``(True, "")`` or ``(False, reason)``; the reason names the
        unsupported construct and the variable using it.
    """
    from ..errors import SdInputError

    try:
        compile_model(path, build=False)
    except (UnsupportedModel, SdInputError) as exc:   # a model sd refuses is not run either
        return False, str(exc)
    return True, ""
