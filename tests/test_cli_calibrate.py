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


def test_juarez_main_job_reduced(tmp_path):
    """The README's main job on fewer prior draws and three of its variants: the files other
    tools read, with their columns, and a report that says what is decided and what is not."""
    text = (ROOT / "calibration" / "juarez_propane.toml").read_text()
    text = text.replace("draws = 100000", "draws = 20000\nmin_starts = 3\nsteps = 12\nthin = 4")
    text = re.sub(r"names = \[[^\]]*\]",
                  'names = ["no_fuel_shock", "no_boycott", "no_training"]', text)
    for rel in ("../models/juarez_brick_kilns.mdl", "data/juarez_propane.csv",
                "../models/juarez_scenarios.toml"):
        text = text.replace(f'"{rel}"', f'"{(ROOT / "calibration" / rel).resolve()}"')
    (tmp_path / "j.toml").write_text(text)
    proc = sd(tmp_path / "j.toml", "--out", tmp_path / "j")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "j"
    assert "meet all 13 documented outcomes" in proc.stdout
    header = (out / "accepted.csv").read_text().splitlines()[0].split(",")
    assert "Fuel Shock Size" in header and "Switch Fuel Shock" not in header and len(header) == 37
    assert (out / "conclusions.csv").read_text().startswith("question,share,stderr,n\n")
    targets = (out / "targets.csv").read_text().splitlines()
    assert targets[0] == "target,prior_pass_share,informative" and len(targets) == 14
    fit = json.loads((out / "fit.json").read_text())
    assert all(("identified" in p) for p in fit["parameters"].values())
    assert all(p["value"] is None for p in fit["parameters"].values() if not p["identified"])
    verdicts = {v["name"]: v["verdict"] for v in fit["variants"]}
    assert verdicts["no_boycott"] == "rejected" and verdicts["no_fuel_shock"] == "not rejected"
    report = (out / "report.md").read_text()
    for section in ("## What the documented outcomes decide", "## Structural hypotheses",
                    "## The documented outcomes: what each can tell", "## Numerics"):
        assert section in report
    assert all(t["source"] for t in fit["targets"])


def test_ctrl_c_writes_best_so_far_and_a_checkpoint(tmp_path):
    import signal
    import time

    out = tmp_path / "int"
    # A point fit of the Juarez model on PySD (slow enough that Ctrl-C lands mid-fit).
    (tmp_path / "kilns.csv").write_text("variable,time,value,sigma\nTotal Kilns,1995,350,25\n"
                                        "Total Kilns,1999,300,25\n")
    (tmp_path / "short.toml").write_text(
        f'engine = "pysd"\nmodel = "{ROOT / "models" / "juarez_brick_kilns.mdl"}"\n'
        'data = "kilns.csv"\nseed = 3\napproach = "point"\n[optimizer]\n'
        'method = "differential_evolution"\npopsize = 5\nmaxiter = 2\npolish = false\n'
        '[confidence]\nprofile_points = 3\n[parameters]\n'
        '"Kiln Closure Rate" = {low = 0.0, high = 0.08, init = 0.03}\n'
        '"Initial Total Kilns" = {low = 150, high = 800, init = 450}\n')
    cmd = [sys.executable, "-m", "sd", "calibrate", str(tmp_path / "short.toml"),
           "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    start = time.time()
    cp = out / "checkpoint" / "optimiser.json"
    while not cp.exists() and time.time() - start < 120:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    fit = json.loads((out / "fit.json").read_text())
    assert fit["interrupted"] and not fit["success"]
    assert "interrupted" in (out / "report.md").read_text()
    saved = json.loads(cp.read_text())["body"]
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
    # interrupted before the intervals, nothing is known to be identified: no value, only
    # the optimiser's point, labelled as such
    assert fit["parameters"]["Characteristic Time"]["value"] is None
    assert done["parameters"]["Characteristic Time"]["value"] == pytest.approx(
        fit["representative_point"]["values"]["Characteristic Time"], rel=1e-12)
