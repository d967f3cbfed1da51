"""Vensim's Reality Check equations written in the .mdl (``:TEST INPUT:``,
``:THE CONDITION: ... :IMPLIES: ...``): parsed as data, run by ``sd check``,
accepted on the diagram, ignored by ``sd run`` on both engines."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TEST_MODELS, need_shared
from sd.errors import SdInputError
from sd.model.reality_syntax import read_reality_checks

DATA = Path(__file__).parent / "data"
CRAFTED = DATA / "reality_checks.mdl"


def sd(*args):
    return subprocess.run([sys.executable, "-m", "sd", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def _variant(tmp_path, old: str, new: str) -> Path:
    text = CRAFTED.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "variant.mdl"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


# -- parsing ------------------------------------------------------------------------
def test_sdxorg_model_parses_as_vensim_writes_it():
    path = need_shared(TEST_MODELS / "reality_checks" / "test_reality_checks.mdl")
    defs = read_reality_checks(path)
    (ti,) = defs.test_inputs
    assert (ti.name, ti.subscripts, ti.line) == ("productivity_to_zero", ("sectors",), 8)
    assert ti.settings[0].target == ("ref", "productivity", ("sectors",))
    assert ti.settings[0].value[:2] == ("call", "RC STEP")
    by_name = {c.name: c for c in defs.constraints}
    assert by_name["no_workers_no_output"].condition == \
        ("cmp", "=", ("ref", "workers", ("a",)), ("num", 0.0))
    assert by_name["no_productivity_no_output"].condition == \
        ("test", "productivity_to_zero", ("sectors",))
    # the continuation line inside output[sectors\ ...] is joined
    cons = by_name["no_productivity_no_output"].consequence
    assert cons[2] == ("ref", "output", ("sectors",)) and cons[3][1] == "RC STEP CHECK"


def test_logic_precedence_and_time():
    defs = read_reality_checks(CRAFTED)
    idle = {c.name: c for c in defs.constraints}["idle late"]
    assert idle.condition[0] == "and"
    assert idle.condition[1] == ("cmp", ">=", ("ref", "Time", ()), ("num", 5.0))


# -- sd check -----------------------------------------------------------------------
def test_sdxorg_reality_checks_model():
    """Vensim passes both constraints of this model: output = workers * hours *
    productivity is 0 once productivity steps to 0 (RC STEP on a subscripted
    constant, at INITIAL TIME + TIME STEP = 2, checked after the 0.5 grace) and
    when workers[a] is 0. The diagram's reality-check names are not strays."""
    path = need_shared(TEST_MODELS / "reality_checks" / "test_reality_checks.mdl")
    r = sd("check", path, "--no-sources")
    out = r.stdout
    assert "DIAGRAM: ok" in out, out
    assert "REALITY CHECKS (the model's Reality Check equations): 2 passed, 0 failed\n" in out
    assert "PASS no_productivity_no_output (line 2)" in out
    assert "PASS no_workers_no_output (line 13)" in out
    assert "Traceback" not in r.stderr


def test_sdxorg_model_with_a_flaw_fails_both(tmp_path):
    """The same model with output = ... + 1: both constraints must fail, at the
    times Vensim's semantics give (the RC STEP CHECK only from 2 + 0.5)."""
    path = need_shared(TEST_MODELS / "reality_checks" / "test_reality_checks.mdl")
    text = path.read_text(encoding="utf-8")
    old = "workers[sectors]*working_hours[sectors]*productivity[sectors]"
    assert old in text
    mutated = tmp_path / "flawed.mdl"
    mutated.write_text(text.replace(old, old + "+1"), encoding="utf-8")
    out = sd("check", mutated, "--no-sources").stdout
    assert "FAIL no_productivity_no_output (line 2): first violated at time 3: output[a] = 1" \
        in out, out
    assert "FAIL no_workers_no_output (line 13): first violated at time 1: output[a] = 1" in out


