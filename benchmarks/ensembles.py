"""Benchmark: ensemble runs per second and peak memory, local and on Dask.

    python benchmarks/ensembles.py [--max-n 1000000] [--chunk-size 2000] [--no-dask]

For N = 10^3, 10^4, ... up to ``--max-n``, runs the Monte Carlo design of
``calibration/juarez_sensitivity.toml`` chunk by chunk into a NetCDF file
(4 variables x 61 times kept), in one process and on a 2-worker LocalCluster,
and prints runs per second and peak resident memory (``ru_maxrss``) of the
process and of each Dask worker. Each case runs in its own subprocess so that
one case's peak does not hide the next's. PySD driven by EMA Workbench is
timed on a small N when ``ema_workbench`` is installed, and ``sd``'s PySD engine
(what runs models the fast engine cannot compile) always.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "calibration" / "juarez_sensitivity.toml"


def _case(mode: str, n: int, chunk_size: int) -> dict:
    """One measurement, run inside a fresh subprocess."""
    from dataclasses import replace

    from sd.sensitivity_analysis import _Runner, load_spec
    from sd.sensitivity_analysis.methods import monte_carlo_design
    from sd.sensitivity_analysis.spec import base_scenario
    from sd.simulation import prepare
    from sd.simulation.chunks import dask_client, write_ensemble

    spec, model = load_spec(SPEC)
    # At least 8 chunks, so both Dask workers have work even for small N.
    spec = replace(spec, n=n, chunk_size=max(1, min(chunk_size, n // 8)))
    base = base_scenario(spec, model)
    if mode == "pysd":
        return _pysd_case(spec, model, n)
    with tempfile.TemporaryDirectory() as tmp, dask_client(None if mode == "local" else "local") as client:
        runner = _Runner(spec, prepare(model), base, client, progress=False)
        job = runner.job(monte_carlo_design(spec))
        times = runner._stored_times(job)  # also warms the engine's compiled code
        started = time.perf_counter()
        write_ensemble(job, Path(tmp) / "e.nc", store_variables=spec.variables,
                       store_times=times, parameters=spec.names,
                       client=client, progress=False)
        seconds = time.perf_counter() - started
        workers = []
        if client is not None:
            workers = list(client.run(_maxrss_mb).values())
    return {"mode": mode, "n": n, "seconds": seconds, "runs_per_s": n / seconds,
            "maxrss_mb": _maxrss_mb(), "workers_maxrss_mb": workers}


def _pysd_case(spec, model, n: int) -> dict:
    """The same design on sd's PySD engine (isolated runs, a fresh model each)."""
    from sd.sensitivity_analysis.methods import monte_carlo_design
    from sd.simulation import run_many

    samples = monte_carlo_design(spec, n)
    started = time.perf_counter()
    run_many(model, samples, variables=spec.variables, engine="pysd", on_failure="record")
    seconds = time.perf_counter() - started
    return {"mode": "pysd", "n": n, "seconds": seconds, "runs_per_s": n / seconds,
            "maxrss_mb": _maxrss_mb(), "workers_maxrss_mb": []}


def _maxrss_mb() -> float:
    # Linux reports ru_maxrss in kilobytes.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ema(n: int) -> dict | None:
    try:
        from ema_workbench import RealParameter, perform_experiments
        from ema_workbench.connectors.pysd_connector import PysdModel
    except ImportError:
        return None
    from sd.sensitivity_analysis import load_spec

    spec, model = load_spec(SPEC)
    ema_model = PysdModel("juarez", mdl_file=str(model.path))
    ema_model.uncertainties = [RealParameter(d.name, d.frozen().ppf(0.001), d.frozen().ppf(0.999))
                               for d in spec.parameters]
    from ema_workbench import TimeSeriesOutcome

    ema_model.outcomes = [TimeSeriesOutcome(v) for v in spec.variables]
    started = time.perf_counter()
    perform_experiments(ema_model, n)
    seconds = time.perf_counter() - started
    return {"mode": "ema+pysd", "n": n, "seconds": seconds, "runs_per_s": n / seconds,
            "maxrss_mb": _maxrss_mb(), "workers_maxrss_mb": []}


def _run_case(mode: str, n: int, chunk_size: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--case", mode, str(n),
                           "--chunk-size", str(chunk_size)], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"mode": mode, "n": n, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _table(rows: list[dict]) -> str:
    lines = [f"{'mode':<10} {'N':>9} {'seconds':>9} {'runs/s':>9} {'peak MB':>9}  workers' peak MB",
             "-" * 70]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['mode']:<10} {r['n']:>9} failed: {r['error']}")
            continue
        workers = ", ".join(f"{w:.0f}" for w in r["workers_maxrss_mb"]) or "-"
        lines.append(f"{r['mode']:<10} {r['n']:>9} {r['seconds']:>9.1f} {r['runs_per_s']:>9.1f} "
                     f"{r['maxrss_mb']:>9.0f}  {workers}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-n", type=int, default=1_000_000)
    parser.add_argument("--chunk-size", type=int, default=2000)
    parser.add_argument("--no-dask", action="store_true")
    parser.add_argument("--ema-n", type=int, default=100)
    parser.add_argument("--pysd-n", type=int, default=500,
                        help="runs of the PySD loop for comparison (0 skips)")
    parser.add_argument("--case", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(_case(args.case[0], int(args.case[1]), args.chunk_size)))
        return 0
    rows = []
    n = 1000
    while n <= args.max_n:
        for mode in ("local",) + (() if args.no_dask else ("dask",)):
            rows.append(_run_case(mode, n, args.chunk_size))
            print(_table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
        n *= 10
    if args.pysd_n:
        rows.append(_run_case("pysd", args.pysd_n, args.chunk_size))
    ema = _ema(args.ema_n)
    print(_table(rows + ([ema] if ema else [])))
    if ema is None:
        print(f"\nEMA Workbench is not installed: the PySD-via-EMA comparison was skipped "
              f"(pip install ema_workbench, then rerun; it times --ema-n {args.ema_n} runs).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
