"""``sd run``, once or ``--watch``: edit in Vensim, save, see the new run.

:func:`run_job` is one ``sd run``: load the model, resolve the scenario, run
on the engine chosen for one run, write the results folder all at once. The
watch loop keeps one process alive and repeats the job whenever a file it
depends on is saved: the ``.mdl``, the scenario file (``--scenario
FILE.toml|FILE.cin|NAME@FILE``, or the ``*scenarios*.toml`` beside the model
for a scenario name) and the external data files the model reads.

* A save is noticed by polling the files' ``stat`` (modification time in
  nanoseconds, size, inode) every :data:`POLL` seconds: cheap (a few system
  calls) and blind to how the editor saves; an editor that writes a new file
  and renames it over the old one changes the inode. A save whose bytes are
  those of the last run is reported and not run again.
* What is run again is cheap because the process keeps what it learned:
  entries of the model already parsed are not parsed again
  (:mod:`sd.model.reparse`), the description and compiled artefact of a
  model seen before come from the cache, an edit of constants reuses them
  (:mod:`sd.model.stored`), and one run uses the back end that starts at
  once (:mod:`sd.engine.backends`).
* A save that leaves a file invalid (an editor half way through writing it,
  or a real mistake) is waited on for :data:`SETTLE` seconds in case the
  write is not finished; then the error is printed, the results folder keeps
  the last good run (outputs are written only when a run succeeds), and the
  next save is run.
* After each run it prints the final value and peak of each plotted
  variable (of the variables that changed most when nothing is plotted)
  against the previous run, and redraws the plot window when matplotlib's
  backend is interactive.
* Ctrl-C ends it; the exit status is 130, what the command line returns for
  every interrupt (the results on disk are those of the last good run).
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ._common import regular_bytes
from .errors import SdInputError, SdRuntimeError

#: Seconds between two looks at the watched files.
POLL = 0.05
#: Seconds a file that does not load is given to finish being written.
SETTLE = 0.3
#: Variables listed after a run when none is plotted.
SHOWN = 5


@dataclass(frozen=True)
class Job:
    """What ``sd run`` was asked to do."""

    model: Path
    scenario: str | None = None
    sets: tuple = ()
    out: Path | None = None
    plots: tuple = ()
    engine: str = "auto"
    data: tuple = ()          # data files (sd run --data)


@dataclass(frozen=True)
class Done:
    """A finished run and where it was written."""

    model: object
    scenario: object
    ds: object
    out: Path
    names: tuple
    seconds: float
    plots: tuple = ()
    cpu: float = 0.0


def run_job(job: Job) -> Done:
    """Run ``job`` once and write its results folder (all files or none)."""
    return write_job(simulate_job(job))


def simulate_job(job: Job) -> Done:
    """Load, resolve and run ``job`` (nothing written yet: ``names`` is empty)."""
    from ._common import distinct_names, safe_name
    from .model import load
    from .report.folder import output_folder
    from .scenarios import from_assignments, resolve
    from .simulation import run

    start, cpu = time.perf_counter(), time.process_time()
    model = load(job.model, data_files=job.data)
    scenario = resolve(job.scenario, Path(job.model))
    if job.sets:
        base_name = scenario.name if job.scenario else "set"
        scenario = replace(scenario.merged(from_assignments(list(job.sets))), name=base_name)
    plots = list(dict.fromkeys(model.variable(name, what="variable to plot").name
                               for name in job.plots))
    distinct_names(plots, "{}.png", "--plot")  # two plots, one file: refused before the run
    # a scenario name from a file is one harmless path component (sd._common.safe_name)
    out = output_folder(job.out, Path("results") / f"{safe_name(model.path.stem)}-"
                        f"{safe_name(scenario.name)}")
    ds = run(model, scenario, engine=job.engine)
    return Done(model, scenario, ds, Path(out), (), time.perf_counter() - start,
                tuple(plots), time.process_time() - cpu)


def write_job(done: Done) -> Done:
    """Write the results folder of a run (all files or none); ``seconds`` and
    ``cpu`` then count the writing too."""
    from .report.folder import staged
    from .report.run import write_run

    start, cpu = time.perf_counter(), time.process_time()
    with staged(done.out, "run.json", kind="run") as folder:
        names = write_run(done.ds, folder, list(done.plots))
    return replace(done, names=tuple(names), seconds=done.seconds + time.perf_counter() - start,
                   cpu=done.cpu + time.process_time() - cpu)


def summary(done: Done) -> str:
    return (f"{done.model.path.name}: scenario {done.scenario.name!r}, engine "
            f"{done.ds.attrs['engine']}, {done.ds.sizes['time']} saved times, "
            f"{len(done.ds.data_vars)} variables")


# -- the loop --------------------------------------------------------------------------------
def watch(job: Job, *, poll: float = POLL, out=None, err=None) -> int:
    """Run ``job``, then again after every save, until Ctrl-C (returns 130)."""
    out = out or sys.stdout
    err = err or sys.stderr
    if not Path(job.model).is_file():
        from .model.model import check_path

        check_path(Path(job.model))      # the usual message, exit 2: nothing to watch
    session = _Session(job, out, err)
    try:
        # the files as they are before each run: a save during a run is seen after it
        seen = _signatures(session.files())
        session.attempt("first run")
        session.prewarm()
        _collect()
        seen = _also(seen, session.files())
        print(f"watching {', '.join(_short(p) for p in session.files())} "
              "(save to run again; Ctrl-C to stop)", file=out, flush=True)
        while True:
            session.window.wait(poll)
            now = _signatures(session.files())
            if now == seen:
                continue
            changed = [p for p in now if now[p] != seen.get(p)]
            seen = now
            session.attempt(", ".join(_short(p) for p in changed) + " saved")
            _collect()
            seen = _also(seen, session.files())
    except KeyboardInterrupt:
        where = f"; {session.last.out} holds the run of {session.stamp}" if session.last else ""
        print(f"\nsd: stopped watching (Ctrl-C){where}", file=err, flush=True)
        return 130


def _collect() -> None:
    """Collect garbage now, while the modeler edits, and set what survives
    aside: a full collection of what a session keeps (the parser, the parsed
    entries, the last run) takes ~0.2 s, and Python would otherwise run one
    in the middle of some later run."""
    import gc

    gc.unfreeze()
    gc.collect()
    gc.freeze()


class _Session:
    """The state kept between runs: the last good run and the files' contents."""

    def __init__(self, job: Job, out, err):
        self.job, self.out, self.err = job, out, err
        self.last: Done | None = None
        self.stamp = ""
        self.contents: dict = {}
        self.model_text: str | None = None
        self.window = _Window(job.plots)

    def prewarm(self) -> None:
        """Do now, while the modeler edits, what the first edit of an equation
        would otherwise wait for: import the parser and the compiler, and
        parse every entry of the model once (each later load then parses
        only the entries that changed)."""
        if self.last is None:
            return
        try:
            from .engine import codegen, compiler  # noqa: F401
            from .model.model import describe
            from .model.parse import parse

            describe(parse(self.last.model.source))
        except Exception:  # noqa: BLE001 - only a head start; the next run reports errors
            pass

    def files(self) -> list[Path]:
        files = [Path(self.job.model).resolve()]
        files += _scenario_files(self.job.scenario, Path(self.job.model))
        if self.last is not None:
            files += [Path(e.path) for e in self.last.model.externals]
            files += [Path(d.path) for d in self.last.model.data_files]
        return list(dict.fromkeys(files))

    def attempt(self, why: str) -> None:
        contents = _contents(self.files())
        if self.last is not None and contents == self.contents:
            print(f"[{_now()}] {why}: nothing changed", file=self.out, flush=True)
            return
        for attempt in range(3):
            try:
                done = simulate_job(self.job)
                break
            except (SdInputError, SdRuntimeError) as exc:
                again = self._rewritten(contents) if attempt < 2 else None
                if again is None:
                    self._failed(why, exc)
                    self.contents = contents
                    return
                contents = again            # it was still being written: read it again
        self._report(why, done)                 # the new run, shown before it is written
        self.window.draw(done.ds, done.plots)
        try:
            done = write_job(done)
        except (SdInputError, OSError) as exc:
            self._failed(why, SdInputError(f"cannot write the results: {exc}"))
            return
        print(f"  wrote {done.out} ({', '.join(done.names)}) {done.seconds:.2f} s after the "
              f"save was seen (cpu {done.cpu:.2f} s)", file=self.out, flush=True)
        self.contents = contents                # what this run read (a later save reruns)
        self.last = done
        self.stamp = _now()

    def _rewritten(self, contents: dict) -> dict | None:
        """The files' contents if they change within :data:`SETTLE` seconds."""
        deadline = time.monotonic() + SETTLE
        while time.monotonic() < deadline:
            time.sleep(min(POLL, SETTLE / 4))
            now = _contents(self.files())
            if now != contents:
                return now
        return None

    def _failed(self, why: str, exc: Exception) -> None:
        kind = "error" if isinstance(exc, SdInputError) else "simulation failed"
        keep = (f" The results in {self.last.out} are still those of the run of {self.stamp}."
                if self.last else "")
        print(f"[{_now()}] {why}\nsd: {kind}: {exc}\n  {keep.strip() or 'No results yet.'} "
              "Waiting for the next save.", file=self.err, flush=True)

    def _report(self, why: str, done: Done) -> None:
        lines = [f"[{_now()}] {why}: ran in {done.seconds:.2f} s (cpu {done.cpu:.2f} s) -- "
                 f"{summary(done)}"]
        text = done.model.source.text
        if self.model_text is not None and text != self.model_text:
            lines += ["  " + line for line in model_changes(self.model_text, text)]
        self.model_text = text
        if self.last is not None:
            names = list(done.plots) or most_changed(self.last.ds, done.ds, SHOWN)
            lines += ["  " + line for line in result_changes(self.last.ds, done.ds, names)]
        print("\n".join(lines), file=self.out, flush=True)


