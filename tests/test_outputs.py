"""Outputs only where asked, and located messages for broken specs (issue 8).

Names read from files (scenario tables, metrics, variables) that try to
escape the output folder (``..``, absolute paths, ``/``, NUL, very long and
reserved names) are tried through every command that writes; a canary folder
around the working folder is listed before and after, and nothing may appear
outside the output folder. Broken inputs (an ``--out`` that is a file,
non-UTF-8 files, non-finite or out-of-range numbers, two metrics that would
share a file, a Dask address where no scheduler answers) must each give a
message naming the file and key, exit status 2 and nothing written.

Most cases call :func:`sd.cli.main` in this process (the same entry point as
the ``sd`` command, minus the interpreter start-up); the subprocess tests at
the end check the real command's exit status and stderr for one case of each
class.
"""
from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sd._common import distinct_names, netcdf_name, safe_name
from sd.cli import main
from sd.errors import SdInputError

TEACUP = Path(__file__).parent / "data" / "teacup.mdl"

HOSTILE_NAMES = ["../../..", "../../canary/x", "/tmp/sd-abs-escape", "a/../../b", "a\u0000b",
                 "x" * 3000, "CON", "nul.txt", "..", ".", "", "\\..\\..\\w", "\u2028\u202e",
                 "-rf", " ../ "]


