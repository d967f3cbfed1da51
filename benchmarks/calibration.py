"""Benchmark the README's main job: ``sd calibrate calibration/juarez_propane.toml``.

Usage::

    python benchmarks/calibration.py [SPEC] [--repeats 1] [--keep-output DIR]

Runs the job end to end in a fresh process, as a user does (start-up, model
load, prior screening of 10^5 draws, chains, conclusions, variants, data
value, numerics, report and figures), and prints its wall time against the
60 s target, its CPU time, the time of each phase (from ``fit.json``), the
runs it made, and what the same runs would take on PySD (its measured time
per run in this process, times the job's run count): the ratio is measured
in one run. The machine's load average is printed before and after: on a
shared machine the wall time is only an upper bound. Not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET = 60.0     # s, the whole main job on 2 cores


def one_job(spec: Path, out: Path) -> tuple[float, float, dict]:
    """(wall s, CPU s of the child, fit.json) of one ``sd calibrate`` run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "sd", "calibrate", str(spec), "--out", str(out),
                           "--no-progress"], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        print(proc.stdout, proc.stderr, sep="\n")
        raise SystemExit(f"sd calibrate failed (exit {proc.returncode})")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(proc.stdout.splitlines()[0])
    return wall, cpu, json.loads((out / "fit.json").read_text())


def pysd_per_run(model: Path, n: int = 3) -> float:
    from sd.model import load

    m = load(model)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.fresh().run(progress=False, return_columns=["Propane Share"])
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", nargs="?", default=str(ROOT / "calibration" / "juarez_propane.toml"))
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--keep-output", metavar="DIR", help="keep the last job's output here")
    args = ap.parse_args(argv)
    spec = Path(args.spec).resolve()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} CPUs)")
    walls, cpus, fit = [], [], None
    scratch = Path(tempfile.mkdtemp(prefix="sd-bench-"))
    try:
        for k in range(args.repeats):
            out = scratch / f"job{k}"
            wall, cpu, fit = one_job(spec, out)
            walls.append(wall)
            cpus.append(cpu)
        if args.keep_output:
            shutil.copytree(scratch / f"job{args.repeats - 1}", args.keep_output,
                            dirs_exist_ok=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    wall = statistics.median(walls)
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in fit["seconds"].items())
    print(f"phases (wall, last job): {phases}")
    print(f"runs: {fit['runs']:,}; prior draws: {fit['screening']['draws']:,}")
    print(f"main job wall time: {wall:.1f} s (median of {len(walls)}), CPU {statistics.median(cpus):.1f} s")
    per_run = pysd_per_run(Path(fit["provenance"]["model_file"]))
    pysd = per_run * fit["runs"]
    print(f"PySD: {per_run * 1e3:.0f} ms/run, so the same {fit['runs']:,} runs would take "
          f"{pysd / 3600:.1f} h: {pysd / wall:,.0f}x the job's wall time")
    print(f"target whole main job <= {TARGET:.0f} s on 2 cores: "
          f"{'met' if wall <= TARGET else 'NOT met'} ({wall / TARGET:.2f} of the target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