# -- what changed --------------------------------------------------------------------------------
def model_changes(before: str, after: str) -> list[str]:
    """Lines naming the equations an edit changed, added or removed."""
    from .model.entries import clean, equations_text, literal, split

    def table(text):
        found = split(clean(equations_text(text)).strip()) or []
        return {_lhs(e.equation): e for e in found if not e.header}

    old, new = table(before), table(after)
    if old.keys() == new.keys() and all(old[k].text == new[k].text for k in old):
        return ["diagram and comments only" if before != after else "no change"]
    out = []
    for name in new:
        if name not in old:
            out.append(f"added {name!r}")
        elif new[name].text != old[name].text:
            a, b = literal(old[name]), literal(new[name])
            if a and b and (new[name].units, new[name].documentation) == \
                    (old[name].units, old[name].documentation):
                out.append(f"constant {name!r}: {a[1]:g} -> {b[1]:g}")
            else:
                out.append(f"equation of {name!r} changed")
    out += [f"removed {name!r}" for name in old if name not in new]
    return out[:12] + ([f"... and {len(out) - 12} more"] if len(out) > 12 else [])


def _lhs(equation: str) -> str:
    for mark in ("=", "(", ":"):
        equation = equation.split(mark, 1)[0]
    return " ".join(equation.split()).strip('"')