def test_subscripted_path_needs_every_element():
    import numpy as np
    import pandas as pd

    from sd.simulation import run_many

    path = need_shared(TEST_MODELS / "reality_checks" / "test_reality_checks.mdl")
    times = np.array([1.0, 4.0])
    with pytest.raises(SdInputError, match="every element needs a path; missing productivity"):
        run_many(path, pd.DataFrame(index=[0]), engine="fast",
                 forced={"productivity[a]": (times, np.zeros((1, 2)))})
    with pytest.raises(SdInputError, match="held element by element"):
        run_many(path, pd.DataFrame(index=[0]), engine="fast",
                 forced={"productivity": (times, np.zeros((1, 2)))})
    forced = {f"productivity[{e}]": (times, np.full((1, 2), 2.0)) for e in "abcd"}
    ds = run_many(path, pd.DataFrame(index=[0]), engine="fast", forced=forced)
    np.testing.assert_allclose(ds["output"].isel(run=0, time=0).values,
                               2.0 * np.array([4, 5, 6, 9]) * np.array([2, 5, 9, 3]), rtol=1e-12)


def test_crafted_model_fails_naming_the_constraint():
    r = sd("check", CRAFTED)
    out = r.stdout
    assert r.returncode == 1, out + r.stderr
    # everything else about the model is clean: the exit 1 is the failed constraint
    for section in ("UNITS: ok", "DOCUMENTATION: ok", "DIAGRAM: ok"):
        assert section in out
    assert "FAIL no demand no shipments (line 56): first violated at time 0: Shipments = 1000" \
        in out
    assert "PASS no workforce no production (line 50)" in out
    assert "PASS idle late (line 62)" in out
    assert "NOT CHECKED production overshoots (line 68): not checked: :CROSSING:" in out
    assert "2 passed, 1 failed, 1 not checked" in out


