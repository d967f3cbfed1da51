"""``sd run MODEL --watch`` end to end, in a subprocess, as a modeler uses it:
save, see the new run; save a broken file, keep the last good results; fix
it; Ctrl-C. No test here measures time (``benchmarks/interactive.py`` does).
"""
from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT

TEACUP = ROOT / "tests" / "data" / "teacup.mdl"
WAIT = 120          # seconds: generous, the machine running the tests may be busy


class Watcher:
    """A running ``sd run --watch`` whose output lines are collected."""

    def __init__(self, args, cwd: Path, cache: Path):
        env = {**os.environ, "SD_CACHE_DIR": str(cache), "MPLBACKEND": "Agg",
               "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "sd", "run", *args, "--watch"],
                                     cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        self.readers = [threading.Thread(target=self._read, args=(stream, tag), daemon=True)
                        for stream, tag in ((self.proc.stdout, "out"),
                                            (self.proc.stderr, "err"))]
        for t in self.readers:
            t.start()

    def _read(self, stream, tag):
        for line in stream:
            self.lines.put((tag, line.rstrip("\n")))

    def wait_for(self, text: str, tag: str | None = None) -> str:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                got_tag, line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.seen.append(f"{got_tag}: {line}")
            if text in line and (tag is None or tag == got_tag):
                return line
        raise AssertionError(f"no {text!r} within {WAIT} s; saw:\n" + "\n".join(self.seen))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=WAIT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            for t in self.readers:
                t.join(timeout=WAIT)
            self.proc.stdout.close()
            self.proc.stderr.close()

    def drain(self) -> str:
        while True:
            try:
                tag, line = self.lines.get(timeout=1)
            except queue.Empty:
                return "\n".join(self.seen)
            self.seen.append(f"{tag}: {line}")


def _final(out: Path, name: str) -> float:
    return float(pd.read_csv(out / "results.csv", index_col=0)[name].iloc[-1])


def _save(path: Path, text: str, *, by_rename: bool = False) -> None:
    if by_rename:                          # as editors that write a copy and rename it
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    else:
        path.write_text(text)


@pytest.fixture()
def workdir(tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    shutil.copy(TEACUP, folder / "teacup.mdl")
    return folder


def test_watch_reruns_on_save_and_survives_a_broken_file(workdir, tmp_path):
    model = workdir / "teacup.mdl"
    out = workdir / "out"
    w = Watcher(["teacup.mdl", "--plot", "Teacup Temperature", "--out", "out"], workdir,
                tmp_path / "cache")
    try:
        w.wait_for("watching")
        first = _final(out, "Teacup Temperature")
        assert (out / "teacup_temperature.png").is_file()

        # a constant edit: rerun, and say what changed
        text = model.read_text()
        _save(model, text.replace("Room Temperature=\n\t70", "Room Temperature=\n\t60"))
        w.wait_for("constant 'Room Temperature': 70 -> 60")
        line = w.wait_for("Teacup Temperature  final")
        assert "->" in line and "peak" in line
        w.wait_for("wrote")
        cooler = _final(out, "Teacup Temperature")
        assert cooler < first

        # a save that leaves the file invalid: the error, and the last good results stay
        broken = model.read_text().replace(
            "(Teacup Temperature - Room Temperature) / Characteristic Time",
            "(Teacup Temperature - Room Temperature) / (Characteristic Time")
        _save(model, broken)
        error = w.wait_for("sd: error:", tag="err")
        assert "teacup.mdl:" in error              # names the file and line
        w.wait_for("still those of the run", tag="err")
        assert _final(out, "Teacup Temperature") == cooler

        # fixed by an equation edit, saved by rename: runs again
        fixed = broken.replace("/ (Characteristic Time", "/ (2 * Characteristic Time)")
        _save(model, fixed, by_rename=True)
        w.wait_for("equation of 'Heat Loss to Room' changed")
        w.wait_for("wrote")
        slower = _final(out, "Teacup Temperature")
        assert slower > cooler                     # it cools half as fast

        # the same bytes saved again: nothing to run
        _save(model, fixed)
        w.wait_for("nothing changed")
    finally:
        status = w.stop()
    log = w.drain()
    assert status == 130, log
    assert "stopped watching" in log and "Traceback" not in log
    assert _final(out, "Teacup Temperature") == slower


def test_watch_follows_the_scenario_file(workdir, tmp_path):
    (workdir / "hot.toml").write_text('[hot]\nconstants = { "Room Temperature" = 80 }\n')
    w = Watcher(["teacup.mdl", "--scenario", "hot.toml", "--out", "out"], workdir,
                tmp_path / "cache")
    try:
        w.wait_for("watching")
        assert "hot.toml" in w.seen[-1]
        before = _final(workdir / "out", "Teacup Temperature")
        (workdir / "hot.toml").write_text('[hot]\nconstants = { "Room Temperature" = 90 }\n')
        w.wait_for("hot.toml saved")
        start = len(w.seen)
        w.wait_for("wrote")
        # nothing plotted: the computed variables whose final value changed most
        listed = [line for line in w.seen[start:] if "final" in line]
        assert any("Teacup Temperature" in line for line in listed), w.seen
        assert not any("Room Temperature  " in line for line in listed), w.seen
        assert _final(workdir / "out", "Teacup Temperature") > before
    finally:
        assert w.stop() == 130


def test_watch_of_a_missing_model_is_bad_input(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sd", "run", str(tmp_path / "nope.mdl"),
                        "--watch"], capture_output=True, text=True, timeout=WAIT,
                       env={**os.environ, "SD_CACHE_DIR": str(tmp_path / "cache")})
    assert r.returncode == 2 and "Model file not found" in r.stderr


def test_the_plot_window_is_redrawn_with_each_run(tmp_path, monkeypatch):
    """With a backend that shows windows, each run redraws the one figure
    (here Agg stands in for a GUI backend; only pyplot's calls matter)."""
    import warnings

    import matplotlib
    import numpy as np

    import sd
    from sd import watch

    matplotlib.use("Agg")
    monkeypatch.setattr(watch, "_interactive", lambda: True)
    window = watch._Window(["Teacup Temperature"])
    model = tmp_path / "teacup.mdl"
    shutil.copy(TEACUP, model)
    first = sd.run(model)
    second = sd.run(model, sd.Scenario(constants={"Room Temperature": 20}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # Agg: "cannot be shown"
        window.draw(first, ("Teacup Temperature",))
        fig = window.fig
        window.draw(second, ("Teacup Temperature",))
        window.wait(0.01)
    assert window.fig is fig                     # the same window, redrawn
    [line] = fig.axes[0].get_lines()
    np.testing.assert_array_equal(line.get_ydata(), second["Teacup Temperature"].values)
    import matplotlib.pyplot as plt

    plt.close(fig)                               # the user closes the window:
    window.draw(first, ("Teacup Temperature",))  # files only from then on
    assert not window.live


def test_a_save_that_makes_the_model_a_device_or_pipe_is_not_read(tmp_path):
    """A model replaced by a link to /dev/zero made the watcher read it without
    end (4.6 GB in 4 s); a pipe blocked it. Neither is read: its content is
    unknown (None) and the next run refuses it with a message."""
    from sd.watch import _contents

    link, fifo, good = tmp_path / "zero.mdl", tmp_path / "pipe.mdl", tmp_path / "m.mdl"
    link.symlink_to("/dev/zero")
    os.mkfifo(fifo)
    good.write_text("x")
    got = _contents([link, fifo, good, tmp_path])
    assert got[link] is None and got[fifo] is None and got[tmp_path] is None
    assert isinstance(got[good], str)