def result_changes(before, after, names) -> list[str]:
    """Final value and peak of each of ``names``, previous run -> this run."""
    from ._common import number_text, time_text

    out = []
    width = max((len(n) for n in names), default=0)
    for name in names:
        if name not in after.data_vars:
            continue
        b = _series(after, name)
        tb = after.variables["time"].values
        line = f"{name:<{width}}  final {number_text(b[-1])}"
        peak = f"peak {number_text(b.max())} at {time_text(tb[int(b.argmax())])}"
        if name in before.data_vars:
            a = _series(before, name)
            ta = before.variables["time"].values
            line = (f"{name:<{width}}  final {number_text(a[-1])} -> {number_text(b[-1])}"
                    f"{_relative(a[-1], b[-1])}")
            peak = (f"peak {number_text(a.max())} at {time_text(ta[int(a.argmax())])} -> "
                    f"{number_text(b.max())} at {time_text(tb[int(b.argmax())])}")
        out.append(f"{line}   {peak}")
    return out


def _series(ds, name: str):
    """The values of ``name`` over time (its first element if subscripted);
    read from the Variable: a DataArray per variable costs ~0.3 ms."""
    import numpy as np

    var = ds.variables[name].transpose("time", ...)
    return np.asarray(var.values, dtype=float).reshape(var.shape[0], -1)[:, 0]


