"""Edit-to-result latency of ``sd run`` and ``sd run --watch`` against Simlin (issue 13).

Usage::

    python benchmarks/interactive.py [LARGE.mdl] [--repeats 3]

For the Juárez model and a large model -- ``LARGE.mdl`` (e.g. World3-03,
``wrld3-03.mdl``, which is not part of the project), or, without it, a
synthetic World3-size model (~300 variables) built in a temporary folder --
it measures, each beside the same step in Simlin (``pysimlin``) measured in
the same run:

* a fresh ``sd run`` with a warm cache (a new process, the model unchanged);
* a fresh ``sd run`` after a constant edit, an equation edit, a diagram-only edit;
* in ``sd run --watch``, the latency from saving the file to the new results,
  *shown* (the summary of the new run printed, the plot window redrawn) and
  *written* (the results folder replaced: CSV, NetCDF, PNGs, run.json), for
  a constant edit and an equation edit.

Simlin has no cache and no watch mode: its fresh step is a new process that
imports ``simlin``, loads the file, runs it and writes ``results.csv``; its
watch step is the same load + run + write inside one process. Each figure is
the median of ``--repeats``; every edit is a new one (a different number),
so no step is served by a cache that the step itself should not have. The
models are copied into a temporary folder with a private ``SD_CACHE_DIR``.

Wall times depend on what else the machine is doing; the CPU time of the
process (user + system) is printed beside each and is what a quiet machine's
wall time would be. The load average is printed with them. Not a test:
targets are reported, never asserted.
"""
from __future__ import annotations

import argparse
import os
import queue
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
JUAREZ = ROOT / "models" / "juarez_brick_kilns.mdl"

#: Issue 13's targets (seconds).
WATCH_JUAREZ, WATCH_LARGE, FRESH_JUAREZ = 0.3, 1.0, 1.0

_SIMLIN = ("import sys, simlin\n"
           "simlin.load(sys.argv[1]).run(analyze_loops=False).results.to_csv(sys.argv[2])\n")
_NUMBER = r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)"


# -- timing ------------------------------------------------------------------------------------
def child(cmd, env) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall, cpu) of one subprocess, and its result."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc


def med(values) -> float:
    return statistics.median(values) if values else float("nan")


# -- edits -------------------------------------------------------------------------------------
def name_pattern(name: str) -> str:
    words = name.strip('"').split()
    return r'"?' + r"[ \t_]+".join(map(re.escape, words)) + r'"?'


class Edits:
    """The three kinds of edit, each a function of k (a new one for every k)."""

    def __init__(self, path: Path):
        import sd
        from sd.model.timing import recorded_controls

        self.path, self.text = path, path.read_text(encoding="utf-8", errors="surrogateescape")
        model = sd.load(path)
        controls = recorded_controls(model) or {}
        timed = {n for _, reads in controls.values() for n in reads}
        from sd.errors import canon

        self.constant = self.aux = None
        for var in model.variables.values():
            if var.subscripts or canon(var.name) in timed:
                continue
            if var.kind == "constant" and self.constant is None and self._literal(var.name):
                self.constant = var.name
            if var.kind == "auxiliary" and self.aux is None and self._expression(var.name):
                self.aux = var.name
        if self.constant is None or self.aux is None:
            raise SystemExit(f"{path.name}: found no literal constant or auxiliary to edit")

    def _literal(self, name):
        return re.search(rf"(?m)^[ \t]*{name_pattern(name)}[ \t]*=[ \t\n]*({_NUMBER})[ \t]*\n"
                         r"[ \t]*~", self.text)

    def _expression(self, name):
        m = re.search(rf"(?ms)^[ \t]*{name_pattern(name)}[ \t]*=(.*?)\n[ \t]*~", self.text)
        if m is None or re.search(r"INTEG|DELAY|SMOOTH|:|\[|TREND|FORECAST|INITIAL", m.group(1)):
            return None
        return m

    def constant_edit(self, k: int) -> str:
        m = self._literal(self.constant)
        value = float(m.group(1)) * (1 + 0.01 * k) + (0.01 * k if float(m.group(1)) == 0 else 0)
        return self.text[:m.start(1)] + repr(value) + self.text[m.end(1):]

    def equation_edit(self, k: int) -> str:
        m = self._expression(self.aux)
        body = m.group(1).strip()
        return self.text[:m.start(1)] + f"\n\t({body}) * {1 + k * 1e-6!r}" + self.text[m.end(1):]

    def diagram_edit(self, k: int) -> str:
        head, mark, sketch = self.text.partition("\\\\\\---///")
        if not mark:
            return self.text + f"\n{{diagram edit {k}}}\n"
        lines = sketch.split("\n")
        for i, line in enumerate(lines):
            parts = line.split(",")
            if line.startswith("10,") and len(parts) > 4 and parts[3].lstrip("-").isdigit():
                parts[3] = str(int(parts[3]) + k)
                lines[i] = ",".join(parts)
                break
        return head + mark + "\n".join(lines)

    def save(self, text: str) -> None:
        self.path.write_text(text, encoding="utf-8", errors="surrogateescape")


