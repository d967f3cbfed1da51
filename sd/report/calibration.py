"""Reports of a :class:`sd.calibration.FitResult`: JSON, Markdown, plot, .cin.

No fitting happens here; every function reads a finished result.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .._common import atomic_write_text, number_text, time_text
from ..plots import figure, plot_fit, save_figure
from ..scenarios import write_cin


def write_all(result, out: str | Path) -> list[Path]:
    """Write ``fit.json``, ``report.md``, ``fit.png`` and ``calibrated.cin`` to ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "fit.json", json.dumps(to_json(result), indent=2) + "\n")
    atomic_write_text(out / "report.md", markdown(result))
    unidentified = [name for name, known in result.identified.items() if not known]
    write_cin(out / "calibrated.cin", result.values,
              header=f"Fitted by sd calibrate {result.spec.path.name} "
                     f"(payoff {result.payoff:.6g}, {result.n_met}/{len(result.targets)} "
                     "documented outcomes met)" + (
                         "; REPRESENTATIVE values, not estimates, for the parameters the data "
                         "do not identify: " + ", ".join(unidentified) if unidentified else ""))
    plot(result, out / "fit.png")
    return [out / n for n in ("fit.json", "report.md", "fit.png", "calibrated.cin")]


def _num(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


def to_json(result) -> dict:
    """The machine-readable fit (``fit.json``)."""
    unc = result.uncertainty
    params = {}
    estimates = result.estimates
    for p in result.spec.parameters:
        ci = None if unc is None else unc.ci.get(p.name)
        # a value only where the data identify it (a profile that rises to the
        # threshold on both sides, or narrow against a bound); otherwise no point,
        # and the accepted range is the interval (a one-sided bound) or the bounds
        params[p.name] = {"identified": estimates[p.name] is not None,
                          "value": estimates[p.name],
                          "low": p.low, "high": p.high,
                          "init": p.init, "ci": None if ci is None else [ci[0], ci[1]],
                          "accepted_range": [p.low, p.high] if ci is None else [ci[0], ci[1]],
                          "ci_open_at": [] if unc is None else list(unc.open_ends.get(p.name, []))}
    targets = []
    for t in result.targets:
        tg = t["target"]
        targets.append({"variable": tg.variable, "kind": tg.kind, "time": tg.time,
                        "time_end": _num(tg.time_end), "observed": _observed(tg),
                        "simulated": t["simulated"], "residual": t["residual"],
                        "satisfied": t["satisfied"], "source": tg.source, "note": tg.note})
    corr = None if unc is None or unc.correlations is None else [
        [_num(v) for v in row] for row in unc.correlations]
    why = result.explanation
    return {
        "parameters": params, "payoff": result.payoff, "nfev": result.nfev,
        "success": result.success, "message": result.message,
        "interrupted": result.interrupted, "stage": result.stage, "targets": targets,
        "targets_met": result.n_met, "correlations": corr,
        "warnings": [] if unc is None else list(unc.warnings),
        "posterior": None if unc is None or unc.mcmc is None else {
            n: [float(v) for v in np.percentile(unc.mcmc[:, i], [2.5, 50, 97.5])]
            for i, n in enumerate(result.spec.names)},
        "failed_runs": list(result.failures),
        "explanation": None if why is None else {
            "variable": why.variable, "peak": why.peak, "peak_time": why.peak_time,
            "late": why.late, "driver": why.driver, "text": why.text,
            "counterfactuals": {c.name: {"late": _num(c.late), "removed": _num(c.removed),
                                         "constants": c.constants, "failed": c.failed or None}
                                for c in why.counterfactuals}},
        "approach": "point",
        "representative_point": {
            "note": "the optimiser's best point: an estimate only of the parameters marked "
                    "identified; one of many equally good points for the others",
            "values": dict(result.values)},
        "provenance": dict(result.provenance),
    }


def _observed(tg):
    if tg.kind == "point":
        return {"value": tg.value, "sigma": tg.sigma}
    if tg.kind == "peak_time":
        return {"low": tg.time, "high": tg.time_end}
    return {"low": tg.low, "high": tg.high}


def markdown(result) -> str:
    """A fit report in the spirit of lmfit's ``fit_report``."""
    spec, unc = result.spec, result.uncertainty
    lines = [f"# Calibration: {spec.path.name}", "",
             "## Fit statistics", "",
             f"- model: `{spec.model.name}` (sha256 {result.provenance.get('model_sha256', '')[:12]})",
             f"- data: `{spec.data.name}` ({len(result.targets)} documented outcomes)",
             f"- method: {spec.method}, seed {spec.seed}",
             f"- engine: {result.provenance.get('engine', '?')}"
             + (f" ({result.provenance['engine_note']})" if result.provenance.get("engine_note")
                else ""),
             f"- function evaluations: {result.nfev}",
             f"- payoff (sum of squared scaled residuals): {result.payoff:.6g}",
             f"- targets met: {result.n_met} of {len(result.targets)}",
             f"- status: {'success' if result.success else 'not converged'}: {result.message}"]
    if result.interrupted:
        lines.append(f"- **interrupted** (Ctrl-C, {result.stage} stage): values are the best fit "
                     "seen so far" + ("; no intervals were computed" if result.uncertainty is None
                                       else "") + ". Rerun with --resume to finish the job.")
    lines += ["", "## Parameters", "",
              _interval_kind(unc), "",
              "| parameter | value | bounds | 95% interval |", "|---|---|---|---|"]
    for p in spec.parameters:
        ci = None if unc is None else unc.ci.get(p.name)
        ends = [] if unc is None else unc.open_ends.get(p.name, [])
        text = "not identified (flat profile): any value in the bounds" if ci is None else \
            f"[{number_text(ci[0])}, {number_text(ci[1])}]" \
            + (f" (open at {', '.join(ends)} bound)" if ends else "")
        known = result.identified[p.name]
        if ci is not None and not known:
            text = "not identified (a one-sided bound): " + text
        value = number_text(result.values[p.name], 5) if known else "-"
        lines.append(f"| {p.name} | {value} | [{p.low:g}, {p.high:g}] | {text} |")
    lines += _correlations(spec, unc) + _posterior(spec, unc) + _targets(result) + _warnings(result)
    if result.explanation is not None:
        lines += ["", "## What drives the collapse", "", result.explanation.text]
    lines += ["", "## Provenance", "", "```json",
              json.dumps(dict(result.provenance), indent=2), "```", ""]
    return "\n".join(lines)


def _interval_kind(unc) -> str:
    """Which kind of 95% interval the table shows (``[confidence] profile``)."""
    if unc is not None and getattr(unc, "kind", "") == "conditional":
        return ("95% intervals: conditional profile, payoff rise of 3.84 (chi-square, 1 d.o.f.) "
                "with the other parameters held at the fit (too narrow when parameters are "
                "correlated).")
    runs = "" if unc is None or not getattr(unc, "profile_nfev", None) else \
        f" ({sum(unc.profile_nfev.values())} runs)"
    return ("95% intervals: profile likelihood: payoff rise of 3.84 (chi-square, 1 d.o.f.) with "
            f"the other parameters re-optimised at each point{runs}.")


def _correlations(spec, unc) -> list[str]:
    if unc is None or unc.correlations is None:
        return []
    lines = ["", "## Correlations (|r| > 0.5, from the Jacobian at the fit)", ""]
    names, c = spec.names, unc.correlations
    if np.all(np.isnan(c)):
        return lines + ["- undefined: fewer documented outcomes move the parameters than there "
                        "are parameters (J^T J is singular at the fit); see the profiles."]
    pairs = [(abs(c[i, j]), names[i], names[j], c[i, j]) for i in range(len(names))
             for j in range(i + 1, len(names)) if np.isfinite(c[i, j]) and abs(c[i, j]) > 0.5]
    lines += [f"- {a} / {b}: {r:+.3f}" for _, a, b, r in sorted(pairs, reverse=True)] or ["- none"]
    unidentified = [n for i, n in enumerate(names) if not np.isfinite(c[i, i])]
    if unidentified:
        lines.append(f"- not defined (no local effect on any residual): {', '.join(unidentified)}")
    return lines


def _posterior(spec, unc) -> list[str]:
    if unc is None or unc.mcmc is None:
        return []
    q = np.percentile(unc.mcmc, [2.5, 50, 97.5], axis=0)
    lines = ["", f"## Posterior (emcee, {len(unc.mcmc)} draws after burn-in, uniform priors "
             "on the bounds)", "", "| parameter | 2.5% | median | 97.5% |", "|---|---|---|---|"]
    return lines + [f"| {n} | {number_text(q[0, i])} | {number_text(q[1, i])} | "
                    f"{number_text(q[2, i])} |"
                    for i, n in enumerate(spec.names)]


def _targets(result) -> list[str]:
    lines = ["", "## Documented outcomes", "",
             "Points are met within 2 sigma; ranges and patterns when their residual is 0 "
             "(residual = distance outside the interval / tolerance).", "",
             "| # | target | simulated | residual | met | source |", "|---|---|---|---|---|---|"]
    for k, t in enumerate(result.targets, start=1):
        tg = t["target"]
        simulated = time_text(t["simulated"]) if tg.kind == "peak_time" \
            else number_text(t["simulated"])
        lines.append(f"| {k} | {tg.describe()} | {simulated} | {t['residual']:+.3f} | "
                     f"{'met' if t['satisfied'] else '**missed**'} | {tg.source} |")
    return lines


def _warnings(result) -> list[str]:
    notes = list(result.uncertainty.warnings) if result.uncertainty is not None else []
    if result.failures:
        notes.append(f"{len(result.failures)} run(s) produced NaN/inf and were penalised "
                     f"(never used as a fit); first: {result.failures[0]['error']} at "
                     f"{result.failures[0]['parameters']}")
    return (["", "## Warnings", ""] + [f"- {n}" for n in notes]) if notes else []


def plot(result, path: Path) -> None:
    """Trajectories of the fit against the documented outcomes (``fit.png``)."""
    names = list(result.trajectories.data_vars)
    fig, axes = figure(len(names), 1, size=(8, 3.2))
    for ax, name in zip(axes[:, 0], names):
        plot_fit(result, name, ax=ax)
    save_figure(fig, path, dpi=100)
