"""``sd compare``: scenarios side by side, one figure and one table."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from sd.comparison import compare
from sd.errors import SdInputError


def test_juarez_scenarios_side_by_side(juarez_path, tmp_path):
    result = compare(juarez_path, ["baseline", "subsidy_kept", "no_training"],
                     variables=["Propane Share"], out=tmp_path, engine="pysd")
    assert {p.name for p in result.files} == {"comparison.csv", "comparison.md",
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
        compare(juarez_path, ["baseline", "subsidy_kep"], out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


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
