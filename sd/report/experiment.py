"""Files of an experiment (``sd experiment``): the policy table, the verdicts, a figure.

``policy_table.csv`` (one row per case, policy, output and year),
``policy_table.md`` (the verdicts and one table per output and year),
``statements.csv``, ``report.md`` (how each set was obtained, the tables,
each statement per case with its clauses, mechanism and what would decide
it), ``policy_matrix.png``, ``members-<case>.csv`` (every member's metrics)
and ``experiment.json`` (everything, with provenance; the manifest).
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .._common import distinct_names
from ..experiments.result import (AGREES, DISAGREES, TOO_FEW, UNDECIDED, ExperimentResult,
                                  Verdict)
from ..experiments.spec import MEMBERS_FILE
from ..plots import figure, plot_policy_cells, save_figure
from .folder import write_json

MANIFEST = "experiment.json"


def write_experiment(result: ExperimentResult, folder: str | Path) -> list[str]:
    """Write the experiment's files into ``folder``; return their names (manifest last)."""
    folder = Path(folder)
    spec = result.spec
    members = distinct_names([c.name for c in spec.cases], MEMBERS_FILE,
                             f"{spec.path.name} [cases]")
    names = ["policy_table.csv", "policy_table.md", "statements.csv", "report.md",
             "policy_matrix.png", *[members[c] for c in result.members]]
    result.table.to_csv(folder / "policy_table.csv", index=False)
    (folder / "policy_table.md").write_text(policy_markdown(result), encoding="utf-8")
    statements_frame(result).to_csv(folder / "statements.csv", index=False)
    (folder / "report.md").write_text(report(result), encoding="utf-8")
    _figure(result, folder / "policy_matrix.png")
    for case, frame in result.members.items():
        frame.to_csv(folder / members[case], index=False)
    names.append(MANIFEST)
    write_json(folder / MANIFEST, _json(result, names))
    return names


