"""The engine policy, decided once per model.

PySD defines what a model means; the fast engine (:mod:`sd.engine`) is
verified against it and runs a model when it supports every construct the
model uses. :func:`prepare` makes that decision once and returns a
:class:`Simulator` that carries it: every run, batch and chunk of a
calibration, ensemble or comparison is given the Simulator, so the decision
is passed along (never remembered in a process-wide table) and every result
reports the engine that really ran it.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .._common import deep_recursion
from ..errors import SdInputError
from ..model import Model
from ..model.loading import as_model

#: ``auto``: the fast engine where it supports the model, else PySD (with a
#: warning naming the construct it refused); ``fast`` or ``pysd``: only that.
ENGINES = ("auto", "fast", "pysd")


@dataclass(frozen=True)
class Simulator:
    """A loaded model and the engine that runs it.

    Attributes
    ----------
    model : Model
    engine : str
        ``"fast"`` or ``"pysd"``: the engine every run uses.
    requested : str
        What was asked for (one of :data:`ENGINES`).
    reason : str
        Why PySD runs when ``auto`` was asked ("" otherwise).
    compiled : sd.engine.CompiledModel or None
        The compiled model when ``engine`` is ``"fast"``.
    """

    model: Model
    engine: str
    requested: str = "auto"
    reason: str = ""
    compiled: object = field(default=None, repr=False, compare=False)

    def provenance(self) -> dict:
        """What a provenance record says about the engine."""
        out = {"engine": self.engine, "engine_requested": self.requested}
        if self.reason:
            out["engine_note"] = self.reason
        return out


def prepare(model: "str | Path | Model | Simulator", engine: str = "auto", *,
            runs: int | None = None) -> Simulator:
    """Load ``model`` if it is a path and decide its engine once.

    Parameters
    ----------
    model : str, Path, Model or Simulator
        A Simulator is returned as it is when ``engine`` is ``"auto"`` or the
        engine it already uses.
    engine : {"auto", "fast", "pysd"}
    runs : int, optional
        ``1`` when the Simulator serves one run: the fast engine then uses
        the back end that gives that run soonest, counting its start-up
        (:func:`sd.engine.backends.one_run`); otherwise the back end for many.

    Raises
    ------
    SdInputError
        Unknown ``engine``; ``engine="fast"`` for a model the fast engine
        does not support (the message names the construct) or in an
        installation without it.
    """
    if engine not in ENGINES:
        raise SdInputError(f"engine={engine!r}: choose one of {', '.join(ENGINES)}.")
    if isinstance(model, Simulator):
        if engine in ("auto", model.engine):
            return model
        model = model.model
    model = as_model(model)        # a path is read once per content; a Model is its snapshot
    if engine == "pysd":
        return Simulator(model, "pysd", "pysd")
    return _fast_or_fallback(model, engine, runs)


def _fast_or_fallback(model: Model, engine: str, runs: int | None = None) -> Simulator:
    try:
        from ..engine import UnsupportedModel, compile_model
    except ImportError as exc:  # numba/numpy missing from this installation
        return _fallback(model, engine, f"the fast engine is not available ({exc})")
    try:
        with deep_recursion():          # long equations are deep syntax trees
            if runs == 1:
                from ..engine.backends import one_run

                compiled = one_run(model)
            else:
                compiled = compile_model(model)
    except UnsupportedModel as exc:
        return _fallback(model, engine, f"the fast engine cannot run {model.path.name}: {exc}")
    except RecursionError:
        return _fallback(model, engine, f"the fast engine cannot compile {model.path.name}: an "
                                        "equation is nested too deeply")
    except SdInputError as exc:
        # the engine's checker refused code the engine itself generated (nothing ran);
        # PySD builds the model its own way, checked by its own verifier
        if "the fast engine generated" not in str(exc):
            raise
        return _fallback(model, engine, str(exc))
    return Simulator(model, "fast", engine, compiled=compiled)


def _fallback(model: Model, engine: str, why: str) -> Simulator:
    if engine == "fast":
        raise SdInputError(f"{why}. Use the PySD engine (--engine pysd, or engine = \"pysd\" "
                           "in a spec).")
    warnings.warn(f"{why}; running PySD", stacklevel=3)
    return Simulator(model, "pysd", "auto", reason=why)
