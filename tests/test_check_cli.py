"""`sd check --tests` and `sd diagram` end to end, through subprocess, as a modeler runs them."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
TEACUP = DATA / "teacup.mdl"
ROOT = Path(__file__).resolve().parents[1]
JUAREZ = ROOT / "models" / "juarez_brick_kilns.mdl"


def sd(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sd", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def _tests_file(tmp_path, text: str) -> Path:
    path = tmp_path / "teacup.tests.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_model_passes_every_check_with_its_tests_file():
    r = sd("check", JUAREZ, "--tests", JUAREZ.with_suffix(".tests.toml"))
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    for section in ("UNITS: ok", "DOCUMENTATION: ok", "DIAGRAM: ok"):
        assert f"juarez_brick_kilns.mdl: {section}" in out
    loops = re.search(r"FEEDBACK LOOPS: (\d+) \((\d+) reinforcing, (\d+) balancing, (\d+) of unknown",
                      out)
    assert loops and int(loops[1]) == sum(map(int, loops.groups()[1:])) > 0
    reality = re.search(r"REALITY CHECKS \(.*\): (\d+) passed, 0 failed", out)
    assert reality and int(reality[1]) >= 10
    assert "PASS conservation 'kilns leave only by closure'" in out


def test_units_error_fails_the_check():
    r = sd("check", DATA / "units_errors.mdl", "--no-sources")
    assert r.returncode == 1
    assert ("  'Share': stock in Dmnl needs flows in 1/Year (stock units / time units Year), but "
            "its flow 'Exits' is in kiln/Year") in r.stdout
    assert "units_errors.mdl: UNITS: 4 error(s), 1 warning(s)" in r.stdout


def test_extreme_condition_pass_and_fail_with_first_violation(tmp_path):
    tests = _tests_file(tmp_path, '''
[[test]]
name = "cold room"
constants = { "Room Temperature" = 0 }
expect = [
  '"Teacup Temperature" >= "Room Temperature"',
  { that = '"Teacup Temperature" > 100', at = 5 },
  { that = '"Teacup Temperature" >= 100', from = 0, to = 30 },
]
''')
    r = sd("check", TEACUP, "--tests", tests, "--no-sources")
    assert r.returncode == 1, r.stdout + r.stderr
    assert 'PASS cold room: "Teacup Temperature" >= "Room Temperature" (at all times): holds' in r.stdout
    assert 'PASS cold room: "Teacup Temperature" > 100 (at time 5): holds' in r.stdout
    # 180 * exp(-t/10) falls below 100 just after t = 5.9 (Euler steps of 0.125 minute)
    fail = re.search(r'FAIL cold room: "Teacup Temperature" >= 100 \(from 0 to 30\): first violated '
                     r'at time ([\d.]+): Teacup Temperature = ([\d.]+)', r.stdout)
    assert fail, r.stdout
    assert 5.5 < float(fail[1]) < 6.5 and float(fail[2]) < 100
    assert "2 passed, 1 failed" in r.stdout


def test_conservation_flags_an_undeclared_flow(tmp_path):
    tests = _tests_file(tmp_path, '''
[[conservation]]
name = "heat stays in the cup"
stocks = ["Teacup Temperature"]
''')
    r = sd("check", TEACUP, "--tests", tests, "--no-sources")
    assert r.returncode == 1
    assert ("FAIL conservation 'heat stays in the cup': 'Heat Loss to Room' drains the set "
            "without being declared in outflows") in r.stdout
    declared = _tests_file(tmp_path, '''
[[conservation]]
name = "heat leaves only to the room"
stocks = ["Teacup Temperature"]
outflows = ["Heat Loss to Room"]
''')
    r = sd("check", TEACUP, "--tests", declared, "--no-sources")
    assert "PASS conservation 'heat leaves only to the room'" in r.stdout


@pytest.mark.parametrize("text, message", [
    ("[[test]\nname = 1", "not valid TOML"),
    ('[[test]]\nexpect = [\'"Teacup Temprature" >= 0\']', "Did you mean 'Teacup Temperature'"),
    ('[[test]]\nconstants = { "Room Temp" = 0 }\nexpect = [\'"Teacup Temperature" >= 0\']',
     "Did you mean 'Room Temperature'"),
    ('[[test]]\nexpect = [\'"Teacup Temperature" >= 0 <= 1\']', "exactly one comparison"),
    ('[[test]]\nexpect = [\'__import__("os") >= 0\']', "unexpected '('"),
    ('[[test]]\nexpct = []', "unknown key 'expct'"),
    ('[[conservation]]\nstocks = ["Heat Loss to Room"]', "is a flow"),
])
def test_bad_tests_file_exits_2_with_a_located_message(tmp_path, text, message):
    tests = _tests_file(tmp_path, text)
    r = sd("check", TEACUP, "--tests", tests)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert str(tests) in r.stderr or "teacup" in r.stderr


def test_missing_tests_file_exits_2(tmp_path):
    r = sd("check", TEACUP, "--tests", tmp_path / "nope.toml")
    assert r.returncode == 2 and "Tests file not found" in r.stderr


def test_diagram_writes_png_and_svg(tmp_path):
    for suffix in (".png", ".svg"):
        out = tmp_path / f"juarez{suffix}"
        r = sd("diagram", JUAREZ, "-o", out)
        assert r.returncode == 0, r.stderr
        assert out.stat().st_size > 10_000 and "drew 6 view(s)" in r.stdout
    assert (tmp_path / "juarez.svg").read_text().count("Traditional Kilns") >= 1
    r = sd("diagram", JUAREZ, "--view", "information", "-o", tmp_path / "info.png")
    assert r.returncode == 0 and "drew 1 view(s) (Information)" in r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["info.png", "juarez.png", "juarez.svg"]


@pytest.mark.parametrize("args, message", [
    (["--view", "Decision"], "Did you mean 'Decisions'?"),
    (["-o", "x.gif"], "chosen by the file's suffix"),
])
def test_diagram_bad_input_exits_2(tmp_path, args, message):
    if "-o" not in args:
        args = args + ["-o", tmp_path / "d.png"]
    r = sd("diagram", JUAREZ, *args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert not list(tmp_path.iterdir())


def test_subscripted_violation_names_the_element(tmp_path, test_models_dir):
    """Stock A[i,j] = initial + rate * t; the [Entry 3, Column 2] element (6 + 0.06 t) passes 10 first."""
    model = next((test_models_dir / "subscript_2d_arrays").glob("*.mdl"))
    tests = _tests_file(tmp_path, '[[test]]\nname = "bounded"\nexpect = [\'"Stock A" <= 10\']\n')
    r = sd("check", model, "--tests", tests, "--no-sources")
    fail = re.search(r"first violated at time ([\d.]+): Stock A\[Entry 3,Column 2\] = ([\d.]+)", r.stdout)
    assert fail, r.stdout
    assert 66 < float(fail[1]) <= 68 and float(fail[2]) > 10