def _files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A working folder two levels inside a canary folder (``tmp_path``)."""
    cwd = tmp_path / "canary" / "a" / "work"
    cwd.mkdir(parents=True)
    (cwd / "teacup.mdl").write_bytes(TEACUP.read_bytes())
    monkeypatch.chdir(cwd)
    return cwd


def _toml_key(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"').replace("\u0000", "\\u0000") \
        .replace("\u2028", "\\u2028").replace("\u202e", "\\u202e") + '"'


# -- the one rule: safe_name -----------------------------------------------------------
@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_safe_name_is_one_harmless_component(name):
    for lower in (False, True):
        out = safe_name(name, lower=lower)
        assert out and "/" not in out and "\\" not in out and "\x00" not in out
        assert not out.startswith(".") and not out.startswith("-")
        assert out.split(".")[0].lower() not in {"con", "nul", "prn", "aux"}
        assert len(out.encode("utf-8")) <= 96
        assert out.isprintable()


def test_safe_name_keeps_distinct_long_names_distinct():
    a, b = "y" * 500 + "a", "y" * 500 + "b"
    assert safe_name(a) != safe_name(b)
    assert safe_name("Propane Share", lower=True) == "propane_share"


def test_netcdf_names_never_hold_a_path_separator():
    for name in ['"../Tea/cup"', "a/b", '"quoted"', "x\x00"]:
        out = netcdf_name(name)
        assert "/" not in out and out[0].isalnum() or out[0] == "_"


# -- sd run: scenario names from a TOML ------------------------------------------------
@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_scenario_names_never_escape_the_results_folder(work, tmp_path, name, capsys):
    canary = tmp_path / "canary"
    (work / "sc.toml").write_text(f"[{_toml_key(name)}]\nconstants = {{ \"Room Temperature\" = 60 }}\n",
                                  encoding="utf-8")
    before = _files(canary)
    assert main(["run", "teacup.mdl", "--scenario", "sc.toml"]) == 0, capsys.readouterr().err
    new = _files(canary) - before
    results = Path("a") / "work" / "results"
    # everything new lies in one folder directly under results/
    assert new and all(p.parts[:3] == results.parts for p in new), sorted(map(str, new))
    folders = {p.parts[3] for p in new if len(p.parts) > 3}
    assert len(folders) == 1 and (work / "results" / folders.pop() / "results.csv").is_file()
    assert not Path("/tmp/sd-abs-escape").exists()


def test_plot_names_from_the_model_stay_in_out(work, tmp_path, capsys):
    odd = TEACUP.read_text(encoding="utf-8").replace("Teacup Temperature", '"../../Tea/cup"')
    (work / "odd.mdl").write_text(odd, encoding="utf-8")
    before = _files(tmp_path / "canary")
    assert main(["run", "odd.mdl", "--plot", '"../../Tea/cup"', "--out", "o"]) == 0, \
        capsys.readouterr().err
    new = _files(tmp_path / "canary") - before
    assert all(p.parts[:3] == ("a", "work", "o") for p in new), sorted(map(str, new))
    assert (work / "o" / "tea_cup.png").is_file()
    import xarray as xr  # the NetCDF file holds the variable ("/" is NetCDF's separator)

    with xr.open_dataset(work / "o" / "results.nc") as ds:
        assert any(v.attrs.get("vensim_name") == '"../../Tea/cup"' for v in ds.data_vars.values())


def test_two_plots_one_file_refused_before_the_run(work, capsys):
    odd = TEACUP.read_text(encoding="utf-8").replace("Heat Loss to Room", '"Heat-Loss to Room"')
    odd = odd.replace("Room Temperature", "Heat Loss to Room")
    (work / "odd.mdl").write_text(odd, encoding="utf-8")
    rc = main(["run", "odd.mdl", "--plot", '"Heat-Loss to Room"', "Heat Loss to Room",
               "--out", "o"])
    err = capsys.readouterr().err
    assert rc == 2 and "--plot" in err and "heat_loss_to_room.png" in err
    assert not (work / "o").exists()


# -- sd sensitivity: metric names ---------------------------------------------------------
SPEC = """model = "teacup.mdl"
[sampling]
n = 4
seed = 1
chunk_size = 2
[output]
variables = ["Teacup Temperature"]
[parameters]
"Characteristic Time" = {{ distribution = "uniform", low = 5, high = 15 }}
[metrics]
{metrics}
"""


def _spec(work: Path, metrics: str, name="s.toml", **replace) -> Path:
    text = SPEC.format(metrics=metrics)
    for old, new in replace.items():
        text = text.replace(old.replace("_", " "), new)
    (work / name).write_text(text, encoding="utf-8")
    return work / name


def test_metric_names_never_escape_out(work, tmp_path, capsys):
    metrics = "\n".join(f'{_toml_key(n)} = {{ variable = "Teacup Temperature", kind = "final" }}'
                        for n in ["../../../x", "/tmp/sd-abs-escape", "CON", "y" * 3000])
    _spec(work, metrics)
    before = _files(tmp_path / "canary")
    assert main(["sensitivity", "s.toml", "--out", "o", "--no-progress"]) == 0, \
        capsys.readouterr().err
    new = _files(tmp_path / "canary") - before
    assert all(p.parts[:3] == ("a", "work", "o") for p in new), sorted(map(str, new))
    assert len([p for p in new if p.name.startswith("hist_")]) == 4
    assert not [p for p in new if p.name.startswith(".")]  # no scratch left behind


@pytest.mark.parametrize("a, b", [("peak share", "peak_share"), ("Peak", "peak"),
                                  ("a/b", "a-b"), ("a.b", "A B")])
def test_metric_names_sharing_a_file_are_refused_before_any_run(work, a, b, capsys, monkeypatch):
    metrics = (f'{_toml_key(a)} = {{ variable = "Teacup Temperature", kind = "final" }}\n'
               f'{_toml_key(b)} = {{ variable = "Teacup Temperature", kind = "max" }}\n')
    _spec(work, metrics)
    import sd.sensitivity_analysis as sensitivity

    # prepare() comes before any run: the refusal must come before it
    monkeypatch.setattr(sensitivity, "prepare", lambda *a, **k: pytest.fail("a run was prepared"))
    rc = main(["sensitivity", "s.toml", "--out", "o", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "s.toml [metrics]" in err and "would both be written as hist_" in err
    assert not (work / "o").exists()


def test_distinct_names_refuses_only_real_collisions():
    assert distinct_names(["a b", "c"], "{}.png", "w") == {"a b": "a_b.png", "c": "c.png"}
    with pytest.raises(SdInputError, match="'a b' and 'A_B' would both be written as a_b.png"):
        distinct_names(["a b", "A_B"], "{}.png", "w")


# -- located messages, exit 2, nothing written -------------------------------------------
def _calibration(top: str = "", optimizer: str = "", confidence: str = "",
                 data: str = 'data = "obs.csv"', parameters: str | None = None) -> dict:
    """Files of a small calibration of the teacup (``c.toml`` and its data)."""
    params = parameters or '[parameters]\n"Characteristic Time" = {low = 2, high = 20, init = 10}'
    return {"obs.csv": "variable,time,value,sigma\nTeacup Temperature,10,107,1\n",
            "c.toml": f'model = "teacup.mdl"\n{data}\n{top}\n{params}\n[optimizer]\n'
                      f'method = "least_squares"\n{optimizer or "starts = 1"}\n[confidence]\n'
                      f'{confidence}\n'}


FINAL = '"final" = { variable = "Teacup Temperature", kind = "final" }'

BROKEN = {
    # name: (files to write, argv, text the message must hold)
    "out-is-file-run": ({"f": "x"}, ["run", "teacup.mdl", "--out", "f"], "--out f: is an existing file"),
    "out-under-file": ({"f": "x"}, ["run", "teacup.mdl", "--out", "f/sub"], "f is a file"),
    "out-is-file-sens": ({"f": "x", "s.toml": SPEC.format(metrics=FINAL)},
                         ["sensitivity", "s.toml", "--out", "f"], "--out f: is an existing file"),
    "out-is-file-compare": ({"f": "x", "sc.toml": "[s]\n"},
                            ["compare", "teacup.mdl", "sc.toml", "--out", "f"], "--out f: is an existing file"),
    "out-is-file-calibrate": ({"f": "x", **_calibration()}, ["calibrate", "c.toml", "--out", "f"],
                              "--out f: is an existing file"),
    "diagram-to-folder": ({"d.png/x": "x"}, ["diagram", "teacup.mdl", "-o", "d.png"], "-o d.png: is a folder"),
    "toml-latin1": ({"sc.toml": b"[caf\xe9]\n"}, ["run", "teacup.mdl", "--scenario", "sc.toml"],
                    "sc.toml:1:5: Scenario file is not UTF-8"),
    "toml-utf16": ({"sc.toml": "[s]\n".encode("utf-16")}, ["run", "teacup.mdl", "--scenario", "sc.toml"],
                   "sc.toml:1: Scenario file is UTF-16"),
    "toml-deep": ({"sc.toml": "[s]\nx = " + "[" * 50000 + "]" * 50000 + "\n"},
                  ["run", "teacup.mdl", "--scenario", "sc.toml"], "sc.toml: not a scenario file"),
    "toml-base-list": ({"sc.toml": "[s]\nbase = [1]\n"}, ["run", "teacup.mdl", "--scenario", "sc.toml"],
                       "sc.toml [s]: base must be the name"),
    "csv-latin1": ({"d.csv": b"variable,time,value,sigma\nTeacup Temperature,10,1\xe90,1\n",
                    **_calibration()},
                   ["calibrate", "c.toml", "--data", "d.csv"], "d.csv:2:24: Documented-outcomes file is not UTF-8"),
    "csv-nul": ({"d.csv": b"variable,time,value,sigma\nTeacup Temperature,10,1\x000,1\n", **_calibration()},
                ["calibrate", "c.toml", "--data", "d.csv"], "d.csv:2: Documented-outcomes file is a binary"),
    "cin-bad-pair": ({"x.cin": "Cooling Curve((e,1),(2,3))\n"}, ["run", "teacup.mdl", "--scenario", "x.cin"],
                     "x.cin:1: expected a number, got 'e'"),
    "tests-deep": ({"t.toml": "[[test]]\nname = 't'\nexpect = ['" + "(" * 3000 + "1" + ")" * 3000
                    + " >= 0']\n"}, ["check", "teacup.mdl", "--tests", "t.toml"],
                   "t.toml [[test]] 't' expect[0]: condition"),
    "tests-time-step-0": ({"t.toml": "[[test]]\nname = 't'\ntime = { time_step = 0 }\n"
                                     "expect = ['\"Teacup Temperature\" >= 0']\n"},
                          ["check", "teacup.mdl", "--tests", "t.toml"],
                          "TIME STEP (in t.toml [[test]] 't') is 0"),
    "cin-nul": ({"x.cin": b"Room Temperature = 60\x00\n"}, ["run", "teacup.mdl", "--scenario", "x.cin"],
                "x.cin:1: Changes file is a binary file"),
    "seed-inf": ({"s.toml": SPEC.format(metrics=FINAL).replace("seed = 1", "seed = inf")},
                 ["sensitivity", "s.toml"], "s.toml [sampling] seed = inf must be a finite whole number"),
    "seed-huge": ({"s.toml": SPEC.format(metrics=FINAL).replace("seed = 1", "seed = 1e30")},
                  ["sensitivity", "s.toml"], "s.toml [sampling] seed = 1e+30 must be at most 4294967295"),
    "n-nan": ({"s.toml": SPEC.format(metrics=FINAL).replace("n = 4", "n = nan")},
              ["sensitivity", "s.toml"], "s.toml [sampling] n = nan must be a finite whole number"),
    "n-huge": ({"s.toml": SPEC.format(metrics=FINAL).replace("n = 4", "n = 1e12")},
               ["sensitivity", "s.toml"], "s.toml [sampling] n: 1000000000000 runs, beyond the limit"),
    "samples-huge": ({"s.toml": SPEC.format(metrics=FINAL)},
                     ["sensitivity", "s.toml", "--samples", "1000000000000"], "beyond the limit"),
    "every-inf": ({"s.toml": SPEC.format(metrics=FINAL).replace("[output]", "[output]\nevery = inf")},
                  ["sensitivity", "s.toml"], "s.toml [output] every: expected a positive (finite)"),
    "sobol-huge": ({"s.toml": SPEC.format(metrics=FINAL) + "[sobol]\nn = 1099511627776\n"},
                   ["sensitivity", "s.toml"], "s.toml [sobol]: 4398046511104 runs"),   # 2^40
    "distribution-inf": ({"s.toml": SPEC.format(metrics=FINAL).replace(
        "low = 5, high = 15", "low = -1e308, high = 1e308")}, ["sensitivity", "s.toml"],
        "'Characteristic Time': uniform(low=-1e+308, high=1e+308) reaches values that are not finite"),
    "metric-time-outside": ({"s.toml": SPEC.format(
        metrics='m = { variable = "Teacup Temperature", kind = "at", time = 1e300 }')},
        ["sensitivity", "s.toml"], "s.toml [metrics]: metric 'm': time 1e+300 is outside"),
    "metric-name-nul": ({"s.toml": SPEC.format(
        metrics='"a\\u0000b" = { variable = "Teacup Temperature", kind = "final" }')},
        ["sensitivity", "s.toml"], "s.toml [metrics] 'a\\x00b': a metric name must be printable"),
    "cal-seed-inf": (_calibration(top="seed = inf"), ["calibrate", "c.toml"],
                     "c.toml: seed = inf must be a finite"),
    "cal-seed-negative": (_calibration(top="seed = -1"), ["calibrate", "c.toml"],
                          "c.toml: seed = -1 must be at least 0"),
    "cal-popsize-nan": (_calibration(optimizer="popsize = nan"), ["calibrate", "c.toml"],
                        "c.toml: [optimizer] popsize = nan must be a finite whole number"),
    "cal-starts-huge": (_calibration(optimizer="starts = 1e12"), ["calibrate", "c.toml"],
                        "c.toml: [optimizer] starts = 1000000000000.0 must be at most 10000"),
    "cal-mcmc-huge": (_calibration(confidence="mcmc_steps = 1e6\nmcmc_walkers = 1e6"),
                      ["calibrate", "c.toml"],
                      "mcmc_steps x mcmc_walkers = 1000000 x 1000000 runs, beyond the limit"),
    "set-draws-huge": ({"obs.csv": "variable,time,value,sigma\nTeacup Temperature,10,107,1\n",
                        "c.toml": 'model = "teacup.mdl"\ndata = "obs.csv"\n[uncertain]\nranges = '
                                  '{ "Characteristic Time" = [2, 20] }\n[set]\ndraws = 1e12\n'},
                       ["calibrate", "c.toml"], "c.toml: [set] draws = 1000000000000.0 must be at most"),
    "voc-seed-inf": ({"p.voc": "2 <= Characteristic Time = 10 <= 20\n:SEED=inf\n",
                      **_calibration(parameters='parameters = "p.voc"')},
                     ["calibrate", "c.toml"], "p.voc:2: :SEED: expected a finite number"),
    "vpd-weight-inf": ({"p.vpd": "*C\nTeacup Temperature|Obs/inf\n", "pd.csv": "time,Obs\n10,107\n",
                        **_calibration(data='data = "p.vpd"\ndata_file = "pd.csv"')},
                       ["calibrate", "c.toml"], "p.vpd:2: weight: expected a finite number"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_input_gets_a_located_message_and_writes_nothing(work, case, capsys):
    files, argv, expected = BROKEN[case]
    for name, content in files.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    before = _files(work)
    rc = main(argv + (["--no-progress"] if argv[0] in ("sensitivity", "calibrate") else []))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert expected in err, err
    assert "internal error" not in err and "Traceback" not in err
    assert _files(work) == before  # nothing written, not even an empty folder


# -- Latin-1 where Vensim writes it ------------------------------------------------------
def test_latin1_cin_and_voc_are_read_with_their_accents(work, capsys):
    (work / "l.cin").write_bytes(b":r\xe9glage de la salle (Vensim, Latin-1)\nRoom Temperature = 61\n")
    assert main(["run", "teacup.mdl", "--scenario", "l.cin", "--out", "o"]) == 0, \
        capsys.readouterr().err
    import pandas as pd

    assert pd.read_csv(work / "o" / "results.csv")["Room Temperature"].iloc[0] == 61
    from sd.calibration.vensim_files import read_voc
    from sd.scenarios import load_cin

    (work / "p.voc").write_bytes(b"; param\xe8tres\n2 <= Caract\xe9ristique = 10 <= 20\n")
    params, _ = read_voc(work / "p.voc")
    assert params[0][0] == "Caractéristique"
    (work / "n.cin").write_bytes(b"Temp\xe9rature = 1\n")
    assert "Température" in load_cin(work / "n.cin").constants


# -- network waits end -------------------------------------------------------------------
@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never says anything."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


@pytest.fixture
def http_server():
    """A web server (what a Dask dashboard port is)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("server", ["silent_server", "http_server"])
