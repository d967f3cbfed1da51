"""``sd compare``: scenarios side by side, one figure and one table."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from sd._common import time_text
from sd.comparison import compare
from sd.errors import SdInputError
from sd.report.comparison import write_comparison


def test_juarez_scenarios_side_by_side(juarez_path, tmp_path):
    result = compare(juarez_path, ["baseline", "subsidy_kept", "no_training"],
                     variables=["Propane Share"], engine="pysd")
    assert set(write_comparison(result, tmp_path)) == {"comparison.csv", "comparison.md",
                                                       "comparison.png", "provenance.json"}
    table = pd.read_csv(tmp_path / "comparison.csv", index_col="scenario")
    assert list(table.index) == ["baseline", "subsidy_kept", "no_training"]
    final = table["Propane Share: final"]
    # Keeping the subsidy keeps kilns on propane; without training few ever switch.
    assert final["subsidy_kept"] > final["baseline"]
    assert table["Propane Share: max"]["no_training"] < table["Propane Share: max"]["baseline"]
    assert "| subsidy_kept |" in (tmp_path / "comparison.md").read_text()


def test_unknown_scenario_suggests(juarez_path, tmp_path):
    with pytest.raises(SdInputError, match="Did you mean 'subsidy_kept'"):
        compare(juarez_path, ["baseline", "subsidy_kep"])


def test_cli_compare_end_to_end(juarez_path, tmp_path):
    out = tmp_path / "cmp"
    proc = subprocess.run([sys.executable, "-m", "sd", "compare", str(juarez_path), "baseline",
                           "boycott_enforced", "--out", str(out), "--plot", "Propane Share",
                           "Emissions Index"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "boycott_enforced" in proc.stdout
    assert (out / "comparison.png").stat().st_size > 1000
    bad = subprocess.run([sys.executable, "-m", "sd", "compare", str(juarez_path), "baseline",
                          "--plot", "Propane Shar", "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Propane Share" in bad.stderr


def test_scenarios_ending_at_different_times_give_finite_metrics(juarez_path, tmp_path):
    """Each scenario is summarised over its own span (old main: NaN final and mean
    for the one that ends earlier); the time of the peak prints exactly."""
    (tmp_path / "short.toml").write_text('[short]\ndescription = "ends in 1995"\n'
                                         '[short.time]\nfinal_time = 1995\n')
    result = compare(juarez_path, ["baseline", f"short@{tmp_path / 'short.toml'}"],
                     variables=["Propane Share"])
    table = result.table
    assert table.notna().all().all(), table
    assert table.loc["short", "Propane Share: final"] == pytest.approx(
        float(result.runs["short"]["Propane Share"].sel(time=1995)))
    assert table.loc["short", "Propane Share: final"] != table.loc["baseline", "Propane Share: final"]
    peak = table.loc["baseline", "Propane Share: time of max"]
    from sd.report.comparison import markdown, text_table

    assert time_text(peak) in text_table(table) and f"| {time_text(peak)} |" in markdown(table, {})


def test_years_print_with_their_fraction():
    """Old main printed 1993.25 as "1993" (4 significant digits) in every table."""
    import pandas as pd

    from sd._common import number_text
    from sd.report.comparison import markdown, text_table

    table = pd.DataFrame({"S: time of max": [1993.25, 1990.0625], "S: max": [0.123456, 1993.25]},
                         index=pd.Index(["a", "b"], name="scenario"))
    text = text_table(table)
    assert "1993.25" in text and "1990.0625" in text and "0.1235" in text
    assert "| b | 1990.0625 | 1993.25 |" in markdown(table, {})
    assert number_text(1993.25) == "1993.25" and number_text(0.5) == "0.5"
