"""The `sd` command end to end, through subprocess, as a user runs it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

TEACUP = Path(__file__).parent / "data" / "teacup.mdl"


def sd(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sd", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_run_writes_csv_netcdf_plot_and_provenance(tmp_path):
    out = tmp_path / "out"
    r = sd("run", TEACUP, "--set", "Room Temperature=60", "--out", out,
           "--plot", "Teacup Temperature", "--engine", "pysd")
    assert r.returncode == 0, r.stderr
    frame = pd.read_csv(out / "results.csv")
    assert frame.columns[0] == "time"
    assert "Teacup Temperature" in frame.columns
    assert frame["Room Temperature"].iloc[0] == 60
    assert len(frame) == 241
    assert (out / "results.nc").stat().st_size > 0
    assert (out / "teacup_temperature.png").read_bytes()[:4] == b"\x89PNG"
    prov = json.loads((out / "run.json").read_text())
    assert prov["constants"] == {"Room Temperature": 60.0}
    assert len(prov["model_sha256"]) == 64 and "pysd" in prov["versions"]
    assert not list(out.glob(".*")), "temporary files left behind"


def test_info_lists_kinds_units_comments():
    r = sd("info", TEACUP)
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert "STOCKS (1)" in text and "FLOWS (1)" in text and "LOOKUPS (1)" in text
    assert "Teacup Temperature" in text and "[Degrees Fahrenheit]" in text
    assert "Temperature of the room." in text


@pytest.mark.parametrize("args, message", [
    (("run", TEACUP, "--set", "Room Temprature=3"), "Did you mean 'Room Temperature'"),
    (("run", TEACUP, "--set", "Room Temperature=warm"), "expected a number"),
    (("run", TEACUP, "--set", "Teacup Temperature=3"), "is a stock"),
    (("run", "missing.mdl"), "not found"),
    (("run", TEACUP, "--scenario", "nope"), "Unknown scenario 'nope'"),
    (("run", TEACUP, "--plot", "Teacup Temp"), "Did you mean 'Teacup Temperature'"),
    (("info",), "the following arguments are required"),
    (("frobnicate",), "invalid choice"),
])
def test_bad_input_exits_2_without_traceback(tmp_path, args, message):
    out = tmp_path / "out"
    r = sd(*args, "--out", out) if args[0] == "run" else sd(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists(), "nothing may be written on bad input"


def test_simulation_failure_exits_1_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    r = sd("run", TEACUP, "--set", "Characteristic Time=0", "--out", out, "--engine", "pysd")
    assert r.returncode == 1
    assert "Heat Loss to Room" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def test_check_passes_the_shipped_model_and_flags_problems(tmp_path):
    juarez = Path(__file__).resolve().parents[1] / "models" / "juarez_brick_kilns.mdl"
    r = sd("check", juarez)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 error(s), 0 warning(s) -> OK" in r.stdout
    bad = tmp_path / "teacup.mdl"
    bad.write_text(TEACUP.read_text().replace("\t~\tDegrees Fahrenheit\n\t~\tTemperature of the room.",
                                              "\t~\t\n\t~\tTemperature of the room."))
    r = sd("check", bad, "--no-sources")
    assert r.returncode == 1
    assert "  'Room Temperature' has no units" in r.stdout
    assert "teacup.mdl: DOCUMENTATION: 1 error(s), 0 warning(s)" in r.stdout
    assert r.stdout.rstrip().endswith("-> FAILED")


def test_debug_flag_is_accepted_after_any_subcommand():
    r = sd("info", TEACUP, "--debug")
    assert r.returncode == 0, r.stderr
    r = sd("run", "missing.mdl", "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr  # --debug shows the traceback