def test_dask_address_that_is_not_a_scheduler_times_out_with_a_message(work, server, request,
                                                                       monkeypatch, capsys):
    address = request.getfixturevalue(server)
    import sd.simulation.chunks as chunks

    monkeypatch.setattr(chunks, "CONNECT_TIMEOUT", 1)  # the default is 5 s
    _spec(work, FINAL)
    started = time.perf_counter()
    rc = main(["sensitivity", "s.toml", "--out", "o", "--no-progress", "--dask", address])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert f"cannot reach the Dask scheduler at {address}" in err and "dashboard" in err
    # the load and the deadline (1 s per stage), never the minutes distributed would wait
    assert time.perf_counter() - started < 60
    assert not (work / "o").exists()


# -- the real command -----------------------------------------------------------------------
@pytest.mark.parametrize("case", ["out-is-file-run", "toml-latin1", "seed-inf"])
def test_the_sd_command_exits_2_with_the_message(work, case):
    files, argv, expected = BROKEN[case]
    for name, content in files.items():
        (work / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-m", "sd", *argv], capture_output=True, text=True,
                          cwd=work, timeout=300, env=env)
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr and "Traceback" not in proc.stderr


def test_a_condition_dividing_by_zero_is_judged_not_a_crash(work, capsys):
    (work / "t.toml").write_text("[[test]]\nname = 'z'\nexpect = ['1 / 0 >= 0', "
                                 "'\"Teacup Temperature\" / 0 < 0']\n", encoding="utf-8")
    rc = main(["check", "teacup.mdl", "--tests", "t.toml", "--no-sources"])
    out = capsys.readouterr()
    assert rc == 1 and "internal error" not in out.err  # 1/0 is inf: the second check fails
    assert "PASS z: 1 / 0 >= 0" in out.out and "FAIL z: \"Teacup Temperature\" / 0 < 0" in out.out
