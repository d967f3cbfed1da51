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

from .batch import simulate_batch
from .errors import SdInputError


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


def explain(model, spec, values: dict) -> Explanation | None:
    """Run the counterfactuals of ``spec.explain`` on the fitted ``values``."""
    cfg = spec.explain
    if not cfg:
        return None
    variable = model.variable(str(cfg.get("variable", "")), what="variable",
                              where=f" ([explain] in {spec.path.name})").name
    window = tuple(float(v) for v in cfg.get("window", ()))
    if len(window) != 2 or window[0] > window[1]:
        raise SdInputError(f"{spec.path}: [explain] window must be [start, end].")
    cases = _cases(model, spec)
    base = {**spec.fixed, **values}
    rows = [base] + [{**base, **c["constants"]} for c in cases]
    batch = simulate_batch(model, rows, [variable])
    if batch.failed:
        raise SdInputError(f"{spec.path}: [explain] run failed: {next(iter(batch.failed.values()))}")
    times, y = batch.times, batch.series[variable]
    late_mask = (times >= window[0]) & (times <= window[1])
    peak_i = int(np.argmax(y[0]))
    peak, late = float(y[0, peak_i]), float(y[0, late_mask].mean())
    fall = peak - late
    out = []
    for k, c in enumerate(cases, start=1):
        cf_late = float(y[k, late_mask].mean())
        removed = (cf_late - late) / fall if fall > 1e-12 else float("nan")
        out.append(Counterfactual(c["name"], c["description"], c["constants"],
                                  float(y[k].max()), cf_late, removed, y[k]))
    driver = max(out, key=lambda c: -np.inf if np.isnan(c.removed) else c.removed, default=None)
    text = _text(variable, window, float(times[peak_i]), peak, late, out, driver)
    return Explanation(variable, window, times, y[0], peak, float(times[peak_i]), late,
                       tuple(out), driver.name if driver else None, text)


def _cases(model, spec) -> list[dict]:
    from .scenarios import Scenario, load_toml, validate

    cfg = spec.explain
    cases = []
    names = list(cfg.get("counterfactuals", []))
    if names:
        if "scenarios" not in cfg:
            raise SdInputError(f"{spec.path}: [explain] counterfactuals need scenarios = FILE.")
        file = (spec.path.parent / str(cfg["scenarios"])).resolve()
        table = load_toml(file)
        for name in names:
            if name not in table:
                from .errors import suggest
                raise SdInputError(f"{spec.path}: [explain] counterfactual {name!r} is not in "
                                   f"{file}." + suggest(name, table))
            sc = validate(table[name], model)
            cases.append({"name": name, "description": sc.description,
                          "constants": dict(sc.constants)})
    for name, table in dict(cfg.get("extra", {})).items():
        description = str(table.get("description", ""))
        constants = {k: float(v) for k, v in table.items() if k != "description"}
        sc = validate(Scenario(name=name, constants=constants,
                               source=f"[explain.extra.{name}] in {spec.path.name}"), model)
        cases.append({"name": name, "description": description, "constants": dict(sc.constants)})
    return cases


def _text(variable, window, peak_time, peak, late, cases, driver) -> str:
    lines = [f"In the fitted model, {variable} peaks at {peak:.3f} in {peak_time:.2f} and "
             f"averages {late:.3f} over {window[0]:g}-{window[1]:g} "
             f"(a fall of {peak - late:.3f})."]
    for c in cases:
        what = ", ".join(f"{k} = {v:g}" for k, v in c.constants.items())
        lines.append(f"- {c.name} ({what}): late {variable} {c.late:.3f}, "
                     f"removes {100 * c.removed:.0f}% of the fall.")
    if driver is not None and driver.removed > 0.5:
        lines.append(f"The counterfactual that removes most of the collapse is **{driver.name}** "
                     f"({100 * driver.removed:.0f}%): {driver.description or 'see its constants'} "
                     f"In the fitted model, the collapse is driven by what {driver.name} removes.")
    elif driver is not None:
        lines.append(f"No single counterfactual removes most of the collapse; the largest share "
                     f"({100 * driver.removed:.0f}%) is removed by **{driver.name}**, so the "
                     "collapse has several joint causes in the fitted model.")
    return "\n".join(lines)


def files(spec) -> list[Path]:
    """Files the explanation reads (for provenance)."""
    cfg = spec.explain
    return [(spec.path.parent / str(cfg["scenarios"])).resolve()] if cfg.get("scenarios") else []