def test_crafted_model_passes_once_the_flaw_is_fixed(tmp_path):
    path = _variant(tmp_path, "Shipments=\n\tProduction", "Shipments=\n\tMIN(Production, Demand)")
    arrow = "1,11,4,6,0,0,0,0,0,64,0,-1--1--1,,1|(0,0)|\n"
    path.write_text(path.read_text(encoding="utf-8").replace(
        arrow, arrow + arrow.replace("1,11,4,6", "1,12,5,6")), encoding="utf-8")
    r = sd("check", path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS no demand no shipments" in r.stdout


def test_forced_paths_are_really_applied(tmp_path):
    """Production that does not vanish without workers, or with zero
    productivity, is caught: the RC STEP on Workforce and the constant set to 0
    reach the run (a check that never forced anything would pass here)."""
    path = _variant(tmp_path, "Workforce * Productivity", "Workforce * Productivity + 1")
    out = sd("check", path).stdout
    assert "FAIL no workforce no production" in out
    # RC STEP CHECK(0.5, ...): from RC START TIME (2) + grace 0.5 on, i.e. time 2.5
    assert "FAIL no workforce no production (line 50): first violated at time 2.5: " \
           "Production = 1" in out, out
    # the time condition: checked from time 5 only
    assert "FAIL idle late (line 62): first violated at time 5: Production = 1" in out


def test_combined_with_a_tests_file(tmp_path):
    tests = tmp_path / "t.toml"
    tests.write_text('[[test]]\nname = "no demand"\nconstants = { Demand = 0 }\n'
                     "expect = ['Production >= 0']\n", encoding="utf-8")
    r = sd("check", CRAFTED, "--tests", tests)
    assert r.returncode == 1
    assert f"REALITY CHECKS (the model's Reality Check equations; {tests})" in r.stdout
    assert "PASS no demand: Production >= 0" in r.stdout


def test_unknown_name_is_bad_input_with_suggestion(tmp_path):
    path = _variant(tmp_path, "Demand = 0 :IMPLIES: Shipments = 0",
                    "Demand = 0 :IMPLIES: Shipment = 0")
    r = sd("check", path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Shipment" in r.stderr and "Did you mean 'Shipments'" in r.stderr
    assert "variant.mdl:56" in r.stderr
    assert "Traceback" not in r.stderr


# -- hostile text -------------------------------------------------------------------------
HOSTILE = [
    'Demand = 0 :IMPLIES: __import__("os").system("touch PWNED") = 0',
    "Demand = 0 :IMPLIES: Shipments = 0; import os",
    "Demand = 0 :IMPLIES: \"x\\\" ) or __import__('os')\" = 0",
    "Demand = 0 :IMPLIES: Shipments = __import__('os').getcwd()",
    "Demand = 0 :IMPLIES: Shipments = 0 :AND: (((((((((",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_conditions_are_refused_without_running_code(tmp_path, text, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _variant(tmp_path, "Demand = 0 :IMPLIES: Shipments = 0", text)
    r = subprocess.run([sys.executable, "-m", "sd", "check", str(path)], capture_output=True,
                       text=True, timeout=300, cwd=tmp_path)
    assert not (tmp_path / "PWNED").exists()
    assert "Traceback" not in r.stderr
    assert r.returncode in (1, 2), r.stdout + r.stderr
    if r.returncode == 1:  # parsed as data: reported, never evaluated
        assert "no demand no shipments" in r.stdout


def test_hostile_names_and_newlines_stay_data(tmp_path):
    text = CRAFTED.read_text(encoding="utf-8").replace(
        "idle late:THE CONDITION:",
        '"idle\\" late\n__import__(\'os\').system(\'touch PWNED\')":THE CONDITION:')
    path = tmp_path / "names.mdl"
    path.write_text(text, encoding="utf-8")
    try:
        defs = read_reality_checks(path)
        assert any("__import__" in c.name for c in defs.constraints)
    except SdInputError as exc:
        assert "names.mdl" in str(exc)
    assert not Path("PWNED").exists() and not (tmp_path / "PWNED").exists()


def test_too_deep_nesting_is_refused(tmp_path):
    path = _variant(tmp_path, "Demand = 0 :IMPLIES: Shipments = 0",
                    "Demand = 0 :IMPLIES: " + "(" * 500 + "Shipments" + ")" * 500 + " = 0")
    with pytest.raises(SdInputError, match="nests parentheses too deeply"):
        read_reality_checks(path)


# -- runs ignore the checks -----------------------------------------------------------------
@pytest.mark.parametrize("engine", ["fast", "pysd"])
def test_runs_ignore_the_check_equations(engine):
    from sd.simulation import run

    ds = run(CRAFTED, engine=engine)
    assert set(ds.data_vars) >= {"Production", "Shipments", "Workforce"}
    assert not any("no demand" in str(v).lower() for v in ds.data_vars)
    assert float(ds["Production"].isel(time=-1)) == pytest.approx(1000.0, rel=1e-12)


def test_sd_run_and_info_on_the_sdxorg_model(tmp_path):
    path = need_shared(TEST_MODELS / "reality_checks" / "test_reality_checks.mdl")
    r = sd("run", path, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "results.csv").is_file()
    r = sd("info", path)
    assert r.returncode == 0 and "output" in r.stdout, r.stderr


def test_or_is_tested_passively_and_says_when_nothing_was_tested(tmp_path):
    """Under :OR: nothing is forced (which side would Vensim pick?): the
    condition is evaluated on the run, and a condition that never holds is
    reported as such, not as a meaningful pass."""
    path = _variant(tmp_path, "Time >= 5 :AND: Productivity = 0",
                    "Time >= 5 :AND: (Productivity = 0 :OR: Demand > 1000)")
    out = sd("check", path).stdout
    assert "PASS idle late (line 62): the condition is never true on the run, so nothing was " \
           "tested" in out, out


def test_forcing_to_an_expression_is_not_checked(tmp_path):
    path = _variant(tmp_path, "Demand = 0 :IMPLIES:", "Demand = Production * 0 :IMPLIES:")
    out = sd("check", path).stdout
    assert "NOT CHECKED no demand no shipments (line 56): not checked: 'Demand = (expression)' " \
           "forces 'Demand' to an expression" in out, out
