"""``sd experiment``: spec validation, an experiment end to end on a model whose set is known.

``tests/data/set_toy.mdl`` (see tests/test_calibration_set.py): ``Level(1) = Initial Level
+ Growth Rate (+ 0.25 with Boost)``, ``Unobserved = Idle Constant * Level``. The documented
outcomes (``set_toy.csv``) constrain Initial Level and Growth Rate only, so over the set
Idle Constant stays uniform on [0, 1]. Hence, exactly:

- "boost raises Level(1) by more than 0.2" holds in every member (the boost adds 0.25);
- "no_growth raises Level(1)" holds in no member;
- "boost raises Unobserved(1) by more than 0.125" holds iff Idle Constant > 0.5: in half of
  the set, whatever the data; the documented outcomes provably cannot decide it.

Monte Carlo tolerances: a share estimated from the set lies within 4 of its own standard
errors of the exact value (a false failure about once in 15,000).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sd.calibration.estimates import grouped
from sd.cli import main
from sd.errors import SdInputError
from sd.experiments import load_spec
from sd.experiments.spec import Clause, Output, Side

DATA = Path(__file__).parent / "data"
TOY = DATA / "set_toy.mdl"

CALIBRATION = f'''model = "{TOY}"
data = "{DATA / 'set_toy.csv'}"
seed = 3
[uncertain]
exclude = ["Boost", "Switch Growth"]
[set]
draws = 2000
chunk = 2000
max_starts = 30
replicas = 4
steps = 12
thin = 4
check_members = 20
'''

EXPERIMENT = '''description = "toy"
seed = 1
prior_draws = 400
baseline = "baseline"
policies = ["boost", "no_growth"]
table_years = ["end"]
[outputs.Level]
better = "higher"
margin = 0.1
[outputs.Unobserved]
better = "higher"
margin = 0.125
[variations.doubled]
constants = {"Boost Size" = 0.5}
[cases.toy]
calibration = "toy_calibration.toml"
scenarios = "%s"
years = {start = 0, end = 1}

[[statements]]
id = "boost_raises_level"
claim = "The boost raises the level"
variable = "Level"
policy = "boost"
against = "baseline"
year = "end"
above = 0.2

[[statements]]
id = "no_growth_raises_level"
claim = "Removing growth raises the level"
variable = "Level"
policy = "no_growth"
against = "baseline"
year = "end"
above = 0

[[statements]]
id = "boost_raises_unobserved"
claim = "The boost raises what no outcome observes"
variable = "Unobserved"
policy = "boost"
against = "baseline"
year = "end"
above = 0.125
mechanism = ["Level"]

[[statements]]
id = "doubling_and_growth"
claim = "A doubled boost adds more than the boost, and the level grows"
variable = "Level"
[[statements.clauses]]
policy = "boost"
variation = "doubled"
against = "boost"
year = "end"
above = 0.2
[[statements.clauses]]
policy = "baseline"
against = "baseline"
year = "end"
against_year = "start"
above = 0
''' % (DATA / "set_toy_scenarios.toml")


def write(folder: Path, text: str = EXPERIMENT, name: str = "exp.toml") -> Path:
    (folder / "toy_calibration.toml").write_text(CALIBRATION)
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exp")
    spec = write(folder)
    out = folder / "out {stem}"        # braces in --out are text, never a template
    code = main(["experiment", str(spec), "--out", str(out)])
    assert code == 0
    return folder, spec, out


# -- the spec: bad input is refused with its line and the nearest valid name ----------------
@pytest.mark.parametrize("old, new, message", [
    ('policies = ["boost", "no_growth"]', 'policies = ["bost", "no_growth"]',
     r"exp\.toml:\d+ policies: case 'toy' has no scenario 'bost'.*Did you mean 'boost'"),
    ('year = "end"\nabove = 0.2', 'year = "ned"\nabove = 0.2',
     r"exp\.toml:\d+ \[\[statements\]\] 1 \(boost_raises_level\).*no year named 'ned'.*"
     r"Did you mean 'end'"),
    ('claim = "The boost raises the level"', 'claim = "x"\nabvoe = 1',
     r"exp\.toml:\d+ \[\[statements\]\] 1 \(boost_raises_level\) abvoe: unknown key 'abvoe'"
     r".*Did you mean 'above'"),
    ('variation = "doubled"', 'variation = "dubled"',
     r"exp\.toml:\d+ \[\[statements\]\] 4 .*clause 1 variation: no variation 'dubled'.*"
     r"Did you mean 'doubled'"),
    ('variable = "Unobserved"', 'variable = "Unobservd"',
     r"set_toy\.mdl has no variable named 'Unobservd'.*statements.*3.*Did you mean 'Unobserved'"),
    ('above = 0.125\nmechanism', 'above = 0.125\nbelow = 1\nmechanism',
     r"exp\.toml:\d+ \[\[statements\]\] 3 .*exactly one of 'above' or 'below'"),
    ('better = "higher"\nmargin = 0.1', 'better = "hihger"\nmargin = 0.1',
     r"exp\.toml:\d+ \[outputs\.Level\] better: 'hihger' is not one of higher, lower.*"
     r"Did you mean 'higher'"),
    ('years = {start = 0, end = 1}', 'years = {start = 0, end = 3}',
     r"year end = 3 of case 'toy' is outside its run \(0 to 1\)"),
    ('[cases.toy]', '[cases.toy]\ncalibraton = "x"',
     r"exp\.toml:\d+ \[cases\.toy\] calibraton: unknown key.*Did you mean 'calibration'"),
    ('mechanism = ["Level"]', 'mechanism = ["Level"]\nnot_applicable = {tyo = "why"}',
     r"exp\.toml:\d+ \[\[statements\]\] 3 .*not_applicable: no case 'tyo'.*Did you mean 'toy'"),
    ('"Boost Size" = 0.5', '"Boost Sise" = 0.5',
     r"set_toy\.mdl has no constant named 'Boost Sise'.*variations\.doubled.*Did you mean "
     r"'Boost Size'"),
])
def test_a_bad_spec_exits_2_with_a_located_message(tmp_path, capsys, old, new, message):
    assert old in EXPERIMENT
    spec = write(tmp_path, EXPERIMENT.replace(old, new, 1))
    out = tmp_path / "out"
    assert main(["experiment", str(spec), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    import re
    assert re.search(message, err, re.S), err
    assert not out.exists()          # refused before anything ran or was written


def test_spec_errors_name_the_file_line(tmp_path):
    spec = write(tmp_path, EXPERIMENT.replace("table_years", "table_yaers"))
    with pytest.raises(SdInputError, match=r"exp\.toml:6 table_yaers: unknown key.*"
                                           r"Did you mean 'table_years'"):
        load_spec(spec)


# -- end to end ---------------------------------------------------------------------------
def test_the_table_has_every_cell_with_distributions_and_probabilities(done):
    folder, spec, out = done
    table = pd.read_csv(out / "policy_table.csv")
    assert len(table) == 1 * 3 * 2 * 1                 # cases x policies x outputs x years
    assert set(table.policy) == {"baseline", "boost", "no_growth"}
    assert {"median", "q05", "q95", "p_beats", "p_beats_se", "n", "groups"} <= set(table.columns)
    assert (table.q05 <= table["median"]).all() and (table["median"] <= table.q95).all()
    base = table[table.policy == "baseline"]
    assert base.p_beats.isna().all()                   # the baseline is not compared with itself
    level = table[table.output == "Level"].set_index("policy")
    assert level.loc["boost", "p_beats"] == 1.0 and level.loc["no_growth", "p_beats"] == 0.0
    # the boost adds exactly 0.25 to Level(1): medians differ by 0.25 (Euler is exact here)
    assert level.loc["boost", "median"] - level.loc["baseline", "median"] == pytest.approx(0.25)


def test_a_probability_is_computed_over_the_set_with_its_standard_error(done):
    folder, spec, out = done
    table = pd.read_csv(out / "policy_table.csv").set_index(["policy", "output"])
    row = table.loc[("boost", "Unobserved")]
    members = pd.read_csv(out / "members-toy.csv")
    assert len(members) == row.n and members.group.nunique() == row.groups > 1
    x = members["boost | Unobserved @ 1"].to_numpy()
    b = members["baseline | Unobserved @ 1"].to_numpy()
    expected = grouped(x - b > 0.125, members.group.to_numpy())
    assert row.p_beats == pytest.approx(expected.share) and row.p_beats_se == pytest.approx(
        expected.se)
    assert 0 < row.p_beats_se < 0.2                    # a real Monte Carlo error, not 0 or NaN
    assert abs(row.p_beats - 0.5) <= 4 * row.p_beats_se


def test_statements_agree_disagree_or_cannot_be_decided(done):
    folder, spec, out = done
    rows = pd.read_csv(out / "statements.csv").set_index("statement")
    assert rows.loc["boost_raises_level", "verdict"] == "agrees"
    assert rows.loc["boost_raises_level", "share"] == 1.0
    assert rows.loc["no_growth_raises_level", "verdict"] == "disagrees"
    assert rows.loc["doubling_and_growth", "verdict"] == "agrees"
    # Idle Constant decides it and no outcome constrains it: provably undecided (exact 1/2)
    undecided = rows.loc["boost_raises_unobserved"]
    assert undecided.verdict == "cannot decide"
    assert abs(undecided.share - 0.5) <= 4 * undecided.stderr and undecided.stderr > 0
    assert abs(undecided.prior_share - 0.5) <= 4 * undecided.prior_stderr
    assert not undecided.record_moves_it                # the prior says the same
    info = json.loads((out / "experiment.json").read_text())
    deciding = info["deciding"]["toy/boost_raises_unobserved"]
    assert deciding[0][0] == "Idle Constant"
    assert deciding[0][2] > 0.5 > deciding[0][3]          # median where it holds / where not
    report = (out / "report.md").read_text()
    assert "**cannot decide**" in report and "what would decide it: Idle Constant" in report
    assert "mechanism, Level:" in report
    md = (out / "policy_table.md").read_text()
    assert "| boost_raises_unobserved | cannot decide (0." in md


def test_the_outputs_record_where_the_set_came_from(done):
    folder, spec, out = done
    info = json.loads((out / "experiment.json").read_text())
    (s,) = info["sets"]
    assert s["how"] == "ran" and s["folder"] == str(out / "calibrations" / "toy_calibration")
    assert (out / "calibrations" / "toy_calibration" / "accepted.csv").is_file()
    prov = info["provenance"]
    assert prov["spec_sha256"] and prov["cases"]["toy"]["model_sha256"]
    assert set(info["files"]) >= {"policy_table.csv", "policy_table.md", "statements.csv",
                                  "report.md", "policy_matrix.png", "members-toy.csv"}
    assert (out / "policy_matrix.png").stat().st_size > 10_000


def test_a_matching_calibration_is_reused_and_a_changed_one_is_not(done, capsys, tmp_path):
    folder, spec, out = done
    again = tmp_path / "again"
    # reuse from another folder: the first one's kept calibration, via the default search
    # path results/calibration-<stem> relative to the working folder
    import os
    results = tmp_path / "results"
    results.mkdir()
    os.symlink(out / "calibrations" / "toy_calibration", results / "calibration-toy_calibration")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(["experiment", str(spec), "--out", str(again)]) == 0
        first = capsys.readouterr()
        assert "1 sets reused" in first.out, first.out
        before = pd.read_csv(out / "statements.csv")
        after = pd.read_csv(again / "statements.csv")
        pd.testing.assert_frame_equal(before, after)   # the same set, the same answers
        # a changed calibration spec (another seed) no longer matches: it runs again
        cal = folder / "toy_calibration.toml"
        text = cal.read_text()
        cal.write_text(text.replace("seed = 3", "seed = 4"))
        try:
            assert main(["experiment", str(spec), "--out", str(tmp_path / "third")]) == 0
        finally:
            cal.write_text(text)
        third = capsys.readouterr()
        assert "0 sets reused, 1 calibrated now" in third.out
        info = json.loads((tmp_path / "third" / "experiment.json").read_text())
        assert "toy_calibration.toml changed since" in info["sets"][0]["reason"]
    finally:
        os.chdir(cwd)


# -- the pieces ------------------------------------------------------------------------------
def test_beating_the_baseline_and_clauses():
    lower = Output("Emissions Index", "lower", 0.01)
    assert list(lower.beats(np.array([0.5, 0.495, 0.6]), np.array([0.52, 0.5, 0.5]))) == \
        [True, False, False]
    relative = Output("Workshops", "higher", 0.01, relative=True)
    assert list(relative.beats(np.array([102.0, 100.5]), np.array([100.0, 100.0]))) == [True, False]
    cl = Clause("Clean Share", Side("a", None, "after"), Side("b", None, "after"), -0.05, False)
    assert list(cl.holds(np.array([0.1, 0.2]), np.array([0.2, 0.2]))) == [True, False]
    assert cl.describe() == "Clean Share: a at after minus b at after below -0.05"


def test_case_names_sharing_a_file_are_refused_before_any_run(tmp_path, capsys):
    """'toy' and 'TOY' both write members-toy.csv: refused when the spec is read
    (it was refused only when the report was written, after the calibrations ran
    and were kept in --out)."""
    twin = ('[cases.TOY]\ncalibration = "toy_calibration.toml"\nscenarios = "%s"\n'
            'years = {start = 0, end = 1}\n\n' % (DATA / "set_toy_scenarios.toml"))
    path = write(tmp_path, EXPERIMENT.replace("[cases.toy]", twin + "[cases.toy]"))
    out = tmp_path / "out"
    assert main(["experiment", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'TOY' and 'toy' would both be written as members-toy.csv" in err \
        or "'toy' and 'TOY' would both be written as members-toy.csv" in err, err
    assert "reused" not in err and "calibrated" not in err and not out.exists()
