"""Reports of a set-valued calibration (:class:`sd.calibration.SetResult`).

Files other tools read (names and columns fixed):

- ``accepted.csv``: one row per member of the behaviour-consistent set, one
  column per uncertain input (Vensim names); members of one chain start are
  correlated: their group is in ``fit.json`` (``set.groups``);
- ``conclusions.csv``: ``question,share,stderr,n``: the share of members in
  which each statement holds, its Monte Carlo standard error, the members;
- ``targets.csv``: ``target,prior_pass_share,informative``;
- ``fit.json``: everything, with an ``identified`` flag per parameter and a
  value only for identified ones;

and for people: ``report.md``, ``fit.png`` (the set's trajectories against
the documented outcomes), ``marginals.png``, ``pairs.png`` and
``representative.cin`` (one member of the set for Vensim, labelled as such).
No computation happens here.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from .._common import atomic_write_text, number_text, time_text
from ..plots import figure, plot_intervals, plot_pair, plot_set_variable, save_figure
from ..calibration.marginals import MIN_GROUPS
from ..scenarios import write_cin

FILES = ("accepted.csv", "conclusions.csv", "targets.csv", "fit.json", "report.md")


def write_set(result, out: str | Path) -> list[str]:
    """Write every file of ``result`` into ``out`` (a scratch folder of
    :func:`sd.report.folder.staged`); return the names written."""
    out = Path(out)
    names = []

    def text(name, content):
        atomic_write_text(out / name, content)
        names.append(name)

    text("accepted.csv", result.values.to_csv(index=False, float_format="%.10g"))
    text("conclusions.csv", _csv(["question", "share", "stderr", "n"], [
        [c.question, _f(c.share.share), _f(c.share.se), c.share.n] for c in result.conclusions]))
    text("targets.csv", _csv(["target", "prior_pass_share", "informative"], [
        [t.describe(), _f(result.screening.met_share[j]),
         str(bool(result.screening.informative[j])).lower()]
        for j, t in enumerate(result.rule.targets)]))
    text("report.md", markdown(result))
    if result.found:
        rep = result.values.iloc[result.representative].to_dict()
        write_cin(out / "representative.cin", {**rep, **result.inputs.fixed},
                  header="ONE REPRESENTATIVE MEMBER of the behaviour-consistent set of "
                         f"{result.spec.path.name} (the member nearest the set's medians), "
                         "not an estimate: the documented outcomes do not pick one parameter "
                         "set. See report.md.")
        names.append("representative.cin")
        names += _plots(result, out)
    names.append("fit.json")
    atomic_write_text(out / "fit.json", json.dumps(to_json(result, names), indent=1) + "\n")
    return names


def _csv(header, rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _f(v) -> str:
    return "" if v is None or not math.isfinite(float(v)) else f"{float(v):.6g}"


def _num(v):
    return None if v is None or not math.isfinite(float(v)) else float(v)


# -- fit.json -------------------------------------------------------------------------------
def to_json(result, files=()) -> dict:
    """The machine-readable result (``fit.json``)."""
    scr, o = result.screening, result.spec.set
    params = {m.name: {"identified": m.identified, "value": _num(m.value) if m.identified
                       else None, "low": m.low, "high": m.high, "range_source": m.source,
                       "accepted_90": [m.q05, m.q95], "accepted_range": [m.min, m.max],
                       "median": m.median if m.identified else None,
                       "sd_ratio": m.sd_ratio, "width": m.width}
              for m in result.marginals}
    if not result.found:
        params = {i.name: {"identified": False, "value": None, "low": i.low, "high": i.high,
                           "range_source": i.source} for i in result.inputs.inputs}
    return {
        "approach": "set",
        "parameters": params,
        "held_constants": dict(result.inputs.held),
        "rule": {"point_sigmas": result.rule.point_sigmas, "points": result.rule.points,
                 "point_limit_sigmas": result.rule.point_limit,
                 "interval_tolerance": result.rule.interval_tolerance,
                 "text": result.rule.describe()},
        "screening": {"draws": scr.draws, "members": int(len(scr.accepted)),
                      "failed_runs": scr.failed},
        "set": {"found": result.found, "prior_mass": _num(result.mass.share),
                "prior_mass_se": _num(result.mass.se), "members": int(len(result.members)),
                "independent_groups": int(len(np.unique(result.groups))),
                "chain_acceptance": _num(result.acceptance),
                "groups": [int(g) for g in result.groups], "fixed": dict(result.inputs.fixed),
                "representative": int(result.representative),
                "method": "sequential search" if result.search is not None else
                "Markov chains from the screening's members"},
        "targets": [_target_json(result, j, t) for j, t in enumerate(result.rule.targets)],
        "conclusions": [{"question": c.question, "kind": c.kind, "share": c.share.share,
                         "stderr": _num(c.share.se), "n": c.share.n,
                         "groups": c.share.groups, "verdict": c.verdict(o.agree),
                         "deciding": [{"input": n, "ks": _num(d), "median_where_holds": a,
                                       "median_where_not": b} for n, d, a, b in c.deciding]}
                        for c in result.conclusions],
        "attribution": [{"cause": cause, "mean_effect": s.share, "stderr": _num(s.se),
                         "mean_share_of_total": None if f is None else _num(f.share),
                         "share_stderr": None if f is None else _num(f.se)}
                        for cause, s, f in result.shapley],
        "data_value": {q: [{"observation": c.observation, "bits": c.gain, "settle": c.settle}
                           for c in cands] for q, cands in result.data_value.items()},
        "variants": [{"name": v.name, "verdict": v.verdict, "bayes_factor": _num(v.ratio),
                      "bayes_factor_95": [_num(b) for b in v.ratio_bounds],
                      "prior_mass": v.search.mass, "found": v.search.found,
                      "constants": v.constants} for v in result.variants],
        "numerics": _numerics_json(result),
        "warnings": list(result.notes),
        "runs": result.runs, "seconds": dict(result.seconds), "resumed": result.resumed,
        "files": sorted(set(files)),
        "provenance": dict(result.provenance),
    }


def _target_json(result, j, t) -> dict:
    scr = result.screening
    return {"target": t.describe(), "variable": t.variable, "kind": t.kind, "source": t.source,
            "note": t.note, "basis": t.basis, "prior_pass_share": float(scr.met_share[j]),
            "informative": bool(scr.informative[j]),
            "others_met_share": float(scr.others_share[j]),
            "responds_to": [{"input": n, "spearman": _num(r), "ks": _num(k)}
                            for n, r, k in scr.responds(j, result.inputs.names)]}


def _numerics_json(result) -> dict:
    h = result.halving
    return {"time_step_halving": None if h is None else {
        "members": h.members, "time_step": h.time_step, "left_set": h.left_set,
        "changed": h.changed},
        "outflows": [{"flow": o.flow, "stock": o.stock, "fraction_per_step": o.fraction}
                     for o in result.outflows]}


# -- report.md -------------------------------------------------------------------------------
def markdown(result) -> str:
    """``report.md``: what the documented outcomes decide, what not, and why."""
    spec = result.spec
    lines = [f"# Set-valued calibration: {spec.path.name}", ""]
    lines += _header(result) + _summary(result) + _decide(result) + _undecided(result)
    lines += _attribution(result)
    lines += _targets(result) + _inputs(result) + _variants(result) + _numerics(result)
    lines += _warnings(result)
    lines += ["", "## Provenance", "", "```json", json.dumps(dict(result.provenance), indent=1),
              "```", ""]
    return "\n".join(lines)


def _header(result) -> list[str]:
    spec, scr, m = result.spec, result.screening, result.mass
    prov = result.provenance
    n_groups = len(np.unique(result.groups))
    lines = [f"- model: `{spec.model.name}` (sha256 {prov.get('model_sha256', '')[:12]}), "
             f"engine {prov.get('engine', '?')}",
             f"- documented outcomes: {len(result.rule.targets)} from `{spec.data.name}` "
             f"({_bases(result.rule.targets)}); {result.rule.describe()}",
             f"- uncertain inputs: {len(result.inputs.inputs)} constants, uniform over their "
             "ranges in the .mdl's units fields" + (" (some narrowed or added by the spec)"
                                                   if any(i.source != "mdl" for i in
                                                          result.inputs.inputs) else "")
             + f"; {len(result.inputs.held)} other constants held at their values",
             f"- seed {spec.seed}; {result.runs:,} runs in {sum(result.seconds.values()):.1f} s"
             + (" (resumed from a checkpoint)" if result.resumed else ""), ""]
    if not result.found:
        return lines + [
            "**No parameter set within the stated ranges was found that meets every "
            f"documented outcome** ({scr.draws:,} prior draws" + (
                f" and a sequential search down to a prior mass of {result.search.mass:.2g}"
                if result.search is not None else "") + "). Either the model's structure "
            "or a range is wrong, or an interpretation of an outcome is too strict: the "
            "per-outcome pass shares below say which outcomes are hard to meet.", ""]
    how = (f"Of {scr.draws:,} draws from the prior ranges, {len(scr.accepted)} meet every "
           "documented outcome" if result.search is None else
           f"A sequential search ({len(result.search.levels)} waves) estimates")
    lines += [f"{how}: the behaviour-consistent set holds **{_pct(m.share)} ± {_pct(m.se)}** "
              f"of the prior. Markov chains from {n_groups} independent members populate it "
              f"with {len(result.members):,} members (proposal acceptance "
              f"{result.acceptance:.2f}); every conclusion below is the share of members in "
              "which it holds, with a standard error from the independent chain starts.", ""]
    return lines


def _summary(result) -> list[str]:
    """'In short': what is decided, what is not and what would decide it, in sentences."""
    if not result.found:
        return []
    agree = result.spec.set.agree
    lines = ["## In short", ""]
    for c in result.conclusions:
        v = c.verdict(agree)
        if v == "holds":
            lines.append(f"- **Decided, holds** ({_share_text(c.share)}): {c.question}.")
        elif v == "does not hold":
            lines.append(f"- **Decided, does not hold** ({_share_text(c.share)}): {c.question}.")
    for c in result.conclusions:
        if c.verdict(agree) == "too few sets":
            lines.append(f"- **Too few independent sets to tell** ({_share_text(c.share)}): "
                         f"{c.question}.")
    for c in result.conclusions:
        if c.verdict(agree) != "undecided":
            continue
        text = f"- **Not decided by the data** ({_share_text(c.share)}): {c.question}."
        if c.deciding:
            n, _, a, b = c.deciding[0]
            text += (f" It turns mostly on the assumption {n} (median {number_text(a)} where it "
                     f"holds, {number_text(b)} where not).")
        cands = result.data_value.get(c.question, [])
        if cands:
            text += (f" The most informative observation: {cands[0].observation} "
                     f"({cands[0].gain:.2f} of {cands[0].entropy:.2f} bits).")
        lines.append(text)
    gone = [v.name for v in result.variants if v.verdict == "rejected"]
    same = [v.name for v in result.variants if v.verdict == "not rejected"]
    if gone:
        lines.append(f"- Structural variants the outcomes reject: {', '.join(gone)}.")
    if same:
        lines.append("- Variants the outcomes cannot tell apart from the model as written: "
                     + ", ".join(same) + ".")
    ident = [m.name for m in result.marginals if m.identified]
    few = len(np.unique(result.groups)) < MIN_GROUPS
    lines.append("- Identified inputs: " + (", ".join(ident) if ident else
                                            "none (too few independent members to tell)" if few
                                            else "none (the outcomes constrain combinations)")
                 + ".")
    h = result.halving
    if h is not None:
        lines.append(f"- Halving the TIME STEP changes {h.any_changed:.1%} of the answers and "
                     f"moves {h.left_set:.1%} of the checked members out of the set.")
    return lines + [""]


def _pct(p: float) -> str:
    if not math.isfinite(p):
        return "n/a"
    return f"{100 * p:.3g}%"


def _share_text(s) -> str:
    if s.se > 0:
        return f"{s.share:.2f} ± {s.se:.2f}"
    return f"{s.share:.2f} (all {s.groups} chains agree; other side < {s.bound:.2f} at 95%)"


def _decide(result) -> list[str]:
    if not result.conclusions:
        return []
    agree = result.spec.set.agree
    lines = ["## What the documented outcomes decide", "",
             f"A question is decided when at least {agree:.0%} of the behaviour-consistent "
             "sets agree, beyond the Monte Carlo error (the 95% bound on the disagreeing share "
             f"is at most {1 - agree:.0%}); otherwise the data do not decide it, and no member "
             "is picked to answer it.", "",
             "| question | share of sets where it holds | verdict |", "|---|---|---|"]
    for c in result.conclusions:
        v = c.verdict(agree)
        text = {"holds": "**holds**", "does not hold": "**does not hold**",
                "undecided": "undecided: the data do not decide it",
                "too few sets": "too few independent sets to tell (add prior draws)"}[v]
        lines.append(f"| {c.question} | {_share_text(c.share)} | {text} |")
    return lines + [""]


def _undecided(result) -> list[str]:
    agree = result.spec.set.agree
    open_ = [c for c in result.conclusions if c.verdict(agree) == "undecided"]
    if not open_:
        return []
    lines = ["## What they cannot decide: which assumptions and which data would", ""]
    for c in open_:
        lines.append(f"**{c.question}** (share {_share_text(c.share)})")
        lines.append("")
        if c.deciding:
            parts = [f"{n} (median {number_text(a)} where it holds, {number_text(b)} where "
                     f"not; KS distance {d:.2f})" for n, d, a, b in c.deciding]
            lines.append("- assumptions that decide it: " + "; ".join(parts) + ".")
        cands = result.data_value.get(c.question, [])
        if cands:
            lines.append(f"- data that would settle it (the question's uncertainty now: "
                         f"{cands[0].entropy:.2f} bits; an observation known to within its "
                         "quartile over the set):")
            lines.append("")
            lines.append("  | observation | expected information (bits) | chance it settles "
                         "the question |")
            lines.append("  |---|---|---|")
            for k in cands:
                lines.append(f"  | {k.observation} | {k.gain:.2f} | {k.settle:.0%} |")
        lines.append("")
    return lines


def _attribution(result) -> list[str]:
    if not result.shapley:
        return []
    q = result.questions
    lines = ["## Attribution over the causes (Shapley values)", "",
             f"Each scenario's effect, averaged over every order of applying "
             f"{', '.join(q.causes)} (full factorial, {2 ** len(q.causes)} runs per member), on "
             f"the mean of {q.variable} over {time_text(q.window[0])}-"
             f"{time_text(q.window[1])}, and its share of the effect of applying them all.", "",
             "| cause | mean effect ± s.e. | mean share of the total ± s.e. |", "|---|---|---|"]
    for cause, s, f in result.shapley:
        share = "n/a" if f is None else f"{f.share:.2f} ± {f.se:.2f}"
        lines.append(f"| {cause} | {s.share:+.3f} ± {s.se:.3f} | {share} |")
    return lines + [""]


def _bases(targets) -> str:
    """``2 quoted, 7 interpreted``: how the outcomes stand in their sources (Target.basis)."""
    from collections import Counter

    counts = Counter(t.basis for t in targets)
    return ", ".join(f"{n} {b}" for b, n in counts.items())


def _targets(result) -> list[str]:
    scr = result.screening
    names = result.inputs.names
    lines = ["## The documented outcomes: what each can tell (prior screening)", "",
             f"{scr.draws:,} independent draws of every uncertain input. 'Alone' is the share "
             "of draws meeting every *other* outcome: close to the share meeting all, the "
             "outcome adds little given the rest. An outcome met by at least "
             f"{result.spec.set.informative_share:.0%} of draws is flagged uninformative. "
             "'Responds to': rank correlation r of the simulated value with an input, and "
             "the Kolmogorov-Smirnov distance between the inputs of draws that meet it and of "
             "those that do not.", "",
             "| # | outcome | prior pass share | informative | all others met | responds to "
             "| source | basis |", "|---|---|---|---|---|---|---|---|"]
    for j, t in enumerate(result.rule.targets):
        resp = "; ".join(f"{n} (r {r:+.2f}, KS {k:.2f})" for n, r, k in scr.responds(j, names,
                                                                                    3)) or "none"
        lines.append(f"| {j + 1} | {t.describe()} | {scr.met_share[j]:.3f} | "
                     f"{'yes' if scr.informative[j] else '**no**'} | {scr.others_share[j]:.5f} "
                     f"| {resp} | {t.source} | {t.basis} |")
    lines.append(f"| | **all** | **{scr.mass.share:.5f}** ± {scr.mass.se:.5f} | | | | | |")
    read = [(j + 1, t) for j, t in enumerate(result.rule.targets) if t.basis != "quoted"]
    if read:
        lines += ["", "How each outcome not simply quoted was read from its source (the data "
                  "file's note; a different reading is a different outcome):", ""]
        lines += [f"- #{j} ({t.basis}): {t.note or 'no note: the data file does not say'}"
                  for j, t in read]
    return lines + [""]


def _inputs(result) -> list[str]:
    if not result.marginals:
        return []
    width = result.spec.set.identified_width
    ident = [m for m in result.marginals if m.identified]
    groups = len(np.unique(result.groups))
    lines = ["## The uncertain inputs over the set", "",
             f"An input is identified when its 90% interval over the set spans at most "
             f"{width:.0%} of its prior range; only then is a value given. Shrinkage: standard "
             "deviation over the set / over the prior (1: the outcomes say nothing about it).",
             "",
             ("Identified: " + ", ".join(m.name for m in ident) + "." if ident else
              f"Too few independent members ({groups} chain starts, fewer than "
              f"{MIN_GROUPS}) to call any input identified." if groups < MIN_GROUPS else
              "**No input is identified**: the documented outcomes constrain combinations of "
              "inputs, not any single value; each is reported with its accepted range."), "",
             "| input | prior range | accepted 90% | accepted range | shrinkage | identified |",
             "|---|---|---|---|---|---|"]
    for m in sorted(result.marginals, key=lambda m: m.sd_ratio):
        value = f"yes: {number_text(m.median)}" if m.identified else "no"
        lines.append(f"| {m.name} | [{number_text(m.low)}, {number_text(m.high)}] | "
                     f"[{number_text(m.q05)}, {number_text(m.q95)}] | [{number_text(m.min)}, "
                     f"{number_text(m.max)}] | {m.sd_ratio:.2f} | {value} |")
    return lines + ["", "Figures: `marginals.png` (each input over the set against its prior), "
                    "`pairs.png` (the most constrained inputs in pairs), `fit.png` (the set's "
                    "trajectories against the documented outcomes).", ""]


def _variants(result) -> list[str]:
    if not result.variants:
        return []
    targets = result.rule.targets
    lines = ["## Structural hypotheses", "",
             "Each variant switches a mechanism off; its consistent set is searched over the "
             "same inputs and ranges. The Bayes factor against the model as written is the "
             "ratio of the prior masses of the two sets (uniform priors, outcomes met or "
             "not). Rejected: no set found, or the factor is below 1/20 at its 95% upper "
             "bound; disfavoured: below 1/3.", "",
             "| variant | prior mass of its set | Bayes factor [95%] | verdict | outcomes it "
             "meets least (variant / model) |", "|---|---|---|---|---|"]
    for v in result.variants:
        s = v.search
        lo, hi = v.ratio_bounds
        if s.found:
            mass, bf = _pct(s.mass), f"{v.ratio:.2g} [{lo:.2g}, {hi:.2g}]"
        else:
            mass = "none found"
            bf = f"< {hi:.2g}" if hi < 1 else "n/a"
        why = "; ".join(f"#{j + 1} {targets[j].variable} {a:.2f} / {b:.2f}"
                        for j, a, b in v.why) or "-"
        if not s.found:
            worst = int(np.argmax(s.closest))
            why += (f"; the closest run misses #{worst + 1} ({targets[worst].describe()}) by "
                    f"{s.closest[worst]:.2g} of its tolerance")
        lines.append(f"| {v.name} | {mass} | {bf} | **{v.verdict}** | {why} |")
    same = [v.name for v in result.variants if v.verdict == "not rejected"]
    gone = [v.name for v in result.variants if v.verdict == "rejected"]
    lines.append("")
    if gone:
        lines.append(f"The documented outcomes reject: {', '.join(gone)}.")
    if same:
        lines.append("They cannot tell apart the model as written and: " + ", ".join(same) + ".")
    return lines + [""]


def _numerics(result) -> list[str]:
    h = result.halving
    lines = ["## Numerics", ""]
    if h is not None:
        lines.append(f"- TIME STEP halving ({h.members} members rerun at TIME STEP "
                     f"{h.time_step:g}): {h.left_set:.1%} leave the set; "
                     + (f"{h.any_changed:.1%} of the conclusions' answers change"
                        + (" (largest: " + max(h.changed, key=h.changed.get) +
                           f", {max(h.changed.values()):.1%})" if h.changed and
                           max(h.changed.values()) > 0 else "") if h.changed else
                        "no conclusions to compare") + ".")
    fast = [o for o in result.outflows if o.fraction > 0.5]
    if result.outflows:
        top = result.outflows[0]
        lines.append(f"- Outflows: the fastest, {top.flow} (out of {top.stock}), removes at most "
                     f"{top.fraction:.3f} of its stock in one TIME STEP over the prior draws "
                     "and members checked (warning above 0.5).")
    for o in fast:
        lines.append(f"- **warning**: {o.flow} can remove {o.fraction:.2f} of {o.stock} in one "
                     "TIME STEP inside the ranges: Euler integration is inaccurate there; "
                     "reduce TIME STEP.")
    return lines + [""]


def _warnings(result) -> list[str]:
    return (["## Warnings", ""] + [f"- {n}" for n in result.notes] + [""]) if result.notes \
        else []


# -- figures ----------------------------------------------------------------------------------
def _plots(result, out: Path) -> list[str]:
    names = []
    paths, times = result.outcomes.paths, result.outcomes.times
    variables = [v for v in dict.fromkeys(t.variable for t in result.rule.targets) if v in paths]
    units = dict(result.units)
    fig, axes = figure(len(variables), 1, size=(8, 2.6), layout=None)
    fig.subplots_adjust(left=0.1, right=0.97, top=0.97, bottom=0.04, hspace=0.45)
    for ax, v in zip(axes[:, 0], variables):
        plot_set_variable(times, paths[v], v, [t for t in result.rule.targets if t.variable == v],
                          units.get(v, ""), ax=ax)
    save_figure(fig, out / "fit.png", dpi=90)
    names.append("fit.png")
    ms = sorted(result.marginals, key=lambda m: m.sd_ratio)
    U = (result.values[[m.name for m in ms]].to_numpy() - [m.low for m in ms]) / \
        np.array([m.high - m.low for m in ms])
    fig, axes = figure(1, 1, size=(7.5, 0.2 * len(ms) + 1.2))
    plot_intervals([m.name for m in ms], np.quantile(U, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0).T,
                   ax=axes[0, 0], marks={i for i, m in enumerate(ms) if m.identified})
    save_figure(fig, out / "marginals.png", dpi=90)
    names.append("marginals.png")
    X = result.values[[m.name for m in ms]].to_numpy()
    top = list(range(min(5, len(ms))))        # the most constrained inputs
    if len(top) >= 2:
        fig, axes = figure(len(top) - 1, len(top) - 1, size=(2.3, 2.3), layout=None)
        fig.subplots_adjust(left=0.12, bottom=0.12, right=0.98, top=0.98, wspace=0.35,
                            hspace=0.35)
        for r in range(1, len(top)):
            for c in range(len(top) - 1):
                ax = axes[r - 1, c]
                if c >= r:
                    ax.set_axis_off()
                    continue
                i, j = top[c], top[r]
                plot_pair(X[:, i], X[:, j], ms[i].name, ms[j].name,
                          ((ms[i].low, ms[i].high), (ms[j].low, ms[j].high)), ax=ax)
        save_figure(fig, out / "pairs.png", dpi=80)
        names.append("pairs.png")
    return names
