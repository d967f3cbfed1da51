"""Hostile calibration specs (issue 8, second red-team pass): each broken
value is refused with exit 2, a message naming the key and what was expected,
no traceback, and nothing written.

In process through ``sd.cli.main`` on the toy model (``tests/data/set_toy.mdl``);
every refusal happens while the spec is read and checked, before any run.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from sd.cli import main

DATA = Path(__file__).parent / "data"
SCEN = DATA / "set_toy_scenarios.toml"

SET_SPEC = f'''model = "{DATA / 'set_toy.mdl'}"
data = "{DATA / 'set_toy.csv'}"
seed = 3
[uncertain]
exclude = ["Boost", "Switch Growth"]
[set]
draws = 400
max_starts = 10
replicas = 2
steps = 4
thin = 2
[variants]
scenarios = "{SCEN}"
names = ["boost"]
[explain]
variable = "Level"
window = [1, 1]
scenarios = "{SCEN}"
counterfactuals = ["boost"]
threshold = 1.0
'''

POINT_SPEC = f'''approach = "point"
model = "{DATA / 'set_toy.mdl'}"
data = "{DATA / 'set_toy.csv'}"
[parameters]
"Growth Rate" = {{low = 0, high = 1, init = 0.3}}
[optimizer]
method = "least_squares"
starts = 1
'''


def refused(tmp_path, capsys, text, match):
    spec = tmp_path / "hostile.toml"
    spec.write_text(text)
    out = tmp_path / "out"
    assert main(["calibrate", str(spec), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert re.search(match, err), err
    assert "internal error" not in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("old, new, match", [
    # a real value that TOML lets be nan or inf
    ("thin = 2", "thin = 2\npoint_sigmas = nan", r"\[set\] point_sigmas: expected a finite number"),
    ("thin = 2", "thin = 2\ninterval_tolerance = inf",
     r"\[set\] interval_tolerance: expected a finite number"),
    # every count below the limit, their product (the chain runs) beyond it
    ("steps = 4", "steps = 1000000", r"max_starts x replicas x steps = 10 x 2 x 1000000 .*SD_RUN_LIMIT"),
    # names that are not names
    ('names = ["boost"]', 'names = [["boost"]]', r"\[variants\] names: \['boost'\] is not a scenario name"),
    ('names = ["boost"]', 'names = ["boost", "boost"]', r"scenario 'boost' is named twice"),
    ("threshold = 1.0", 'threshold = 1.0\n[explain.extra.hot]\n"Boost" = nan',
     r"\[explain.extra.hot\] 'Boost': expected a finite number"),
    ("threshold = 1.0", 'threshold = 1.0\n[explain.extra.hot]\n"Boost" = "1"',
     r"\[explain.extra.hot\] 'Boost': expected a number"),
    ("threshold = 1.0", 'threshold = 1.0\n[uncertain.ranges]\n"Growth Rate" = [0.1, 0.2]\n'
     '[fixed]\n"Growth Rate" = 0.15', r"'Growth Rate' is both given a range .* and held"),
])
def test_hostile_set_spec_is_refused(tmp_path, capsys, old, new, match):
    assert old in SET_SPEC
    refused(tmp_path, capsys, SET_SPEC.replace(old, new, 1), match)


@pytest.mark.parametrize("extra, match", [
    ('[fixed]\n"Initial Level" = nan', r"\[fixed\] 'Initial Level': expected a finite number"),
    ('[fixed]\n"Growth Rate" = 0.1', r"'Growth Rate' is both fitted .* and held"),
    # one constant under two spellings Vensim treats as one name (was an internal error
    # from scipy: the optimiser got two columns for one constant)
    ('[parameters.growth_rate]\nlow = 0\nhigh = 1', r"'Growth Rate' is fitted twice \(as 'growth_rate'"),
])
def test_hostile_point_spec_is_refused(tmp_path, capsys, extra, match):
    refused(tmp_path, capsys, POINT_SPEC + extra + "\n", match)


def test_polish_must_be_a_boolean(tmp_path, capsys):
    # bool("no") is True: text is refused, never converted
    text = POINT_SPEC.replace("starts = 1", 'starts = 1\npolish = "no"')
    refused(tmp_path, capsys, text, r"\[optimizer\] polish = 'no' must be true or false")


def test_a_python_scenario_with_nan_is_refused():
    import sd
    from sd.errors import SdInputError
    from sd.scenarios import Scenario, validate
    model = sd.load(DATA / "set_toy.mdl")
    with pytest.raises(SdInputError, match=r"'Boost'.*expected a finite number"):
        validate(Scenario(name="x", constants={"Boost": float("nan")}), model)


@pytest.mark.parametrize("old, new, match", [
    ('model = "', 'model = "set_toy\\u0000', r"model = .*holds no control or line-separator"),
    ('model = "', 'model = ["', r"(not valid TOML|expected a file name)"),
    (f'data = "{DATA / "set_toy.csv"}"', 'data = "/dev/zero"',
     r"data = '/dev/zero': /dev/zero is not a regular file"),
    (f'data = "{DATA / "set_toy.csv"}"', f'data = "{DATA}"', r"data = .* is a folder; expected a file"),
    (f'data = "{DATA / "set_toy.csv"}"', 'data = 3', r"data = 3: expected a file name"),
    (f'data = "{DATA / "set_toy.csv"}"', f'data = "{DATA / "set_toy.cvs"}"',
     r"file not found .* Did you mean 'set_toy.csv'"),
    (f'scenarios = "{SCEN}"\nnames', f'scenarios = "{DATA}/set_toy\\u2028scenarios.toml"\nnames',
     r"\[variants\] scenarios = .*holds no control or line-separator"),
])
def test_a_file_named_by_a_spec_is_a_regular_file(tmp_path, capsys, old, new, match):
    """Every path a spec names goes through one check (``sd._common.input_file``):
    a NUL was an internal error, a pipe or device 'file not found'."""
    assert old in SET_SPEC
    refused(tmp_path, capsys, SET_SPEC.replace(old, new, 1), match)


def test_a_pipe_given_as_data_is_refused(tmp_path, capsys):
    import os
    fifo = tmp_path / "outcomes.csv"
    os.mkfifo(fifo)
    spec = tmp_path / "s.toml"
    spec.write_text(SET_SPEC)
    assert main(["calibrate", str(spec), "--data", str(fifo), "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 2
    assert "is not a regular file" in capsys.readouterr().err


# -- checkpoints: refused, never trusted, never a hang ---------------------------------
def _store(folder, resume):
    from sd.calibration.checkpoint import Store
    return Store(folder, {"seed": 1}, resume)


@pytest.mark.parametrize("tamper, match", [
    (lambda f: (f / "manifest.json").write_text("[" * 100000 + "]" * 100000),
     "nested too deeply"),
    (lambda f: ((f / "piece.npz").unlink(), (f / "piece.npz").symlink_to("/dev/zero")),
     "not a regular file"),
    (lambda f: ((f / "piece.npz").unlink(), __import__("os").mkfifo(f / "piece.npz")),
     "not a regular file"),
    (lambda f: ((f / "manifest.json").unlink(), __import__("os").mkfifo(f / "manifest.json")),
     "not a regular file"),
])
def test_a_tampered_checkpoint_is_refused_without_blocking(tmp_path, tamper, match):
    """A manifest nested past the JSON decoder's depth was an internal error
    (RecursionError); a piece or manifest replaced by a pipe or /dev/zero
    blocked the resume forever (sd._common.regular_bytes)."""
    from sd.errors import SdInputError
    folder = tmp_path / "checkpoint"
    _store(folder, False).put("piece", V=[1.0, 2.0])
    assert _store(folder, True).get("piece")["V"].tolist() == [1.0, 2.0]
    tamper(folder)
    with pytest.raises(SdInputError, match=f"cannot resume: .*{match}"):
        _store(folder, True).get("piece")


def test_a_checkpoint_path_that_is_a_file_is_a_message(tmp_path):
    from sd.errors import SdInputError
    (tmp_path / "checkpoint").write_text("x")
    with pytest.raises(SdInputError, match="is not a folder"):
        _store(tmp_path / "checkpoint", True)


# -- sensitivity specs -------------------------------------------------------------------
SENS_SPEC = f'''model = "{DATA / 'set_toy.mdl'}"
[sampling]
n = 20
[parameters]
"Growth Rate" = {{ distribution = "uniform", low = 0.1, high = 0.6 }}
[metrics]
final = {{ variable = "Level", kind = "final" }}
[sobol]
n = 8
[morris]
trajectories = 4
levels = 4
'''


@pytest.mark.parametrize("old, new, match", [
    ("n = 8", "n = 7", r"\[sobol\] n = 7 must be a power of 2 .*nearest are 4 and 8"),
    ("n = 8", 'n = 8\nsecond_order = "no"', r"\[sobol\] second_order = 'no' must be true or false"),
    ("levels = 4", "levels = 3", r"\[morris\] levels = 3 must be even.*nearest are 2 and 4"),
    ('[metrics]', 'growth_rate = { distribution = "uniform", low = 0.1, high = 0.6 }\n[metrics]',
     r"the constant 'Growth Rate' is listed twice"),
])
def test_hostile_sensitivity_spec_is_refused(tmp_path, capsys, old, new, match):
    spec = tmp_path / "sens.toml"
    spec.write_text(SENS_SPEC.replace(old, new, 1))
    out = tmp_path / "out"
    assert main(["sensitivity", str(spec), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert re.search(match, err), err
    assert "internal error" not in err and not out.exists()


def test_names_from_files_never_reach_the_terminal_as_control_characters(tmp_path, capsys):
    """A scenario named with an ESC sequence, NUL or U+2028 was echoed raw in
    the error's list of known names (and in sd compare's table): a file could
    drive the user's terminal. Messages print through sd.errors.printable."""
    scen = tmp_path / "hostile_scenarios.toml"
    scen.write_text('["\\u001b[31mred"]\nconstants = {Boost = 1}\n'
                    '["a\\u0000b"]\nconstants = {Boost = 1}\n["u\\u2028v"]\nconstants = {Boost = 1}\n')
    assert main(["compare", str(DATA / "set_toy.mdl"), f"zz@{scen}", "boost",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "\\x1b[31mred" in err and "a\\x00b" in err and "u\\u2028v" in err, err
    assert not any(c in err for c in "\x1b\x00\u2028")


def test_member_runs_over_every_question_are_bounded(tmp_path, capsys):
    """Chains within the limit (100 x 100 x 999 states) but each member also run
    in every [explain] cell: 2 x 9,990,000 runs was started, now refused before
    any draw."""
    text = (SET_SPEC.replace("max_starts = 10\n", "max_starts = 100\n")
            .replace("replicas = 2\n", "replicas = 100\n").replace("steps = 4\n", "steps = 999\n")
            .replace("thin = 2\n", "thin = 1\n"))
    refused(tmp_path, capsys, text,
            r"up to 9,990,000 members .* in 2 cells of \[explain\] make 19,980,000 runs")


def test_a_key_nested_without_end_is_refused_quickly(tmp_path):
    """``a.a.a...b = 1`` with 100,000 parts kept tomllib busy for minutes (its time
    grows with the square of the depth); refused before parsing, with the line."""
    from sd._common import read_toml
    from sd.errors import SdInputError
    spec = tmp_path / "deep.toml"
    spec.write_text('model = "m.mdl"\n' + "a." * 100000 + "b = 1\n")
    with pytest.raises(SdInputError, match=r"deep\.toml:2: .*more than 64 dotted parts"):
        read_toml(spec, "Calibration spec")
    spec.write_text('[x."a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.a.b.c.d.e.f.g.h.i.j.k.l.m'
                    '.n.o.p.q.r.s.t.u.v.w.x.y.z.a.b.c.d.e.f.g.h"]\ny = 1\n')
    assert read_toml(spec, "Calibration spec")["x"]   # dots inside a quoted key are one part


def test_an_empty_out_is_refused_not_the_current_folder(tmp_path, capsys, monkeypatch):
    """--out "" wrote every output (and would remove the stale files of an
    earlier job's manifest) into the current folder."""
    spec = tmp_path / "s.toml"
    spec.write_text(SET_SPEC)
    monkeypatch.chdir(tmp_path)
    assert main(["calibrate", str(spec), "--out", "", "--no-progress"]) == 2
    assert "--out '': empty" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


def test_a_text_file_that_is_a_pipe_is_never_read(tmp_path):
    import os
    from sd._common import read_text
    from sd.errors import SdInputError
    os.mkfifo(tmp_path / "p.csv")
    with pytest.raises(SdInputError, match="cannot read it"):
        read_text(tmp_path / "p.csv", "Documented-outcomes file")


def test_a_spec_that_is_a_pipe_or_folder_says_so(tmp_path):
    """Was 'Calibration spec not found' for a pipe, /dev/zero or a folder."""
    import os
    from sd._common import read_toml
    from sd.errors import SdInputError
    os.mkfifo(tmp_path / "p.toml")
    with pytest.raises(SdInputError, match="p.toml: is not a regular file"):
        read_toml(tmp_path / "p.toml", "Calibration spec")
    with pytest.raises(SdInputError, match="is a folder; expected a TOML file"):
        read_toml(tmp_path, "Scenario file")


@pytest.mark.parametrize("kind", ["folder", "pipe", "device"])
def test_a_point_fit_checkpoint_that_is_not_a_file_is_refused(tmp_path, capsys, kind):
    """optimiser.json made a folder was an internal error (IsADirectoryError when
    the checkpoint was saved); a pipe or a link to /dev/zero were silently skipped."""
    import os
    spec = tmp_path / "p.toml"
    spec.write_text(POINT_SPEC)
    target = tmp_path / "out" / "checkpoint" / "optimiser.json"
    target.parent.mkdir(parents=True)
    {"folder": target.mkdir, "pipe": lambda: os.mkfifo(target),
     "device": lambda: target.symlink_to("/dev/zero")}[kind]()
    assert main(["calibrate", str(spec), "--out", str(tmp_path / "out"), "--resume",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "optimiser.json is not a file" in err and "internal error" not in err
