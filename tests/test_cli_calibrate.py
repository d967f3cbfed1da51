"""``sd calibrate`` end to end through a subprocess."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEACUP = Path(__file__).parent / "data" / "teacup.mdl"


def sd(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "sd", "calibrate", *map(str, args),
                           "--no-progress"], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture
def small_spec(tmp_path):
    (tmp_path / "obs.csv").write_text(
        "variable,kind,time,time_end,value,low,high,sigma,source,note\n"
        "Teacup Temperature,point,10,,107.4,,,1,synthetic,made up for the test\n"
        "Teacup Temperature,range,25,30,,60,90,,synthetic,interpreted\n")
    spec = tmp_path / "small.toml"
    spec.write_text(f'model = "{TEACUP}"\ndata = "obs.csv"\nseed = 4\n'
                    '[optimizer]\nmethod = "least_squares"\nstarts = 1\n'
                    '[confidence]\nprofile_points = 5\n'
                    '[parameters]\n"Characteristic Time" = {low = 2, high = 20, init = 10}\n')
    return spec


def test_calibrate_writes_every_output(small_spec, tmp_path):
    out = tmp_path / "out"
    proc = sd(small_spec, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "2/2 documented outcomes met" in proc.stdout
    fit = json.loads((out / "fit.json").read_text())
    p = fit["parameters"]["Characteristic Time"]
    assert {"value", "low", "high", "ci"} <= set(p) and p["ci"][0] <= p["value"] <= p["ci"][1]
    assert fit["success"] and all(t["satisfied"] for t in fit["targets"])
    assert {"observed", "simulated", "residual", "satisfied"} <= set(fit["targets"][0])
    prov = fit["provenance"]
    assert prov["seed"] == 4 and {"pysd", "scipy", "numpy"} <= set(prov["versions"])
    assert len(prov["sha256"]) == 3
    assert "Characteristic Time =" in (out / "calibrated.cin").read_text()
    assert (out / "fit.png").stat().st_size > 1000
    assert "## Documented outcomes" in (out / "report.md").read_text()
    assert not list(out.glob("*.part"))


def test_data_option_replaces_spec_data(small_spec, tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("variable,time,value,sigma\nTeacup Temperature,10,120,1\n")
    proc = sd(small_spec, "--data", other, "--out", tmp_path / "o2")
    assert proc.returncode == 0, proc.stderr
    fit = json.loads((tmp_path / "o2" / "fit.json").read_text())
    assert len(fit["targets"]) == 1 and fit["targets"][0]["observed"]["value"] == 120


@pytest.mark.parametrize("csv, match", [
    ("variable,time,value,sigma\nTeacup Temp,10,100,1\n", "Did you mean 'Teacup Temperature'"),
    ("variable,kind,time\nTeacup Temperature,blip,3\n", r"bad\.csv:2: unknown kind 'blip'"),
    ("variable,time,value,sigma\nTeacup Temperature,99,100,1\n", r"bad\.csv:2: time 99 is outside"),
])
def test_bad_data_exits_2_naming_the_row(small_spec, tmp_path, csv, match):
    (tmp_path / "bad.csv").write_text(csv)
    proc = sd(small_spec, "--data", tmp_path / "bad.csv", "--out", tmp_path / "o3")
    assert proc.returncode == 2
    assert re.search(match, proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_spec_exits_2(tmp_path):
    proc = sd(tmp_path / "nope.toml")
    assert proc.returncode == 2 and "Calibration spec not found" in proc.stderr


def test_juarez_main_job(tmp_path):
    """The documented Juarez outcomes are all met and the report explains the collapse."""
    proc = sd("calibration/juarez_propane.toml", "--out", tmp_path / "j")
    assert proc.returncode == 0, proc.stderr
    fit = json.loads((tmp_path / "j" / "fit.json").read_text())
    assert all(t["satisfied"] for t in fit["targets"]), fit["targets"]
    assert all(t["source"] for t in fit["targets"])
    why = fit["explanation"]
    assert why["driver"] is not None and why["peak"] > why["late"]
    assert why["driver"] in why["counterfactuals"]
    assert "## What drives the collapse" in (tmp_path / "j" / "report.md").read_text()


def test_ctrl_c_writes_best_so_far_and_a_checkpoint(tmp_path):
    import signal
    import time

    out = tmp_path / "int"
    # The Juarez spec, cut short (2 generations, a coarse profile, no counterfactuals).
    text = (ROOT / "calibration" / "juarez_propane.toml").read_text()
    text = text.split("[explain]")[0].replace("maxiter = 12", "maxiter = 2").replace(
        "profile_points = 21", "profile_points = 3").replace(
        "polish = true", "polish = false")
    for rel in ("../models/juarez_brick_kilns.mdl", "data/juarez_propane.csv"):
        text = text.replace(f'"{rel}"', f'"{(ROOT / "calibration" / rel).resolve()}"')
    # PySD, not the fast engine: slow enough that Ctrl-C lands mid-fit.
    (tmp_path / "short.toml").write_text('engine = "pysd"\n' + text)
    cmd = [sys.executable, "-m", "sd", "calibrate", str(tmp_path / "short.toml"),
           "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    start = time.time()
    while not (out / "checkpoint.json").exists() and time.time() - start < 60:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    fit = json.loads((out / "fit.json").read_text())
    assert fit["interrupted"] and not fit["success"]
    assert "interrupted" in (out / "report.md").read_text()
    saved = json.loads((out / "checkpoint.json").read_text())
    assert saved["best_payoff"] == pytest.approx(fit["payoff"], rel=1e-6, abs=1e-12)


def test_ctrl_c_in_the_profile_phase_writes_the_fit_and_resumes(small_spec, tmp_path,
                                                               monkeypatch, capsys):
    """Ctrl-C while the intervals are computed (most of the wall time) writes the
    best fit and says how to continue (old main: only checkpoint.json, no hint);
    --resume then finishes with the same fit."""
    from sd.calibration import uncertainty
    from sd.cli import main

    out = tmp_path / "prof"
    analyse = uncertainty.analyse

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(uncertainty, "analyse", interrupt)
    assert main(["calibrate", str(small_spec), "--out", str(out), "--no-progress"]) == 130
    assert "--resume" in capsys.readouterr().err
    fit = json.loads((out / "fit.json").read_text())
    assert fit["interrupted"] and fit["stage"] == "uncertainty"
    assert "--resume" in (out / "report.md").read_text()
    monkeypatch.setattr(uncertainty, "analyse", analyse)
    assert main(["calibrate", str(small_spec), "--out", str(out), "--no-progress",
                 "--resume"]) == 0
    done = json.loads((out / "fit.json").read_text())
    assert not done["interrupted"] and done["parameters"]["Characteristic Time"]["ci"]
    assert done["parameters"]["Characteristic Time"]["value"] == pytest.approx(
        fit["parameters"]["Characteristic Time"]["value"], rel=1e-12)
