"""Broken model files get a located message and exit 2, with nothing written (issue 8).

Each file is the teacup model with one defect. The message must name the
file (and the line where the defect is), and ``sd run`` must write nothing.
Encodings: UTF-8 with or without BOM or header, and Latin-1 without header,
are read (accents kept); anything else is refused.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sd.cli import main

TEACUP = Path(__file__).parent / "data" / "teacup.mdl"
BASE = TEACUP.read_text(encoding="utf-8")

BROKEN = {
    "duplicate": (BASE.replace("Curve Output=", "Room Temperature=\n\t71\n\t~\tDegrees "
                               "Fahrenheit\n\t~\tAgain.\n\t|\n\nCurve Output="),
                  r"m\.mdl:33: 'Room Temperature' is defined twice"),
    "simultaneous": (BASE.replace("Curve Output=\n\tCooling Curve(Time)",
                                  "Curve Output=\n\tOther Output\n\t~\tDmnl\n\t~\tx\n\t|\n\n"
                                  "Other Output=\n\tCurve Output"),
                     r"m\.mdl:\d+: simultaneous equations: .*Curve Output -> Other Output"),
    "no-final-time": (BASE.replace("FINAL TIME  = 30", "FINAL TIMES  = 30"),
                      r"m\.mdl: the model has no FINAL TIME"),
    "constant-1e400": (BASE.replace("\t70\n", "\t1e400\n"),
                       r"m\.mdl:14: variable 'Room Temperature': a number is out of range"),
    "final-before-initial": (BASE.replace("FINAL TIME  = 30", "FINAL TIME  = -5"),
                             r"m\.mdl:45: FINAL TIME \(-5\) is before INITIAL TIME \(0\)"),
    "saveper-not-multiple": (BASE.replace("SAVEPER  = \n        TIME STEP", "SAVEPER  = 0.3"),
                             r"m\.mdl:\d+: SAVEPER \(0\.3\) is not a whole multiple of TIME STEP "
                             r"\(0\.125\).*Use SAVEPER = 0\.25 or 0\.375"),
    "saveper-zero": (BASE.replace("SAVEPER  = \n        TIME STEP", "SAVEPER  = 0"),
                     r"m\.mdl:\d+: SAVEPER is 0; it must be positive"),
    "time-step-zero": (BASE.replace("TIME STEP  = 0.125", "TIME STEP  = 0"),
                       r"m\.mdl:61: TIME STEP is 0; it must be positive"),
    "final-time-from-stock": (BASE.replace("FINAL TIME  = 30", "FINAL TIME  = Teacup Temperature"),
                              r"m\.mdl:\d+: FINAL TIME changes during the run .* depends on 'Teacup Temperature', "
                              r"a stock.*not supported"),
    "final-time-from-time": (BASE.replace("FINAL TIME  = 30", "FINAL TIME  = Time + 30"),
                             r"m\.mdl:\d+: FINAL TIME changes during the run .*depends on Time"),
    "too-many-steps": (BASE.replace("FINAL TIME  = 30", "FINAL TIME  = 1e9"),
                       r"m\.mdl:45: the run has 8,000,000,000 time steps .*SD_STEP_LIMIT"),
    "unknown-function": (BASE.replace("Cooling Curve(Time)", "FOOBAR FN(Time, 1)"),
                         r"m\.mdl:\d+: PySD does not implement the Vensim function\(s\) FOOBAR FN"),
    # found by red-teaming (issue 8): each was an internal error or a bare KeyError
    "unknown-reference": (BASE.replace("- Room Temperature)", "- Room Temperatur)"),
                          r"m\.mdl:8: the equation of 'Heat Loss to Room' uses 'room temperatur', "
                          r"which the model does not define\. Did you mean 'Room Temperature'"),
    "nan-is-not-a-number": (BASE.replace("\t70\n", "\tnan\n"),
                            r"m\.mdl:14: the equation of 'Room Temperature' uses 'nan'"),
    "time-defined": (BASE.replace("Room Temperature", "time"),
                     r"m\.mdl:14: 'time' is Vensim's clock \(Time\), which a model cannot define"),
    "nested-too-deeply": (BASE.replace("\t70\n", "\t" + "MAX(1, " * 150 + "70" + ")" * 150 + "\n"),
                          r"m\.mdl:14: the equation of 'Room Temperature' nests functions and "
                          r"operators more than 100 levels deep"),
    "final-time-1e308": (BASE.replace("FINAL TIME  = 30", "FINAL TIME  = 1e308")
                         .replace("INITIAL TIME  = 0", "INITIAL TIME  = -1e308"),
                         r"m\.mdl:45: the run has more than 1e308 time steps"),
    "numeric-range-1e8": (BASE.replace("Room Temperature=\n\t70", "dim: (a1-a100000000)\n\t~\t~\t|\n\n"
                                       "Room Temperature=\n\t70"),
                          r"m\.mdl:14: .*the subscript range \(a1 - a100000000\) has 100,000,000 "
                          r"elements, more than the limit of 100,000"),
    "cells-9e6": (BASE.replace("Room Temperature=\n\t70",
                               "da: (a1-a3000)\n\t~\t~\t|\n\ndb: (b1-b3000)\n\t~\t~\t|\n\n"
                               "S[da, db] = 1\n\t~\tDmnl\n\t~\tx\n\t|\n\nRoom Temperature=\n\t70"),
                  r"m\.mdl:\d+: the model holds more than 100,000 array values .*'S' alone has "
                  r"9,000,000.*SD_CELL_LIMIT"),
    "time-step-1e-320": (BASE.replace("TIME STEP  = 0.125", "TIME STEP  = 1e-320"),
                         r"m\.mdl:45: the run has more than 1e308 time steps"),
}


def test_nesting_at_the_limit_runs_on_both_engines(tmp_path, monkeypatch):
    """100 levels (the limit) go through every later step on both engines."""
    monkeypatch.setenv("SD_CACHE_DIR", str(tmp_path / "cache"))
    mdl = tmp_path / "m.mdl"
    mdl.write_text(BASE.replace("\t70\n", "\t" + "(1 + 2 * " * 50 + "70" + ")" * 50 + "\n"),
                   encoding="utf-8")
    for engine in ("fast", "pysd"):
        assert main(["run", str(mdl), "--engine", engine, "--out", str(tmp_path / engine)]) == 0
    fast = pd.read_csv(tmp_path / "fast" / "results.csv")
    pysd = pd.read_csv(tmp_path / "pysd" / "results.csv")
    # x <- 1 + 2 x, 50 times from 70: 71 * 2**50 - 1 (beyond 2**53: float rounding)
    expected = 71 * 2 ** 50 - 1
    assert fast["Room Temperature"].iloc[0] == pytest.approx(expected, rel=1e-12)
    assert pysd["Room Temperature"].iloc[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("case", list(BROKEN))
@pytest.mark.parametrize("engine", ["fast", "pysd"])
def test_broken_file_is_a_located_message(case, engine, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SD_CACHE_DIR", str(tmp_path / "cache"))
    text, pattern = BROKEN[case]
    mdl = tmp_path / "m.mdl"
    mdl.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    assert main(["run", str(mdl), "--engine", engine, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sd: error: ") and "internal error" not in err
    import re

    assert re.search(pattern, err), err
    assert not out.exists()


@pytest.mark.parametrize("setting, pattern", [
    ("TIME STEP=0", r"TIME STEP \(in --set\) is 0"),
    ("SAVEPER=0.3", r"SAVEPER \(in --set\) \(0\.3\) is not a whole multiple"),
    ("FINAL TIME=-1", r"FINAL TIME \(in --set\) \(-1\) is before INITIAL TIME"),
])
def test_time_overrides_are_checked_like_the_model(setting, pattern, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(TEACUP), "--set", setting, "--out", str(out)]) == 2
    import re

    assert re.search(pattern, capsys.readouterr().err)
    assert not out.exists()


def test_step_limit_can_be_raised(tmp_path, monkeypatch, capsys):
    mdl = tmp_path / "m.mdl"
    mdl.write_text(BASE.replace("FINAL TIME  = 30", "FINAL TIME  = 20000"), encoding="utf-8")
    assert main(["run", str(mdl), "--out", str(tmp_path / "a")]) == 2   # 160,000 x 10 > 1e6
    capsys.readouterr()
    monkeypatch.setenv("SD_STEP_LIMIT", "2e6")
    assert main(["run", str(mdl), "--out", str(tmp_path / "b")]) == 0


@pytest.fixture(autouse=True)
def _small_limit(monkeypatch):
    monkeypatch.setenv("SD_STEP_LIMIT", "1e6")


# -- encodings -----------------------------------------------------------------------------
def _info(mdl: Path, capsys) -> tuple[int, str, str]:
    code = main(["info", str(mdl)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_latin1_file_keeps_its_accents(tmp_path, capsys):
    mdl = tmp_path / "m.mdl"
    mdl.write_bytes(BASE.replace("{UTF-8}\n", "")
                    .replace("Temperature of the room.", "Température de la pièce.")
                    .encode("latin-1"))
    code, out, _ = _info(mdl, capsys)
    assert code == 0 and "Température de la pièce." in out


def test_utf8_with_bom_is_read(tmp_path, capsys):
    mdl = tmp_path / "m.mdl"
    mdl.write_bytes(b"\xef\xbb\xbf" + BASE.replace("room.", "pièce.").encode("utf-8"))
    code, out, _ = _info(mdl, capsys)
    assert code == 0 and "pièce." in out
    assert main(["run", str(mdl), "--out", str(tmp_path / "o")]) == 0
    ref = pd.read_csv(tmp_path / "o" / "results.csv")
    assert abs(ref["Teacup Temperature"].iloc[0] - 180) < 1e-12


@pytest.mark.parametrize("data, pattern", [
    (BASE.replace("{UTF-8}", "{UTF-7}").encode(), r"m\.mdl:1: the file declares the encoding "
                                                  r"\{UTF-7\}"),
    (BASE.replace("room.", "pi\xe8ce.").encode("latin-1"),
     r"m\.mdl:17: the file says it is UTF-8 but byte \d+ is not valid UTF-8"),
    (BASE.encode("utf-16"), r"m\.mdl: the file is UTF-16"),
    (b"\x00\x01binary", r"m\.mdl: not a text file"),
])
def test_other_encodings_are_refused(data, pattern, tmp_path, capsys):
    import re

    mdl = tmp_path / "m.mdl"
    mdl.write_bytes(data)
    code, _, err = _info(mdl, capsys)
    assert code == 2 and re.search(pattern, err), err


@pytest.mark.parametrize("kind", ["folder", "fifo", "device"])
def test_a_model_path_that_is_not_a_file_is_named_as_such(kind, tmp_path, capsys):
    """A folder, a named pipe or a link to /dev/zero called m.mdl: 'not found, did you
    mean m.mdl?' was the message (and a pipe must never be opened: it blocks)."""
    import os

    mdl = tmp_path / "m.mdl"
    {"folder": mdl.mkdir, "fifo": lambda: os.mkfifo(mdl),
     "device": lambda: mdl.symlink_to("/dev/zero")}[kind]()
    assert main(["info", str(mdl)]) == 2
    err = capsys.readouterr().err
    assert "m.mdl: is " in err and "Did you mean" not in err, err


@pytest.mark.parametrize("kind", ["folder", "fifo", "device"])
def test_an_external_file_that_is_not_a_file_is_named_as_such(kind, tmp_path, capsys):
    """GET DIRECT pointed at a folder, a pipe or a device said 'does not exist' (it is never
    opened: a pipe would block)."""
    import os

    data = tmp_path / "data.csv"
    {"folder": data.mkdir, "fifo": lambda: os.mkfifo(data),
     "device": lambda: data.symlink_to("/dev/zero")}[kind]()
    mdl = tmp_path / "m.mdl"
    mdl.write_text(TEACUP.read_text(encoding="utf-8").replace(
        "Room Temperature=\n\t70", "Room Temperature=\n\tGET DIRECT CONSTANTS('data.csv', ',', 'B2')",
        1), encoding="utf-8")
    assert main(["info", str(mdl)]) == 2
    err = capsys.readouterr().err
    expected = "is a folder" if kind == "folder" else "is not a regular file"
    assert f"which {expected}" in err and "does not exist" not in err, err