# -- one model -----------------------------------------------------------------------------------
def bench_model(path: Path, work: Path, repeats: int, env: dict, with_pysd: bool) -> dict:
    folder = work / path.stem
    folder.mkdir()
    model = Path(shutil.copy(path, folder / path.name))
    for extra in path.parent.glob("*scenarios*.toml"):
        shutil.copy(extra, folder / extra.name)
    out = folder / "out"
    sd_cmd = [sys.executable, "-m", "sd", "run", str(model), "--out", str(out)]
    sim_cmd = [sys.executable, "-c", _SIMLIN, str(model), str(folder / "simlin.csv")]
    res: dict = {"name": path.name}

    wall, cpu, proc = child(sd_cmd, env)
    if proc.returncode != 0:
        print(f"  sd run {path.name} failed: {proc.stderr.strip().splitlines()[-1]}")
        return res
    res["cold"] = (wall, cpu)
    res["engine"] = proc.stdout.split("engine ")[1].split(",")[0] if "engine " in proc.stdout \
        else "?"
    simlin_ok = child(sim_cmd, env)[2].returncode == 0
    edits = Edits(model)
    original = edits.text

    steps = [("fresh run, warm cache", None), ("after a constant edit", edits.constant_edit),
             ("after an equation edit", edits.equation_edit),
             ("after a diagram-only edit", edits.diagram_edit)]
    # the steps interleaved, each edit a new one made to the original text (the
    # version loaded last), so the machine's load drifts alike over all of them
    times = {(label, who): [] for label, _ in steps for who in ("sd", "simlin")}
    for k in range(1, repeats + 1):
        for label, make in steps:
            edits.save(original if make is None else make(k))
            for who, cmd in (("sd", sd_cmd), ("simlin", sim_cmd)):
                if who == "simlin" and not simlin_ok:
                    continue
                w, c, p = child(cmd, env)
                if p.returncode != 0:
                    print(f"  {who} failed ({label}): {p.stderr.strip()[-300:]}")
                else:
                    times[(label, who)].append((w, c))
            edits.save(original)
            child(sd_cmd, env)                  # the original is the version loaded last
    for label, _ in steps:
        res[label] = tuple((med([w for w, _ in times[(label, who)]]),
                            med([c for _, c in times[(label, who)]]))
                           if times[(label, who)] else None for who in ("sd", "simlin"))
    res["watch"] = watch_latency(model, edits, repeats, env, folder)
    res["simlin watch"] = simlin_in_process(model, edits, repeats, folder) if simlin_ok else None
    edits.save(original)
    if with_pysd:   # what --engine auto chooses against: PySD, translation cached
        child([*sd_cmd[:5], "--engine", "pysd", *sd_cmd[5:]], env)
        res["pysd"] = child([*sd_cmd[:5], "--engine", "pysd", *sd_cmd[5:]], env)[:2]
    res["edited"] = (edits.constant, edits.aux)
    return res


