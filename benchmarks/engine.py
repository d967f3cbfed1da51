"""Benchmark the fast engine against PySD (and Simlin when installed).

Usage::

    python benchmarks/engine.py [model.mdl] [--repeats 7]

One process, one model (default ``models/juarez_brick_kilns.mdl``). Times
are medians of ``--repeats`` after a warm-up (the warm-up also compiles the
model, or loads it from the cache). Each fast-engine batch samples a few of
the model's constants (±50 %) and returns every variable at every saved
time (the full ``xarray.Dataset`` a caller gets), then again keeping only
``--keep`` variables, as calibration and sensitivity runs do (PySD is then
asked for the same ``return_columns``). Not a test.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sd.engine import compile_model, run_fast  # noqa: E402

TARGET_1000 = 0.1      # s for 1,000 runs
TARGET_ONE = 0.002     # s for one run
TARGET_RATIO = 5000


def median_time(fn, repeats: int) -> float:
    fn()   # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def pysd_per_run(path: Path, repeats: int, columns=None) -> tuple[float, float]:
    """(run only, fresh model + run): run() on a loaded model, and the
    isolated per-run cost of the PySD fallback (fresh load each run)."""
    from sd.model import load

    model = load(path)

    def fresh_run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fresh().run(progress=False, return_columns=columns)

    loaded = model.fresh()

    def run_only():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded.run(progress=False, return_columns=columns)

    return median_time(run_only, repeats), median_time(fresh_run, repeats)


def simlin_per_run(path: Path, repeats: int):
    try:
        import simlin
    except ImportError:
        return None
    try:
        model = simlin.load(str(path))
        sim = model.simulate()
    except Exception as exc:  # noqa: BLE001 - Simlin may not read every model
        print(f"simlin could not load {path.name}: {exc}")
        return None

    def one():
        sim.reset()
        sim.run_to_end()
    return median_time(lambda: [one() for _ in range(10)], repeats) / 10


def samples_for(path: Path, n: int) -> pd.DataFrame:
    cm = compile_model(path)
    consts = [p for p in cm.params if not p[1] and p[2] != 0][:5]
    rng = np.random.default_rng(0)
    return pd.DataFrame({name: value * rng.uniform(0.5, 1.5, n) for name, _, value in consts})


def table(path: Path, keep, pysd_run: float, repeats: int, title: str) -> dict:
    """Time N = 1 ... 10,000 runs keeping ``keep`` (None: all); print a table."""
    results = {}
    print(f"-- fast engine, {title}")
    print(f"{'N':>7} {'total s':>10} {'ms/run':>9} {'x PySD':>9}")
    for n in (1, 100, 1000, 10000):
        samples = samples_for(path, n)
        sec = median_time(lambda: run_fast(path, samples, variables=keep),
                          repeats if n < 10000 else 3)
        results[n] = sec
        print(f"{n:>7} {sec:>10.4f} {sec / n * 1e3:>9.4f} {pysd_run * n / sec:>9.0f}")
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default=str(ROOT / "models" / "juarez_brick_kilns.mdl"))
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--keep", nargs="+", metavar="VAR",
                    default=["Propane Share", "Total Kilns"],
                    help="variables kept in the second table (what calibration and "
                         "sensitivity runs keep); default: Propane Share, Total Kilns")
    args = ap.parse_args(argv)
    path = Path(args.model)

    t = time.perf_counter()
    cm = compile_model(path)
    print(f"model: {path.name}  back end: {cm.mode}  "
          f"compile/load (first call in this process): {time.perf_counter() - t:.2f} s")
    pysd_run, pysd_fresh = pysd_per_run(path, max(3, args.repeats // 2))
    print(f"PySD: {pysd_run * 1e3:.2f} ms/run (loaded model), "
          f"{pysd_fresh * 1e3:.2f} ms/run (fresh model per run, as the fallback does)")
    simlin = simlin_per_run(path, args.repeats)
    if simlin is not None:
        print(f"Simlin: {simlin * 1e3:.3f} ms/run (reset + run_to_end, no result copy)")

    results = table(path, None, pysd_run, args.repeats, "every variable kept")
    keep = [v for v in args.keep if any(o[0] == v for o in cm.outputs)]
    if keep:
        pysd_keep, _ = pysd_per_run(path, max(3, args.repeats // 2), columns=keep)
        print(f"PySD with return_columns={keep}: {pysd_keep * 1e3:.2f} ms/run")
        table(path, keep, pysd_keep, args.repeats, f"kept: {', '.join(keep)}")

    checks = [
        ("1,000 runs <= 0.1 s", results[1000] <= TARGET_1000),
        (f">= {TARGET_RATIO}x PySD at 1,000 runs", pysd_run * 1000 / results[1000] >= TARGET_RATIO),
        ("one run <= 2 ms", results[1] <= TARGET_ONE),
    ]
    if simlin is not None:
        checks.append(("faster than Simlin per run at 1,000 runs", results[1000] / 1000 < simlin))
    for what, ok in checks:
        print(f"target {what}: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