# -- numbers as text -------------------------------------------------------------------
def _v(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    a = abs(x)
    return f"{x:.0f}" if a >= 100 else f"{x:.1f}" if a >= 10 else f"{x:.2f}"


def _share(s) -> str:
    if s is None:
        return "-"
    se = "" if not math.isfinite(s.se) or s.se == 0 else \
        " ± <0.01" if s.se < 0.005 else f" ± {s.se:.2f}"
    return f"{s.share:.2f}{se}"


def _cell(row) -> str:
    if not row["n"]:
        return "no set"
    text = f"{_v(row['median'])} [{_v(row['q05'])}, {_v(row['q95'])}]"
    if math.isfinite(row["p_beats"]):
        se = row["p_beats_se"]
        text += f"; P {row['p_beats']:.2f}" + (
            "" if not math.isfinite(se) or se == 0 else " ± <0.01" if se < 0.005 else
            f" ± {se:.2f}")
    return text


def verdict_text(v: Verdict) -> str:
    """``agrees (0.97 ± 0.02)``; a dagger when the prior ranges alone give the same answer."""
    if v.share is None:
        return v.verdict
    mark = "" if v.record_moves_it in (True, None) else " †"
    return f"{v.verdict} ({_share(v.share)}){mark}"


# -- tables -----------------------------------------------------------------------------
def policy_markdown(result: ExperimentResult) -> str:
    """The verdicts, then one table per output and year: cases as columns."""
    spec = result.spec
    lines = ["# Policy matrix", "", spec.description, "", *verdict_table(result), ""]
    lines += ["Each cell: median [5%, 95%] over the case's behaviour-consistent set; P: the "
              f"share of the set where the policy beats `{spec.baseline}` (by more than the "
              "output's margin), ± its Monte Carlo standard error (from the independent "
              "chains).", ""]
    t = result.table
    for out in spec.outputs:
        for name in spec.table_years:
            part = t[(t.output.str.lower() == out.variable.lower()) | (t.output == out.variable)]
            part = part[part.year_name == name]
            heads = [f"{c.label or c.name} ({c.years[name]:g})" for c in spec.cases]
            lines += [f"## {out.variable}, {name} year ({out.describe()})", "",
                      "| policy | " + " | ".join(heads) + " |",
                      "|---|" + "---|" * len(heads)]
            for policy in (spec.baseline, *spec.policies):
                cells = []
                for c in spec.cases:
                    row = part[(part.case == c.name) & (part.policy == policy)]
                    cells.append(_cell(row.iloc[0]) if len(row) else "-")
                lines.append(f"| {policy} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines) + "\n"


def verdict_table(result: ExperimentResult) -> list[str]:
    spec = result.spec
    by = {(v.case, v.statement): v for v in result.verdicts}
    heads = [c.label or c.name for c in spec.cases]
    lines = [f"## The paper's expectations: does the model agree? (share of the set, decided "
             f"at {spec.agree:.0%})", "",
             "| statement | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
    for st in spec.statements:
        lines.append(f"| {st.id} | " + " | ".join(verdict_text(by[(c.name, st.id)])
                                                   for c in spec.cases) + " |")
    lines += ["", f"agrees / disagrees: at least {spec.agree:.0%} of the set says so (the share "
              "of members where the statement holds, ± its standard error), beyond its Monte "
              "Carlo error; cannot decide: the documented outcomes leave it open; too few sets: "
              f"past {spec.agree:.0%}, but not by more than its Monte Carlo error (more prior "
              "draws in the case's calibration would tell). † the same verdict over draws from "
              "the prior ranges alone "
              "(within two standard errors): it rests on the ranges assumed in the model, not "
              "on the documented outcomes."]
    return lines


def statements_frame(result: ExperimentResult) -> pd.DataFrame:
    rows = []
    for v in result.verdicts:
        row = {"case": v.case, "statement": v.statement, "verdict": v.verdict,
               "share": _f(v.share, "share"), "stderr": _f(v.share, "se"),
               "n": v.share.n if v.share else 0, "groups": v.share.groups if v.share else 0,
               "prior_share": _f(v.prior, "share"), "prior_stderr": _f(v.prior, "se"),
               "record_moves_it": v.record_moves_it, "reason": v.reason}
        for i, c in enumerate(v.clauses, start=1):
            row.update({f"clause{i}": c.text, f"clause{i}_share": c.share.share,
                        f"clause{i}_difference_median": c.median,
                        f"clause{i}_difference_q05": c.q05, f"clause{i}_difference_q95": c.q95})
        rows.append(row)
    return pd.DataFrame(rows)


def _f(share, attr):
    return getattr(share, attr) if share is not None else float("nan")


# -- report.md ----------------------------------------------------------------------------
def report(result: ExperimentResult) -> str:
    spec = result.spec
    lines = [f"# Experiment: {spec.path.name}", "", spec.description, "",
             f"- {result.runs:,} policy runs in {result.seconds.get('runs', 0):.1f} s; the sets "
             f"in {result.seconds.get('calibration', 0):.1f} s "
             f"({sum(s.how == 'reused' for s in result.sets)} of {len(result.sets)} reused)",
             f"- a statement is decided when at least {spec.agree:.0%} of a case's set agrees; "
             f"{spec.prior_draws:,} prior draws per case show what the assumed ranges alone "
             "would say", "", "## The sets", "",
             "| case | calibration | the set | members (chains) | used | prior mass |",
             "|---|---|---|---|---|---|"]
    for s, c in zip(result.sets, spec.cases):
        how = f"reused `{s.folder}`" if s.how == "reused" else (
            f"calibrated now ({s.reason})" + (f"; kept in `{s.folder}`" if s.folder else ""))
        lines.append(f"| {c.label or c.name} | `{c.calibration.name}` | {how} | "
                     f"{s.members:,} ({s.groups}) | {s.used:,} | "
                     f"{100 * s.prior_mass:.3g}% ± {100 * s.prior_mass_se:.2g}% |")
    lines += ["", *verdict_table(result), ""]
    for st in spec.statements:
        lines += _statement(result, st)
    body = policy_markdown(result).split("\n", 4)[-1]   # without its title and description
    verdicts_end = body.find("Each cell:")
    lines += ["# The policy table", "", body[verdicts_end:]]
    return "\n".join(lines) + "\n"


def _statement(result: ExperimentResult, st) -> list[str]:
    lines = [f"## {st.id}: {st.claim}", "", f"Source: {st.source or 'not given'}."]
    if st.note:
        lines.append(f"Note: {st.note}")
    lines += ["", "Holds when " + "; and ".join(c.describe() for c in st.clauses) + ".", ""]
    for v in (v for v in result.verdicts if v.statement == st.id):
        label = result.spec.case(v.case).label or v.case
        if v.share is None:
            lines += [f"- **{label}**: {v.verdict}: {v.reason}.", ""]
            continue
        agree = (f"; all {v.share.groups} chains agree, the other side < {v.share.bound:.2f} "
                 "at 95%" if v.share.se == 0 else "")
        lines.append(f"- **{label}**: **{v.verdict}**, holds in {_share(v.share)} of the set "
                     f"({v.share.n:,} members, {v.share.groups} chains{agree}); over the prior "
                     f"ranges alone {_share(v.prior)}" + _moves(v))
        for c in v.clauses if len(v.clauses) > 1 else ():
            lines.append(f"  - {c.text}: holds in {_share(c.share)}")
        if v.verdict == DISAGREES or (v.verdict == TOO_FEW and v.share.share < 0.5):
            worst = min(v.clauses, key=lambda c: c.share.share)
            lines.append(f"  - why: the condition that fails most is \"{worst.text}\" "
                         f"(holds in {_share(worst.share)}; the difference is "
                         f"{worst.median:+.3f} at the median); the mechanism variables below "
                         "show what moves it")
        for c in v.clauses:
            lines.append(f"  - difference ({c.difference}): median {c.median:+.3f} "
                         f"[{c.q05:+.3f}, {c.q95:+.3f}] (5-95%)")
        for name in dict.fromkeys(m[0] for m in v.mechanism):
            lines.append(f"  - mechanism, {name}: " + "; ".join(
                f"{_v(med)} [{_v(lo)}, {_v(hi)}] under {cell} at {year:g}"
                for n, cell, year, med, lo, hi in v.mechanism if n == name))
        if v.verdict in (UNDECIDED, TOO_FEW) and v.deciding:
            lines.append("  - what would decide it: " + "; ".join(
                f"{n} (median {_v(a)} where it holds, {_v(b)} where not; KS {k:.2f})"
                for n, k, a, b in v.deciding))
        lines.append("")
    return lines


def _moves(v: Verdict) -> str:
    if v.record_moves_it is None:
        return "."
    if v.record_moves_it:
        return ": the documented outcomes move the answer."
    if v.verdict in (AGREES, DISAGREES, TOO_FEW):
        return (": the same without the documented outcomes, so the verdict rests on the "
                "ranges assumed in the model.")
    return ": the documented outcomes do not inform it."


# -- figure and manifest ------------------------------------------------------------------
def _figure(result: ExperimentResult, path: Path) -> None:
    spec = result.spec
    t = result.table
    policies = [spec.baseline, *spec.policies]
    fig, axes = figure(len(spec.outputs), len(spec.cases), size=(3.2, 2.8))
    for i, out in enumerate(spec.outputs):
        for j, case in enumerate(spec.cases):
            part = t[(t.case == case.name) & (t.output.str.lower() == out.variable.lower())]
            series = []
            for name in spec.table_years:
                rows = part[part.year_name == name].set_index("policy").reindex(policies)
                series.append((f"{name} {case.years[name]:g}", rows["median"], rows["q05"],
                               rows["q95"]))
            ax = plot_policy_cells(policies, series, ax=axes[i, j],
                                   title=f"{case.label or case.name}" if i == 0 else "",
                                   ylabel=out.variable if j == 0 else "")
            if i:
                ax.get_legend().remove()
    fig.suptitle("Policies over each case's behaviour-consistent set: median and 90% interval",
                 fontsize=9)
    save_figure(fig, path)


def _json(result: ExperimentResult, names) -> dict:
    verdicts = statements_frame(result).astype(object).where(
        statements_frame(result).notna(), None).to_dict(orient="records")
    return {"spec": str(result.spec.path), "runs": result.runs, "seconds": dict(result.seconds),
            "sets": [vars(s) for s in result.sets], "verdicts": verdicts,
            "mechanism": {f"{v.case}/{v.statement}": [list(m) for m in v.mechanism]
                          for v in result.verdicts if v.mechanism},
            "deciding": {f"{v.case}/{v.statement}": [list(d) for d in v.deciding]
                         for v in result.verdicts if v.deciding},
            "provenance": dict(result.provenance), "files": list(names)}
