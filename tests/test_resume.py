"""Interrupted ensembles resume to the same result; scratch folders of killed
jobs are cleaned up, never a running job's (issue 8).

``sd sensitivity`` is killed with SIGKILL while it runs, then rerun with
``--resume``: the outputs must equal those of an uninterrupted run with the
same seed (exactly: the runs are deterministic and chunks are stored in full
precision), and the provenance must say what was reused.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from sd.cli import main
from sd.report.folder import CHECKPOINT, staged
from sd.simulation.chunk_store import Chunk, ChunkStore, rows_digest

TEACUP = Path(__file__).parent / "data" / "teacup.mdl"
ROOT = Path(__file__).resolve().parents[1]

# Small chunks, so that a kill lands between chunks of every design; small
# sizes throughout (about 80 runs of the teacup).
SPEC = f"""model = "{TEACUP.as_posix()}"
[sampling]
n = 40
seed = 11
chunk_size = 2
[output]
variables = ["Teacup Temperature", "Heat Loss to Room"]
every = 2
dtype = "float32"
[parameters]
"Characteristic Time" = {{ distribution = "uniform", low = 5, high = 15 }}
"Room Temperature" = {{ distribution = "normal", mean = 70, sd = 4 }}
[metrics]
final = {{ variable = "Teacup Temperature", kind = "final" }}
peak_loss = {{ variable = "Heat Loss to Room", kind = "max" }}
t10 = {{ variable = "Teacup Temperature", kind = "at", time = 10 }}
[sobol]
n = 4
second_order = false
[morris]
trajectories = 3
"""


def _sd(*args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "sd", *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)


def _scratch(out: Path) -> list[Path]:
    return sorted(out.glob(".sd-*"))


def _same_outputs(a: Path, b: Path) -> None:
    for name in ("metrics.csv", "sobol.csv", "morris.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(a / name), pd.read_csv(b / name),
                                      check_exact=True)  # exact: same runs, full precision
    with xr.open_dataset(a / "ensemble.nc") as x, xr.open_dataset(b / "ensemble.nc") as y:
        assert x.equals(y)
        assert x.attrs["sd_failed_runs"] == y.attrs["sd_failed_runs"]


def test_killed_sensitivity_resumes_to_the_uninterrupted_result(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC, encoding="utf-8")
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert main(["sensitivity", str(spec), "--out", str(ref), "--no-progress"]) == 0
    capsys.readouterr()

    proc = _sd("sensitivity", spec, "--out", out, "--no-progress")
    deadline = time.monotonic() + 240
    while not list(out.glob(f".sd-*/{CHECKPOINT}/*.nc")):  # killed once chunks are stored
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no chunk was stored"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "provenance.json").exists()  # it died before publishing
    stored = list(out.glob(f".sd-*/{CHECKPOINT}/*.nc"))
    assert stored and len(_scratch(out)) == 1

    assert main(["sensitivity", str(spec), "--out", str(out), "--no-progress", "--resume"]) == 0
    printed = capsys.readouterr().out
    _same_outputs(ref, out)
    resumed = json.loads((out / "provenance.json").read_text())["resumed"]
    assert resumed["chunks"] >= len(stored) - 1 and resumed["discarded_chunks"] == 0
    assert f"resumed: {resumed['runs']} runs of {resumed['chunks']} finished chunks" in printed
    assert "resumed" not in json.loads((ref / "provenance.json").read_text())
    assert _scratch(out) == []  # the adopted scratch folder went with the success


def test_chunks_of_another_job_are_never_reused(tmp_path):
    rows = pd.DataFrame({"a": [1.0, 2.0]}, index=pd.RangeIndex(4, 6, name="run"))
    chunk = Chunk(4, pd.DataFrame({"m": [0.5, 0.25]}, index=rows.index), None, {5: "nan at t=3"})
    ChunkStore(tmp_path, {"seed": 1}).save("monte carlo", 4, 6, rows_digest(rows), chunk)
    same = ChunkStore(tmp_path, {"seed": 1})
    assert same.has("monte carlo", 4, 6, rows_digest(rows))
    back = same.load("monte carlo", 4, 6)
    pd.testing.assert_frame_equal(back.metrics, chunk.metrics, check_exact=True)
    assert back.failed == {5: "nan at t=3"} and back.start == 4
    # another seed (or spec, model, scenario...: the key), or other design rows
    assert not ChunkStore(tmp_path, {"seed": 2}).has("monte carlo", 4, 6, rows_digest(rows))
    assert not list(tmp_path.glob("*.nc"))  # the stale chunk was deleted
    ChunkStore(tmp_path, {"seed": 1}).save("monte carlo", 4, 6, rows_digest(rows), chunk)
    other = rows.assign(a=[1.0, 2.000001])
    assert not ChunkStore(tmp_path, {"seed": 1}).has("monte carlo", 4, 6, rows_digest(other))
    # a torn or foreign file is run again, not trusted
    (tmp_path / "monte_carlo-000000000004-000000000006.nc").write_bytes(b"\x89HDF\r\n garbage")
    store = ChunkStore(tmp_path, {"seed": 1})
    assert not store.has("monte carlo", 4, 6, rows_digest(rows)) and store.discarded == 1


def _fake_scratch(out: Path, name: str, pid: int | None, lock: bool = True) -> Path:
    folder = out / name
    folder.mkdir(parents=True)
    (folder / "junk.bin").write_bytes(b"\0" * 1000)
    if lock:
        (folder / ".lock").touch()
    if pid is not None:
        import socket

        (folder / ".owner.json").write_text(json.dumps(
            {"kind": "sensitivity", "pid": pid, "host": socket.gethostname()}))
    return folder


def test_only_provably_stale_scratch_folders_are_removed(tmp_path):
    out = tmp_path / "out"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = _fake_scratch(out, ".sd-sensitivity-dead", int(dead.stdout))
    # killed but not reaped yet (a zombie: kill -0 still succeeds): gone all the same
    # (Linux, whose /proc tells a zombie; CI runs there)
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    while Path(f"/proc/{zombie.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        time.sleep(0.01)
    unreaped = _fake_scratch(out, ".sd-sensitivity-zombie", zombie.pid)
    no_owner = _fake_scratch(out, ".sd-run-noowner", None)           # lock free, no record
    legacy = _fake_scratch(out, ".sd-legacy", None, lock=False)       # no lock file: unknown
    held = _fake_scratch(out, ".sd-run-held", None)
    # a live job: holds the lock (as staged() does) for as long as it runs
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR);"
         " fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(120)",
         str(held / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        alive = _fake_scratch(out, ".sd-run-alive", holder.pid)      # lock free, owner running
        (out / "mine.txt").write_text("the user's own file")
        with staged(out, "run.json", kind="run") as folder:
            assert folder.parent == out and folder.name.startswith(".sd-run-")
            assert folder != stale and (folder / ".lock").is_file()
            (folder / "run.json").write_text(json.dumps({"files": ["run.json"]}))
        left = {p.name for p in out.iterdir()}
        assert stale.name not in left and no_owner.name not in left and unreaped.name not in left
        assert {legacy.name, held.name, alive.name, "mine.txt", "run.json"} <= left
        assert (held / "junk.bin").is_file() and (alive / "junk.bin").is_file()
        assert not [p for p in out.glob(".sd-run-*") if p not in (held, alive, no_owner)]
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
        zombie.wait()


def test_failed_job_keeps_nothing_and_interrupted_one_keeps_its_chunks(tmp_path):
    out = tmp_path / "deep" / "out"
    with pytest.raises(RuntimeError):
        with staged(out, "p.json", kind="sensitivity"):
            raise RuntimeError("the job failed before any chunk")
    assert not (tmp_path / "deep").exists()  # every folder it made, removed
    with pytest.raises(KeyboardInterrupt):
        with staged(out, "p.json", kind="sensitivity") as folder:
            (folder / CHECKPOINT).mkdir()
            (folder / CHECKPOINT / "monte_carlo-0-2.nc").write_bytes(b"x")
            raise KeyboardInterrupt
    kept = _scratch(out)
    assert len(kept) == 1 and (kept[0] / CHECKPOINT / "monte_carlo-0-2.nc").is_file()
    # --resume adopts it; a job that does not resume removes it
    with staged(out, "p.json", kind="sensitivity", resume=True) as folder:
        assert folder == kept[0] and (folder / CHECKPOINT / "monte_carlo-0-2.nc").is_file()
        (folder / "p.json").write_text(json.dumps({"files": ["p.json"]}))
    assert _scratch(out) == [] and (out / "p.json").is_file()


def test_a_writer_that_lists_other_files_than_it_wrote_publishes_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="outputs and manifest disagree"):
        with staged(out, "p.json") as folder:
            (folder / "a.csv").write_text("1")
            (folder / "p.json").write_text(json.dumps({"files": ["p.json", "a.csv", "a.csv"]}))
    assert not out.exists()


def test_outputs_of_the_resumed_run_match_in_memory_numbers(tmp_path):
    """The API without a checkpoint and with an (empty) one give the same numbers."""
    from sd.sensitivity_analysis import sensitivity

    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.replace("n = 40", "n = 6").replace("[sobol]\nn = 4", "[sobol]\nn = 0")
                    .replace("trajectories = 3", "trajectories = 0"), encoding="utf-8")
    plain = sensitivity(spec, progress=False)
    kept = sensitivity(spec, progress=False, checkpoint=tmp_path / "chunks")
    again = sensitivity(spec, progress=False, checkpoint=tmp_path / "chunks")
    for other in (kept, again):
        pd.testing.assert_frame_equal(plain.metrics, other.metrics, check_exact=True)
        assert plain.ensemble.equals(other.ensemble)
    assert "resumed" not in kept.provenance and again.provenance["resumed"]["runs"] == 6
    assert np.isfinite(plain.metrics.to_numpy()).all()