def watch_latency(model: Path, edits: Edits, repeats: int, env: dict, folder: Path) -> dict:
    """Save -> 'wrote' line of ``sd run --watch``, per kind of edit."""
    proc = subprocess.Popen([sys.executable, "-m", "sd", "run", str(model), "--watch", "--out",
                             str(folder / "watch")], env={**env, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()

    def read():
        for line in proc.stdout:
            lines.put((time.perf_counter(), line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def until(text: str, timeout: float = 300):
        end = time.monotonic() + timeout
        cpu = None
        while time.monotonic() < end:
            try:
                t, line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            m = re.search(r"\(cpu ([0-9.]+) s\)", line)
            if m:
                cpu = float(m.group(1))
            if "sd: error" in line:
                raise RuntimeError(line)
            if text in line:
                return t, cpu
        raise RuntimeError(f"--watch printed no {text!r}")

    out = {}
    try:
        until("watching")
        time.sleep(1.0)
        for label, make in (("constant edit", edits.constant_edit),
                            ("equation edit", edits.equation_edit)):
            shown, written = [], []
            for k in range(1, repeats + 1):
                text = make(100 + k)
                t0 = time.perf_counter()
                edits.save(text)
                t1, cpu1 = until("ran in")
                t2, cpu2 = until("wrote")
                shown.append((t1 - t0, cpu1))
                written.append((t2 - t0, cpu2))
                time.sleep(0.5)
            out[label] = (med([w for w, _ in written]), med([c for _, c in written]))
            out[label + " shown"] = (med([w for w, _ in shown]), med([c for _, c in shown]))
    except RuntimeError as exc:
        print(f"  --watch: {exc}")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        reader.join(timeout=10)
        proc.stdout.close()
    return out


def simlin_in_process(model: Path, edits: Edits, repeats: int, folder: Path) -> dict:
    """Simlin's edit loop in one process: load the saved file, run, write the results."""
    import simlin

    out = {}
    for label, make in (("constant edit", edits.constant_edit),
                        ("equation edit", edits.equation_edit)):
        walls, cpus = [], []
        for k in range(1, repeats + 1):
            edits.save(make(200 + k))
            t, c = time.perf_counter(), time.process_time()
            simlin.load(str(model)).run(analyze_loops=False).results.to_csv(folder / "s.csv")
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        out[label] = (med(walls), med(cpus))
    return out


# -- what the back-end choice rests on ------------------------------------------------------------
def backend_costs(path: Path, env: dict) -> str:
    code = f"""
import time, sys
from sd.model import load
from sd.engine import compile_model, run_compiled
from sd.model.timing import settings
m = load({str(path)!r})
cm = compile_model(m, "python")
steps = settings(m).steps + 1
run_compiled(cm)
t = time.perf_counter(); n = 0
while time.perf_counter() - t < 1.0:
    run_compiled(cm)
    n += 1
per = (time.perf_counter() - t) / n
t = time.perf_counter(); import numba; imp = time.perf_counter() - t
t = time.perf_counter(); compile_model(m, "numba"); load_ = time.perf_counter() - t
print(f"python back end {{per * 1e3:.1f}} ms per run (with its Dataset) = "
      f"{{per / (steps * cm.size) * 1e6:.2f}} us per node x step ({{cm.size}} x {{steps}}); "
      f"numba import {{imp:.2f}} s, load of its cached code {{load_:.2f}} s")
"""
    warm = [sys.executable, "-c", f"import sd, pandas as pd; sd.run_many({str(path)!r}, "
            "pd.DataFrame(index=range(2)))"]
    subprocess.run(warm, env=env, capture_output=True)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return proc.stdout.strip() or proc.stderr.strip()[-300:]


# -- a World3-size model when none is given -----------------------------------------------------------
def synthetic(folder: Path, sectors: int = 15) -> Path:
    """A World3-size model: per sector a stock, two flows, nine auxiliaries,
    six constants and three lookups (~315 variables), sectors coupled in a
    ring, 1900-2100 by 0.5 (World3-03's time settings)."""
    eq = []

    def add(lhs, rhs, units="Dmnl", doc="synthetic"):
        eq.append(f"{lhs}=\n\t{rhs}\n\t~\t{units}\n\t~\t{doc}\n\t|\n")

    for s in range(sectors):
        prev = (s - 1) % sectors
        add(f"Stock {s}", f"INTEG(Inflow {s} - Outflow {s}, Initial {s})", "unit")
        add(f"Initial {s}", f"{100 + 10 * s}", "unit")
        add(f"Inflow {s}", f"Stock {s} * Growth {s} * Effect {s}", "unit/Year")
        add(f"Outflow {s}", f"Stock {s} / Life {s}", "unit/Year")
        add(f"Growth {s}", "0.04", "1/Year")
        add(f"Life {s}", f"{20 + s}", "Year")
        add(f"Ratio {s}", f"Stock {prev} / Stock {s}")
        add(f"Effect {s}", f"Effect Table {s}(Chain {s} 7)")
        eq.append(f"Effect Table {s}(\n\t[(0,0)-(4,2)],(0,0.6),(1,1),(2,1.2),(4,1.3))\n"
                  "\t~\tDmnl\n\t~\tsynthetic\n\t|\n")
        add(f"Chain {s} 0", f"Ratio {s} * Scale {s} 0")
        for j in range(1, 8):
            if j % 3 == 0:
                add(f"Chain {s} {j}", f"Shape {s} {j}(Chain {s} {j - 1}) * Scale {s} {j % 4}")
                eq.append(f"Shape {s} {j}(\n\t[(0,0)-(4,2)],(0,0.5),(1,1),(2,1.4),(4,1.6))\n"
                          "\t~\tDmnl\n\t~\tsynthetic\n\t|\n")
            else:
                add(f"Chain {s} {j}", f"0.5 * Chain {s} {j - 1} + 0.5 * Ratio {s} * "
                                      f"Scale {s} {j % 4}")
        for j in range(4):
            add(f"Scale {s} {j}", f"{1 + 0.01 * j}")
    control = ("********************************************************\n\t.Control\n"
               "********************************************************~\n"
               "\t\tSimulation Control Parameters\n\t|\n\n"
               "FINAL TIME  = 2100\n\t~\tYear\n\t~\tThe final time for the simulation.\n\t|\n\n"
               "INITIAL TIME  = 1900\n\t~\tYear\n\t~\tThe initial time for the simulation.\n\t|\n\n"
               "SAVEPER  = \n\tTIME STEP\n\t~\tYear [0,?]\n\t~\tThe frequency with which output "
               "is stored.\n\t|\n\n"
               "TIME STEP  = 0.5\n\t~\tYear [0,?]\n\t~\tThe time step for the simulation.\n\t|\n\n")
    path = folder / "synthetic_world.mdl"
    path.write_text("{UTF-8}\n" + "\n".join(eq) + "\n" + control +
                    "\\\\\\---/// Sketch information - do not modify anything except names\n"
                    "V300  Do not put anything below this section - it will be ignored\n"
                    "*View 1\n$192-192-192,0,Times New Roman|12||0-0-0|0-0-0|0-0-255|-1--1--1|"
                    "-1--1--1|96,96,100,0\n"
                    "10,1,Stock 0,100,100,40,20,3,3,0,0,0,0,0,0\n"
                    "///---\\\\\\\n", encoding="utf-8")
    return path


# -- report -------------------------------------------------------------------------------------------
def fmt(pair) -> str:
    if not pair or pair[0] is None:
        return "      --        "
    wall, cpu = pair
    return f"{wall:6.3f} s (cpu {cpu:5.3f})" if cpu is not None else f"{wall:6.3f} s          "


def ratio(a, b) -> str:
    if not a or not b or a[0] is None or b[0] is None:
        return "  --"
    return f"{a[0] / b[0]:5.1f}x"


def report(res: dict, target_watch: float, target_fresh: float | None) -> list:
    print(f"\n{res['name']}  (engine {res.get('engine', '?')}; edits: constant "
          f"{res.get('edited', ('?', '?'))[0]!r}, equation of {res.get('edited', ('?', '?'))[1]!r})")
    if "cold" not in res:
        return []
    print(f"  {'step':<34}{'sd (wall, cpu)':<24}{'Simlin (wall, cpu)':<24}sd/Simlin (wall)")
    print(f"  {'first run, empty cache':<34}{fmt(res['cold'])}")
    for label in ("fresh run, warm cache", "after a constant edit", "after an equation edit",
                  "after a diagram-only edit"):
        ours, theirs = res[label]
        print(f"  {label:<34}{fmt(ours):<24}{fmt(theirs):<24}{ratio(ours, theirs)}")
    for label in ("constant edit", "equation edit"):
        theirs = (res.get("simlin watch") or {}).get(label)
        for what, key in (("shown", label + " shown"), ("written", label)):
            ours = res["watch"].get(key)
            print(f"  {f'--watch {label}, results {what}':<34}{fmt(ours):<24}{fmt(theirs):<24}"
                  f"{ratio(ours, theirs)}")
    if "pysd" in res:
        print(f"  {'fresh run --engine pysd (warm)':<34}{fmt(res['pysd'])}   (auto chose "
              f"{res.get('engine')})")
    checks = []
    for label in ("constant edit", "equation edit"):
        got = res["watch"].get(label)
        if got:
            checks.append((f"{res['name']}: --watch {label} < {target_watch:g} s", got))
    if target_fresh is not None and res["fresh run, warm cache"][0]:
        checks.append((f"{res['name']}: fresh warm sd run < {target_fresh:g} s",
                       res["fresh run, warm cache"][0]))
    fresh, const = res["fresh run, warm cache"][0], res["after a constant edit"][0]
    if fresh and const:
        print(f"  constant edit / unedited fresh run: wall {const[0] / fresh[0]:.2f}, "
              f"cpu {const[1] / fresh[1]:.2f}")
    out = []
    for text, (wall, cpu) in checks:
        limit = float(text.rsplit("< ", 1)[1].split()[0])
        out.append((text, wall < limit, cpu is not None and cpu < limit, wall, cpu))
    if fresh and const:
        out.append((f"{res['name']}: constant edit no slower than an unedited run",
                    const[0] <= fresh[0] * 1.1, const[1] <= fresh[1] * 1.1, const[0], const[1]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("large", nargs="?", help="a World3-size .mdl (default: a synthetic one)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sd-interactive-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "SD_CACHE_DIR": str(work / "cache"), "MPLBACKEND": "Agg"}
        if args.large:
            large = Path(args.large).resolve()
            print(f"large model: {large}")
        else:
            (work / "synthetic").mkdir()
            large = synthetic(work / "synthetic")
            print(f"large model: none given, so a synthetic World3-size model was built in a "
                  f"temporary folder ({large.name}); pass wrld3-03.mdl to measure World3")
        print(f"load average at start: {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
              f"({os.cpu_count()} cores)")
        checks = []
        for path, watch_target, fresh_target in ((JUAREZ, WATCH_JUAREZ, FRESH_JUAREZ),
                                                 (large, WATCH_LARGE, None)):
            res = bench_model(path, work, args.repeats, env, with_pysd=path == JUAREZ)
            checks += report(res, watch_target, fresh_target)
            if "cold" in res:
                print("  back end costs: " + backend_costs(work / path.stem / path.name, env))
        print(f"\nload average at end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print("\ntargets (met on wall time / met on cpu time, i.e. on a quiet machine):")
        for text, wall_ok, cpu_ok, wall, cpu in checks:
            print(f"  {'met ' if wall_ok else 'MISS'} / {'met ' if cpu_ok else 'MISS'}  {text}  "
                  f"(wall {wall:.3f} s, cpu {cpu:.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