def most_changed(before, after, n: int) -> list[str]:
    """The ``n`` computed variables whose final value changed most (relative;
    a changed constant is named by :func:`model_changes` already)."""
    import numpy as np

    scores = []
    for name in after.data_vars:
        var = after.variables[name]
        if name not in before.data_vars or var.ndim != 1 or \
                var.attrs.get("kind") in ("constant", "control"):
            continue
        a = float(before.variables[name].values[-1])
        b = float(after.variables[name].values[-1])
        if a != b and np.isfinite(a) and np.isfinite(b):
            scores.append((abs(b - a) / max(abs(a), abs(b), 1e-300), name))
    return [name for _, name in sorted(scores, reverse=True)[:n]]


def _relative(a: float, b: float) -> str:
    if a == b:
        return " (same)"
    if a == 0:
        return ""
    return f" ({(b - a) / abs(a):+.1%})"


# -- files ---------------------------------------------------------------------------------------
def _scenario_files(spec: str | None, model: Path) -> list[Path]:
    """The files ``--scenario`` reads (as :func:`sd.scenarios.resolve` finds them)."""
    if spec is None:
        return []
    name, at, file_part = spec.partition("@")
    if at:
        return [Path(file_part).resolve()]
    if Path(spec).suffix.lower() in (".cin", ".toml"):
        return [Path(spec).resolve()]
    return sorted(p.resolve() for p in model.parent.glob("*scenarios*.toml"))


def _also(seen: dict, files) -> dict:
    """``seen`` plus the files a run added to the watch (a model's data files)."""
    new = [p for p in files if p not in seen]
    return {**seen, **_signatures(new)} if new else seen


def _signatures(files) -> dict:
    out = {}
    for p in files:
        try:
            st = os.stat(p)
            out[p] = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            out[p] = None
    return out


def _contents(files) -> dict:
    out = {}
    for p in files:
        try:
            # a save may replace the file by a link to /dev/zero or a pipe: never
            # read those (memory without end, or a wait forever)
            out[p] = hashlib.sha256(regular_bytes(p)).hexdigest()
        except OSError:
            out[p] = None
    return out


def _short(p: Path) -> str:
    try:
        return str(Path(p).relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def _now() -> str:
    return time.strftime("%H:%M:%S")


# -- the plot window -------------------------------------------------------------------------------
class _Window:
    """A window redrawn after each run, when matplotlib's backend can show one."""

    def __init__(self, variables):
        self.variables = list(variables)
        self.fig = None
        self.live = bool(self.variables) and _interactive()

    def draw(self, ds, variables) -> None:
        if not self.live or not variables:
            return
        import matplotlib.pyplot as plt

        from .plots import draw_run

        if self.fig is not None and not plt.fignum_exists(self.fig.number):
            self.live = False            # the user closed it: files only from now on
            return
        self.fig = draw_run(ds, list(variables), fig=self.fig)
        self.fig.canvas.draw_idle()
        plt.pause(0.001)

    def wait(self, seconds: float) -> None:
        if self.live and self.fig is not None:
            import matplotlib.pyplot as plt

            if plt.fignum_exists(self.fig.number):
                plt.pause(seconds)       # keeps the window responsive while waiting
                return
        time.sleep(seconds)


def _interactive() -> bool:
    """Whether matplotlib's backend (as the user configured it) shows windows."""
    if "MPLBACKEND" in os.environ and os.environ["MPLBACKEND"].lower() in ("agg", "pdf", "svg",
                                                                            "ps", "cairo",
                                                                            "template"):
        return False
    try:
        import matplotlib

        backend = matplotlib.get_backend().lower()
    except ImportError:
        return False
    return backend not in ("agg", "pdf", "svg", "ps", "cairo", "template", "pgf") and \
        not backend.startswith("module://matplotlib_inline")
