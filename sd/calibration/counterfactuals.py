"""Which mechanism drives a fitted collapse: counterfactual runs on the fit.

The spec's ``[explain]`` table names the variable (e.g. ``Propane Share``),
the late window (e.g. ``[1996, 2000]``) and counterfactuals: scenario names
from a scenarios TOML (``scenarios = "..."``, ``counterfactuals = [...]``)
and/or ``[explain.extra.NAME]`` tables of constants. Each counterfactual's
constants are applied on top of the fitted parameters. The collapse is the
fall from the fitted peak to the fitted late mean; a counterfactual "removes"
the fraction ``(late_cf - late_fit) / (peak_fit - late_fit)`` of it. The
counterfactual that removes most of the collapse names its driver.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .._common import input_file, known_keys, number, time_text
from ..errors import SdInputError, SdRuntimeError, suggest
from ..outcomes.metrics import Metric, values
from ..scenarios import Scenario, load_toml, validate
from ..simulation import Simulator, failed_runs, run_many


@dataclass(frozen=True)
class Counterfactual:
    """One counterfactual run on top of the fit."""

    name: str
    description: str
    constants: dict
    peak: float
    late: float
    removed: float       # fraction of the fitted collapse this counterfactual removes
    series: np.ndarray
    failed: str = ""     # why its run failed (then peak, late and removed are NaN)


@dataclass(frozen=True)
class Explanation:
    """The fitted collapse and the counterfactuals that test its causes."""

    variable: str
    window: tuple
    times: np.ndarray
    fitted: np.ndarray
    peak: float
    peak_time: float
    late: float
    counterfactuals: tuple
    driver: str | None
    text: str


def check(model, spec):
    """Check ``spec.explain``; return (variable, window, cases) or None."""
    cfg = spec.explain
    if not cfg:
        return None
    known_keys(cfg, ("variable", "window", "scenarios", "counterfactuals", "extra"),
               f"{spec.path}: [explain]")
    variable = model.variable(str(cfg.get("variable", "")), what="variable",
                              where=f" ([explain] variable in {spec.path.name})").name
    try:
        window = tuple(float(v) for v in cfg.get("window", ()))
    except (TypeError, ValueError):
        window = ()
    if len(window) != 2 or window[0] > window[1]:
        raise SdInputError(f"{spec.path}: [explain] window must be [start, end], e.g. [1996, 2000].")
    return variable, window, cases(model, cfg, spec.path)


def explain(sim: Simulator, spec, fitted: dict) -> Explanation | None:
    """Run the counterfactuals of ``spec.explain`` on the ``fitted`` values."""
    checked = check(sim.model, spec)
    if checked is None:
        return None
    variable, window, cases = checked
    base = {**spec.fixed, **fitted}
    times, fit, why = _run(sim, base, variable)
    if why:
        raise SdRuntimeError(f"[explain] the fitted parameters do not simulate: {why}")
    runs = [_run(sim, {**base, **c["constants"]}, variable) for c in cases]
    y = np.vstack([fit] + [np.full(len(times), np.nan) if why else series
                           for _, series, why in runs])
    peak_of = Metric("peak", variable, "max")
    late_of = Metric("late", variable, "mean", start=window[0], end=window[1])
    peaks, lates = values(peak_of, times, y), values(late_of, times, y)
    peak_time = float(values(Metric("peak time", variable, "time_of_max"), times, y[:1])[0])
    peak, late = float(peaks[0]), float(lates[0])
    fall = peak - late
    out = []
    for k, c in enumerate(cases, start=1):
        removed = (lates[k] - late) / fall if fall > 1e-12 else float("nan")
        out.append(Counterfactual(c["name"], c["description"], c["constants"],
                                  float(peaks[k]), float(lates[k]), float(removed), y[k],
                                  failed=runs[k - 1][2]))
    driver = _driver(out)
    text = _text(variable, window, peak_time, peak, late, out, driver)
    return Explanation(variable, window, times, y[0], peak, peak_time, late,
                       tuple(out), driver.name if driver else None, text)


def _run(sim: Simulator, constants: dict, variable: str):
    """(times, trajectory of ``variable``, why it failed or "") of one run.

    A counterfactual whose run fails is recorded and excluded from the
    explanation, never summarised."""
    ds = run_many(sim, pd.DataFrame([constants]), variables=[variable], on_failure="record")
    why = next(iter(failed_runs(ds).values()), "")
    return ds["time"].values, ds[variable].values[0], why


def cases(model, cfg: dict, spec_path: Path, key: str = "counterfactuals",
          where: str = "[explain]") -> list[dict]:
    """The scenarios a spec table names (``cfg[key]``, from ``cfg["scenarios"]``)
    and its ``extra`` tables, each checked against ``model``:
    ``{"name", "description", "constants"}``."""
    out = []
    names = cfg.get(key, [])
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise SdInputError(f"{spec_path}: {where} {key} must be a list of scenario names.")
    if names:
        if "scenarios" not in cfg:
            raise SdInputError(f"{spec_path}: {where} {key} need scenarios = FILE.")
        file = input_file(spec_path.parent, cfg["scenarios"], f"{spec_path}: {where} scenarios")
        table = load_toml(file)
        for name in names:
            if not isinstance(name, str):
                raise SdInputError(f"{spec_path}: {where} {key}: {name!r} is not a scenario name "
                                   "(expected a list of names, e.g. [\"no_boycott\"]).")
            if names.count(name) > 1:
                raise SdInputError(f"{spec_path}: {where} {key}: scenario {name!r} is named "
                                   "twice.")
            if name not in table:
                raise SdInputError(f"{spec_path}: {where} {key}: scenario {name!r} is not in "
                                   f"{file}." + suggest(str(name), table))
            sc = validate(table[name], model)
            out.append({"name": name, "description": sc.description,
                        "constants": dict(sc.constants)})
    if key != "counterfactuals":
        return out
    for name, table in dict(cfg.get("extra", {})).items():
        if not isinstance(table, dict):
            raise SdInputError(f"{spec_path}: [explain.extra.{name}] must be a table of "
                               "constants.")
        description = str(table.get("description", ""))
        constants = {k: number(v, f"{spec_path}: [explain.extra.{name}] {k!r}")
                     for k, v in table.items() if k != "description"}
        sc = validate(Scenario(name=name, constants=constants,
                               source=f"[explain.extra.{name}] in {spec_path.name}"), model)
        out.append({"name": name, "description": description, "constants": dict(sc.constants)})
    return out


#: A counterfactual that removes at least this fraction of the fall prevents the collapse.
PREVENTS = 0.5


def _driver(cases):
    """The simplest counterfactual (fewest constants) that prevents the collapse.

    A combined counterfactual (e.g. subsidy kept *and* no fuel shock) removes
    at least as much as its parts; naming it would hide which part matters,
    so among those that prevent the collapse the one changing fewest constants
    wins, then the one removing most. None when none prevents it.
    """
    sufficient = [c for c in cases if np.isfinite(c.removed) and c.removed >= PREVENTS]
    if not sufficient:
        return None
    return min(sufficient, key=lambda c: (len(c.constants), -c.removed))


def _share(removed: float) -> str:
    if not np.isfinite(removed):
        return "n/a"
    if removed >= 1:
        return "all of the fall (the late level ends above the fitted peak)" if removed > 1.05 \
            else "all of the fall"
    return f"{100 * removed:.0f}% of the fall" if removed >= 0 else \
        f"none of the fall (it deepens by {-100 * removed:.0f}%)"


def _text(variable, window, peak_time, peak, late, cases, driver) -> str:
    lines = [f"In the fitted model, {variable} peaks at {peak:.3f} in {time_text(peak_time)} and "
             f"averages {late:.3f} over {time_text(window[0])}-{time_text(window[1])} "
             f"(a fall of {peak - late:.3f}). Counterfactuals on top of the fitted parameters:", ""]
    for c in cases:
        what = ", ".join(f"{k} = {v:g}" for k, v in c.constants.items())
        if c.failed:
            lines.append(f"- {c.name} ({what}): the run failed and is excluded ({c.failed}).")
            continue
        lines.append(f"- {c.name} ({what}): late {variable} {c.late:.3f}; removes "
                     f"{_share(c.removed)}.")
    lines.append("")
    if driver is None:
        best = max(cases, key=lambda c: c.removed if np.isfinite(c.removed) else -np.inf,
                   default=None)
        lines.append("No counterfactual removes most of the collapse"
                     + (f"; the largest share is removed by {best.name} ({_share(best.removed)})."
                        if best else "."))
        return "\n".join(lines)
    single = [c for c in cases if len(c.constants) == 1 and c.removed >= PREVENTS]
    weak = [c for c in cases if np.isfinite(c.removed) and c.removed < PREVENTS]
    lines.append(f"The simplest counterfactual that removes most of the collapse is "
                 f"**{driver.name}** ({_share(driver.removed)}): "
                 f"{driver.description or 'see its constants above'}")
    if len(single) > 1:
        names = " and ".join(f"{c.name} ({next(iter(c.constants))})" for c in single)
        lines.append(f"Each of {names} alone prevents the collapse: in the fitted model the "
                     "collapse happens only when every condition these counterfactuals remove "
                     "holds together (each is a necessary cause, none alone is sufficient).")
    if weak:
        lines.append("Mechanisms that do not drive it: " + "; ".join(
            f"{c.name} removes {_share(c.removed)}" for c in weak) + ".")
    return "\n".join(lines)


def files(spec) -> list[Path]:
    """Files the explanation reads (for provenance)."""
    cfg = spec.explain
    return [(spec.path.parent / str(cfg["scenarios"])).resolve()] if cfg.get("scenarios") else []
