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


JUAREZ = Path(__file__).resolve().parents[1] / "models" / "juarez_brick_kilns.mdl"


@pytest.mark.parametrize("engine", ["auto", "fast", "pysd"])
@pytest.mark.parametrize("setting, variable", [
    ("Perception Time=0", "Perceived Profit Advantage"),   # SMOOTH over 0 years: 0/0
    ("Initial Total Kilns=0", "Emissions Index"),          # shares of 0 kilns: 0/0
])
def test_a_run_producing_nan_exits_1_on_every_engine(tmp_path, engine, setting, variable):
    """Old main: exit 0 and a results.csv full of NaN on the default engine."""
    out = tmp_path / "out"
    r = sd("run", JUAREZ, "--set", setting, "--out", out, "--engine", engine)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert f"'{variable}'" in r.stderr and "at time 1985" in r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists(), "a failed run writes nothing"


def test_results_carry_units_and_the_engine_on_the_default_engine(tmp_path):
    """Old main: results.nc had units only with --engine pysd."""
    import xarray as xr

    out = tmp_path / "out"
    r = sd("run", TEACUP, "--out", out)
    assert r.returncode == 0, r.stderr
    with xr.open_dataset(out / "results.nc") as ds:
        assert ds.attrs["engine"] == "fast"
        assert ds["Teacup Temperature"].attrs["units"] == "Degrees Fahrenheit"
        assert ds["Teacup Temperature"].attrs["comment"] == "Temperature of the tea."
    prov = json.loads((out / "run.json").read_text())
    assert prov["engine"] == "fast" and prov["files"][-1] == "run.json"


def test_scenario_name_at_file(tmp_path):
    """``--scenario NAME@FILE.toml``, advertised in --help, picks a scenario of a file
    (old main: 'Scenario file not found: NAME@FILE.toml')."""
    (tmp_path / "mine.toml").write_text('[hot]\nconstants = { "Room Temperature" = 90 }\n'
                                        '[cold]\nconstants = { "Room Temperature" = 10 }\n')
    out = tmp_path / "out"
    r = sd("run", TEACUP, "--scenario", f"cold@{tmp_path / 'mine.toml'}", "--out", out)
    assert r.returncode == 0, r.stderr
    assert pd.read_csv(out / "results.csv")["Room Temperature"].iloc[0] == 10
    r = sd("run", TEACUP, "--scenario", f"cool@{tmp_path / 'mine.toml'}", "--out", out)
    assert r.returncode == 2 and "Did you mean 'cold'" in r.stderr


def test_a_reused_out_folder_keeps_no_stale_plot(tmp_path):
    """Old main: the plot of an earlier run stayed beside the new results."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.png").write_bytes(b"the user's own file")
    assert sd("run", TEACUP, "--out", out, "--plot", "Heat Loss to Room").returncode == 0
    assert (out / "heat_loss_to_room.png").is_file()
    assert sd("run", TEACUP, "--out", out, "--plot", "Teacup Temperature").returncode == 0
    assert (out / "teacup_temperature.png").is_file()
    assert not (out / "heat_loss_to_room.png").exists()
    assert (out / "notes.png").read_bytes() == b"the user's own file"    # not sd's: kept


def test_plots_name_their_scenario_and_never_change_the_backend(tmp_path):
    """Old main: titles named only the variable, and plot helpers called
    matplotlib.use("Agg"), switching the user's backend."""
    script = f"""
import matplotlib
matplotlib.use("svg")
import sd
from sd.plots import plot_variable, plot_bands
from sd.report.run import write_run
ds = sd.run({str(TEACUP)!r}, sd.Scenario(name="warm room", constants={{"Room Temperature": 90}}))
write_run(ds, {str(tmp_path)!r}, ["Teacup Temperature"])
ax = plot_variable(ds, "Teacup Temperature")
many = sd.run_many({str(TEACUP)!r}, __import__("pandas").DataFrame({{"Room Temperature": [60, 80]}}))
plot_bands(many["Teacup Temperature"])
print(matplotlib.get_backend(), "|", ax.get_title())
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=300, env={k: v for k, v in __import__("os").environ.items()
                                         if k != "MPLBACKEND"})
    assert r.returncode == 0, r.stderr
    backend, title = r.stdout.strip().split(" | ")
    assert backend == "svg"
    assert "warm room" in title
    assert (tmp_path / "teacup_temperature.png").read_bytes()[:4] == b"\x89PNG"
