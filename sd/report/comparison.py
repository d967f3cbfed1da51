"""Files of a scenario comparison (``sd compare``): table, Markdown, figure, provenance."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .._common import number_text, time_text
from ..comparison import Comparison, is_time
from ..plots import figure, plot_scenarios, save_figure
from .folder import write_json


def write_comparison(result: Comparison, folder: str | Path) -> list[str]:
    """Write ``comparison.csv``, ``comparison.md``, ``comparison.png`` and
    ``provenance.json`` into ``folder``; return the names."""
    folder = Path(folder)
    names = ["comparison.csv", "comparison.md", "comparison.png", "provenance.json"]
    result.table.to_csv(folder / "comparison.csv")
    (folder / "comparison.md").write_text(
        markdown(result.table, {s.name: s.description for s in result.scenarios}),
        encoding="utf-8")
    fig, axes = figure(len(result.variables), 1, size=(8, 3.2))
    for ax, var in zip(axes[:, 0], result.variables):
        plot_scenarios(result.runs, var, ax=ax)
    save_figure(fig, folder / "comparison.png")
    write_json(folder / "provenance.json", {**result.provenance, "files": names})
    return names


def cell(column: str, value: float) -> str:
    """A table value: times exactly (1993.25), other values to 4 significant digits."""
    return time_text(value) if is_time(column) else number_text(value)


def text_table(table: pd.DataFrame) -> str:
    """The table, one row per metric and one column per scenario, for a terminal."""
    shown = table.T.copy().astype(object)
    for column in table.columns:
        shown.loc[column] = [cell(column, v) for v in table[column]]
    return shown.to_string()


def markdown(table: pd.DataFrame, descriptions: dict[str, str]) -> str:
    """The table as Markdown, one block per variable, with scenario descriptions."""
    lines = ["# Scenario comparison", ""]
    for name, text in descriptions.items():
        lines.append(f"- **{name}**: {text or '(no description)'}")
    variables = list(dict.fromkeys(c.split(": ", 1)[0] for c in table.columns))
    for var in variables:
        cols = [c for c in table.columns if c.startswith(f"{var}: ")]
        lines += ["", f"## {var}", "", "| scenario | " + " | ".join(c.split(': ', 1)[1] for c in cols)
                  + " |", "|---|" + "---|" * len(cols)]
        for scen, row in table[cols].iterrows():
            lines.append(f"| {scen} | " + " | ".join(cell(c, row[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"
