"""Kill a calibration anywhere, resume it, get the same result; checkpoints are validated.

The kill test runs ``sd calibrate`` on a reduced Juarez spec in a subprocess,
kills it with SIGKILL at a random moment after each phase has started
(screening, chains, members' runs, variants, numerics), resumes it each time
with ``--resume``, and compares the files with an uninterrupted run of the
same seed: they must be identical (every random number is a function of the
seed and the piece of work, and the engine's runs do not depend on how they
are batched).
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sd.calibration import calibrate
from sd.errors import SdInputError

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"

#: Checkpoint pieces that start each phase, in order.
PHASES = ("screen-", "chain-", "members-", "variant", "halving-")


def juarez_spec(folder: Path) -> Path:
    models, data = ROOT / "models", ROOT / "calibration" / "data"
    text = f'''model = "{models / 'juarez_brick_kilns.mdl'}"
data = "{data / 'juarez_propane.csv'}"
seed = 5
[uncertain]
exclude = ["Switch *", "Policy *", "Boycott Enforcement", "Incentive End Year"]
[set]
draws = 8000
chunk = 1000
min_starts = 2
replicas = 2
steps = 6
thin = 2
level_draws = 200
check_members = 12
[variants]
scenarios = "{models / 'juarez_scenarios.toml'}"
names = ["no_fuel_shock", "no_boycott"]
[explain]
variable = "Propane Share"
window = [1996, 2000]
scenarios = "{models / 'juarez_scenarios.toml'}"
causes = ["no_fuel_shock", "programme_never_ends"]
[[explain.mediator]]
variable = "Cooperation"
cause = "no_fuel_shock"
'''
    path = folder / "juarez_small.toml"
    path.write_text(text)
    return path


def _cmd(spec: Path, out: Path, *extra) -> list[str]:
    return [sys.executable, "-m", "sd", "calibrate", str(spec), "--out", str(out),
            "--no-progress", *extra]


def _pieces(out: Path) -> list[str]:
    try:
        return list(json.loads((out / "checkpoint" / "manifest.json").read_text())["pieces"])
    except (OSError, ValueError, KeyError):
        return []


def _child(argv) -> None:
    """A forked ``sd calibrate`` (the parent has imported sd and compiled the model,
    so a child starts in a fraction of a second)."""
    from sd.cli import main

    sys.stdout = open(os.devnull, "w")
    os._exit(main(argv))


def _run(argv, kill_after=None, rng=None, before=()) -> int:
    """Run ``sd calibrate argv`` in a forked process; with ``kill_after`` (a piece
    prefix), SIGKILL it at a random moment after such a piece is first written.
    Returns the exit code (-9 when killed)."""
    import multiprocessing

    out = Path(argv[argv.index("--out") + 1])
    proc = multiprocessing.get_context("fork").Process(target=_child, args=(argv,))
    proc.start()
    deadline = time.time() + 240
    while kill_after and proc.is_alive() and time.time() < deadline:
        if {p for p in _pieces(out) if p.startswith(kill_after)} - set(before):
            time.sleep(rng.uniform(0.0, 0.2))
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.join(240)
    return proc.exitcode


def test_killed_in_every_phase_and_resumed_equals_uninterrupted(tmp_path):
    from sd.model import load
    from sd.simulation import prepare

    prepare(load(ROOT / "models" / "juarez_brick_kilns.mdl"))   # compiled once, before forking
    spec = juarez_spec(tmp_path)
    args = _cmd(spec, tmp_path / "ref")[3:]
    assert _run(args) == 0
    out = tmp_path / "killed"
    args = _cmd(spec, out)[3:]
    rng = random.Random(20161)
    killed = []
    for i, phase in enumerate(PHASES):
        killed.append(_run(args + (["--resume"] if i else []), phase, rng, _pieces(out)))
    assert killed.count(-signal.SIGKILL) >= 4, killed     # the phases really were cut short
    assert _run(args + ["--resume"]) == 0
    for name in ("accepted.csv", "conclusions.csv", "targets.csv"):
        assert (out / name).read_text() == (tmp_path / "ref" / name).read_text(), name
    a = json.loads((out / "fit.json").read_text())
    b = json.loads((tmp_path / "ref" / "fit.json").read_text())
    assert a["resumed"] and a["provenance"]["resumed"] and not b["provenance"]["resumed"]
    for key in ("parameters", "variants", "set", "numerics", "data_value"):
        assert a[key] == b[key], key
    assert not (out / "checkpoint").exists()         # finished: nothing left to resume


# -- validation of checkpoints (in process, on the test model with a known set) ------------
def toy_spec(folder: Path, seed: int = 1) -> Path:
    path = folder / f"toy{seed}.toml"
    path.write_text(f'model = "{DATA / "set_toy.mdl"}"\ndata = "{DATA / "set_toy.csv"}"\n'
                    f'seed = {seed}\n[uncertain]\nexclude = ["Boost", "Switch Growth"]\n'
                    '[set]\ndraws = 2000\nchunk = 500\nmax_starts = 20\nreplicas = 2\n'
                    'steps = 4\nthin = 2\nlevel_draws = 200\ncheck_members = 10\n'
                    f'[explain]\nvariable = "Level"\nwindow = [1, 1]\n'
                    f'scenarios = "{DATA / "set_toy_scenarios.toml"}"\n'
                    'counterfactuals = ["boost"]\nthreshold = 1.0\n')
    return path


@pytest.fixture
def finished(tmp_path):
    spec, cp = toy_spec(tmp_path), tmp_path / "cp"
    return spec, cp, calibrate(spec, checkpoint=cp, progress=False)


def test_a_finished_checkpoint_resumes_without_running(finished):
    spec, cp, first = finished
    again = calibrate(spec, checkpoint=cp, resume=True, progress=False)
    assert again.runs == 0 and again.resumed and again.provenance["resumed"]
    np.testing.assert_array_equal(again.members, first.members)
    assert [c.share for c in again.conclusions] == [c.share for c in first.conclusions]


def test_a_changed_piece_is_refused(finished):
    spec, cp, _ = finished
    piece = cp / "screen-1.npz"
    data = bytearray(piece.read_bytes())
    data[-20] ^= 0xFF
    piece.write_bytes(bytes(data))
    with pytest.raises(SdInputError, match=r"cannot resume: .*screen-1\.npz fails its integrity "
                                           r"check.*Remove .*cp"):
        calibrate(spec, checkpoint=cp, resume=True, progress=False)


def test_an_invented_piece_is_refused(finished):
    """A piece replaced by made-up values ('done' with invented numbers), its
    manifest entry left as it was or rewritten without the secret."""
    import io

    spec, cp, _ = finished
    buf = io.BytesIO()
    np.savez(buf, V=np.zeros((500, 2)), S=np.zeros((500, 2)))    # every draw "meets" it all
    (cp / "screen-0.npz").write_bytes(buf.getvalue())
    with pytest.raises(SdInputError, match="screen-0.npz fails its integrity check"):
        calibrate(spec, checkpoint=cp, resume=True, progress=False)
    manifest = json.loads((cp / "manifest.json").read_text())
    manifest["pieces"]["screen-0"] = "0" * 64
    (cp / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SdInputError, match="screen-0.npz fails its integrity check"):
        calibrate(spec, checkpoint=cp, resume=True, progress=False)


def test_a_checkpoint_of_another_job_is_refused(finished, tmp_path):
    spec, cp, _ = finished
    other = toy_spec(tmp_path, seed=2)
    with pytest.raises(SdInputError, match=r"was written for another seed \(1; this job: 2\)"):
        calibrate(other, checkpoint=cp, resume=True, progress=False)
    (tmp_path / "edited.csv").write_text((DATA / "set_toy.csv").read_text().replace("0.5,1,", "0.4,1,"))
    with pytest.raises(SdInputError, match="was written for another spec, data or scenario file"):
        calibrate(spec, data=tmp_path / "edited.csv", checkpoint=cp, resume=True, progress=False)


@pytest.mark.parametrize("content, match", [
    ("not json {", "is not a calibration checkpoint"),
    ('["a list"]', "is not a set-valued calibration checkpoint"),
    ('{"format": 1, "identity": {}, "pieces": {"../../x": "y"}}', "another"),
])
def test_a_manifest_that_is_not_one_is_refused(finished, content, match):
    spec, cp, _ = finished
    (cp / "manifest.json").write_text(content)
    with pytest.raises(SdInputError, match=match):
        calibrate(spec, checkpoint=cp, resume=True, progress=False)


def test_cli_refuses_a_bad_checkpoint_with_exit_2(tmp_path):
    spec = toy_spec(tmp_path)
    (tmp_path / "out" / "checkpoint").mkdir(parents=True)
    (tmp_path / "out" / "checkpoint" / "manifest.json").write_text("garbage")
    proc = subprocess.run(_cmd(spec, tmp_path / "out", "--resume"), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "cannot resume" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "fit.json").exists()


def test_point_fit_checkpoint_with_invented_values_is_refused(tmp_path):
    """The old main reported a checkpoint saying done: true with invented values as a
    successful fit. Changed without the secret: the seal fails; resealed (someone
    with the user's secret), the payoff it claims is checked against the model."""
    from sd.model.cache import seal_bytes

    teacup = DATA / "teacup.mdl"
    (tmp_path / "obs.csv").write_text("variable,time,value,sigma\nTeacup Temperature,10,107.4,1\n")
    spec = tmp_path / "p.toml"
    spec.write_text(f'model = "{teacup}"\ndata = "obs.csv"\nseed = 1\n[optimizer]\n'
                    'method = "least_squares"\nstarts = 1\n[confidence]\nprofile_points = 3\n'
                    '[parameters]\n"Characteristic Time" = {low = 2, high = 20, init = 10}\n')
    calibrate(spec, checkpoint=tmp_path / "cp", progress=False)
    path = tmp_path / "cp" / "optimiser.json"
    raw = json.loads(path.read_text())
    raw["body"].update(done=True, best_u=[0.9], best_payoff=1e-12)
    path.write_text(json.dumps(raw))
    with pytest.raises(SdInputError, match="optimiser.json fails its integrity check"):
        calibrate(spec, checkpoint=tmp_path / "cp", resume=True, progress=False)
    raw["mac"] = seal_bytes(json.dumps(raw["body"], sort_keys=True).encode(),
                            "sd point-fit checkpoint")
    path.write_text(json.dumps(raw))
    with pytest.raises(SdInputError, match=r"says the best payoff is 1e-12, but the model gives"):
        calibrate(spec, checkpoint=tmp_path / "cp", resume=True, progress=False)
    path.write_text("[1, 2")
    with pytest.raises(SdInputError, match="is not an sd point-fit checkpoint"):
        calibrate(spec, checkpoint=tmp_path / "cp", resume=True, progress=False)
