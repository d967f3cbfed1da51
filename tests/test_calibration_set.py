"""Set-valued calibration: a model whose behaviour-consistent set is known exactly.

``tests/data/set_toy.mdl``: ``Level = Initial Level + (Growth Rate + 0.25 Boost) * Time``
(a constant inflow, so Euler is exact), inputs uniform on [0, 1]. The
documented outcomes ``Level(0) <= 0.5`` and ``0.5 <= Level(1) <= 1`` define
the set ``{A <= 0.5, 0.5 <= A + B <= 1}`` (A = Initial Level, B = Growth
Rate) of prior mass 1/4; Idle Constant moves no outcome. Over the set
``A + B`` is uniform on [0.5, 1], so "the boost keeps Level(1) at or above
1" (``A + B >= 0.75``) holds in exactly half of it. With the boost as a
structural variant the set has mass 7/32 (Bayes factor 7/8); without growth
it has mass 0 (``A = 0.5`` exactly).

Tolerances are Monte Carlo: estimates must lie within 4 of their own
standard errors of the exact values (a false failure about once in 15,000).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sd.calibration import accepted_set, calibrate, run_over_set
from sd.calibration import estimates, sampler, waves
from sd.calibration.acceptance import distance
from sd.calibration.checkpoint import Store
from sd.errors import SdInputError
from sd.outcomes.metrics import Metric

DATA = Path(__file__).parent / "data"
TOY = DATA / "set_toy.mdl"
MASS, SHARE, BOOST_RATIO = 0.25, 0.5, 7 / 8


def toy_spec(folder: Path, seed: int = 1, extra: str = "", draws: int = 4000) -> Path:
    text = (f'model = "{TOY}"\ndata = "{DATA / "set_toy.csv"}"\nseed = {seed}\n'
            '[uncertain]\nexclude = ["Boost", "Switch Growth"]\n'
            f'[set]\ndraws = {draws}\nchunk = 2000\nmax_starts = 40\nreplicas = 4\nsteps = 12\n'
            'thin = 4\nlevel_draws = 400\ncheck_members = 40\n'
            f'[variants]\nscenarios = "{DATA / "set_toy_scenarios.toml"}"\n'
            'names = ["boost", "no_growth"]\n'
            f'[explain]\nvariable = "Level"\nwindow = [1, 1]\n'
            f'scenarios = "{DATA / "set_toy_scenarios.toml"}"\ncounterfactuals = ["boost"]\n'
            f'threshold = 1.0\n{extra}')
    path = folder / f"toy{seed}.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    return calibrate(toy_spec(folder), progress=False), folder


def _within(estimate, se, exact, k=4.0):
    return abs(estimate - exact) <= k * se + 1e-12


def test_the_set_is_the_known_region(toy):
    result, _ = toy
    A, B = (result.values[n].to_numpy() for n in ("Initial Level", "Growth Rate"))
    assert len(A) == 40 * 4 * 3                          # starts x replicas x recorded steps
    assert np.all(A <= 0.5 + 1e-9) and np.all((A + B >= 0.5 - 1e-9) & (A + B <= 1 + 1e-9))
    m = result.mass
    assert m.n == 4000 and _within(m.share, m.se, MASS), (m.share, m.se)
    # every member is an exact draw from the set: A + B is uniform on [0.5, 1]
    assert abs(np.mean(A + B) - 0.75) < 0.03
    # the screening says which inputs each outcome responds to
    names = result.inputs.names
    first = [n for n, _, _ in result.screening.responds(0, names)]
    second = [n for n, _, _ in result.screening.responds(1, names)]
    assert first == ["Initial Level"] and set(second) == {"Initial Level", "Growth Rate"}
    assert "Idle Constant" not in first + second
    assert result.inputs.held["Boost"] == "excluded by the spec"
    assert result.inputs.held["Boost Size"] == "no finite range in the .mdl"


def test_a_question_is_answered_with_its_standard_error(toy):
    result, _ = toy
    (c,) = result.conclusions
    assert c.question.startswith("boost keeps Level at or above 1")
    assert 0 < c.share.se < 0.15 and _within(c.share.share, c.share.se, SHARE)
    assert c.verdict(0.9) == "undecided"
    # the assumption that decides it: B. Over the set A + B is uniform on [0.5, 1]
    # whatever A is, so A is independent of the answer, like the idle constant
    (top, d_top, *_), *rest = c.deciding
    assert top == "Growth Rate" and d_top > 0.3 and all(d < d_top / 2 for _, d, *_ in rest)
    # and the data that would settle it: Level at 1 (= A + B) settles it outright
    best = result.data_value[c.question][0]
    assert best.observation == "Level in 1" and best.gain > 0.7 and best.settle >= 0.75


def test_an_input_that_moves_no_outcome_is_not_identified(toy):
    result, _ = toy
    idle = next(m for m in result.marginals if m.name == "Idle Constant")
    assert not idle.identified and idle.value is None
    assert idle.sd_ratio > 0.8 and idle.width > 0.75


def test_variants_rejected_and_not(toy):
    result, _ = toy
    boost, none = result.variants
    assert boost.verdict == "not rejected" and boost.search.found
    lo, hi = boost.ratio_bounds
    assert lo <= BOOST_RATIO <= hi
    assert none.verdict == "rejected" and not none.search.found


def test_files_and_columns(toy, tmp_path):
    from sd.report.set_calibration import write_set

    result, _ = toy
    names = write_set(result, tmp_path)
    for name in ("accepted.csv", "conclusions.csv", "targets.csv", "fit.json", "report.md"):
        assert name in names and (tmp_path / name).is_file()
    head = (tmp_path / "accepted.csv").read_text().splitlines()[0].split(",")
    assert head == result.inputs.names
    assert (tmp_path / "conclusions.csv").read_text().splitlines()[0] == "question,share,stderr,n"
    assert (tmp_path / "targets.csv").read_text().splitlines()[0] == \
        "target,prior_pass_share,informative"
    fit = json.loads((tmp_path / "fit.json").read_text())
    idle = fit["parameters"]["Idle Constant"]
    assert idle["identified"] is False and idle["value"] is None
    assert all("identified" in p for p in fit["parameters"].values())
    report = (tmp_path / "report.md").read_text()
    assert "undecided: the data do not decide it" in report and "No input is identified" in report
    assert "ONE REPRESENTATIVE MEMBER" in (tmp_path / "representative.cin").read_text()


def test_the_accepted_set_runs_a_scenario(toy, tmp_path):
    from sd.report.set_calibration import write_set

    result, _ = toy
    write_set(result, tmp_path)
    acc = accepted_set(tmp_path)
    assert len(acc) == len(result.members) and list(acc.values.columns) == result.inputs.names
    end = Metric("end", "Level", "at", time=1)
    dist = run_over_set(acc, f"boost@{DATA / 'set_toy_scenarios.toml'}", [end], model=TOY)
    share = dist.share(dist.values["end"] >= 1.0)
    assert share.share == pytest.approx(result.conclusions[0].share.share)
    assert share.se == pytest.approx(result.conclusions[0].share.se)


def test_two_seeds_agree_within_their_errors(toy, tmp_path):
    result, _ = toy
    other = calibrate(toy_spec(tmp_path, seed=7), progress=False)
    a, b = result.conclusions[0].share, other.conclusions[0].share
    assert abs(a.share - b.share) <= 4 * np.hypot(a.se, b.se)
    assert abs(result.mass.share - other.mass.share) <= 4 * np.hypot(result.mass.se,
                                                                      other.mass.se)


# -- the estimators on their own (no model): calibration of the standard errors ------------
def _violate(U):
    """The toy set as a function: violations of A <= 0.5 and 0.5 <= A + B <= 1."""
    a, s = U[:, 0], U[:, 0] + U[:, 1]
    return np.column_stack([np.maximum(a - 0.5, 0), np.maximum(0.5 - s, 0) + np.maximum(s - 1, 0)])


def test_standard_errors_cover_the_truth_with_correlated_chains():
    """Chains from 20 exact starts, 8 replicas each: grouped SEs cover the exact
    share about 95% of the time; treating the 960 correlated members as
    independent would not (this is what the grouping corrects).
    Tolerance: 300 replications, coverage within 0.89-0.99 (binomial sd 0.013)."""
    covered, naive = 0, 0
    reps = 300
    for rep in range(reps):
        rng = np.random.default_rng([11, rep])
        U = rng.random((400, 3))
        starts = U[distance(_violate(U)) <= 0][:20]
        ch = sampler.run(_violate, starts, _violate(starts), replicas=8, steps=12, thin=4,
                         seed=rep, store=Store(None, {}, False))
        h = ch.states[:, 0] + ch.states[:, 1] >= 0.75
        s = estimates.grouped(h, ch.groups)
        covered += abs(s.share - SHARE) <= 1.96 * s.se
        b = estimates.binomial(int(h.sum()), len(h))
        naive += abs(b.share - SHARE) <= 1.96 * b.se
    assert 0.89 <= covered / reps <= 0.99, covered / reps
    assert naive / reps < 0.85, naive / reps


def test_sequential_search_estimates_a_small_mass():
    """{A < 0.02, B < 0.05} in the 3-cube: mass 1e-3, found in waves of 500.
    Its reported coefficient of variation is an honest scale of its error:
    over 30 seeds the log errors have a spread within a factor 2.5 of it."""
    def violate(U):
        return np.column_stack([np.maximum(U[:, 0] - 0.02, 0), np.maximum(U[:, 1] - 0.05, 0)])

    logs, covs = [], []
    for seed in range(30):
        s = waves.search(violate, 3, 500, seed, Store(None, {}, False), key="t")
        assert s.found and len(s.members) and np.all(distance(violate(s.members)) <= 0)
        logs.append(np.log(s.mass / 1e-3))
        covs.append(s.cov)
    assert abs(np.mean(logs)) < 0.15
    assert np.std(logs) / 2.5 <= np.mean(covs) <= 2.5 * np.std(logs)


def test_spec_ranges_narrow_or_add_never_widen(tmp_path):
    base = toy_spec(tmp_path).read_text()
    (tmp_path / "wide.toml").write_text(base.replace(
        "[set]", '[uncertain.ranges]\n"Growth Rate" = [0, 2]\n[set]'))
    with pytest.raises(SdInputError, match=r"'Growth Rate' = \[0, 2\] is outside its range "
                                           r"\[0, 1\] in set_toy\.mdl"):
        calibrate(tmp_path / "wide.toml", progress=False)
    (tmp_path / "typo.toml").write_text(base.replace('"Switch Growth"]', '"Swich Growth"]'))
    with pytest.raises(SdInputError, match=r"exclude 'Swich Growth' matches no constant.*"
                                           r"Did you mean 'Switch Growth'"):
        calibrate(tmp_path / "typo.toml", progress=False)


def test_two_seeds_give_the_same_juarez_conclusions(tmp_path):
    """The Juarez main job, reduced (30,000 prior draws, no variants): two seeds
    answer every question alike within 4 combined standard errors, and estimate
    the same prior mass of the set."""
    root = Path(__file__).resolve().parents[1]
    text = (root / "calibration" / "juarez_propane.toml").read_text()
    text = text.split("[variants]")[0] + "[explain]" + text.split("[explain]", 1)[1]
    text = text.replace("draws = 100000", "draws = 30000\nmin_starts = 3\nsteps = 12\nthin = 4\n"
                        "check_members = 60")
    for rel in ("../models/juarez_brick_kilns.mdl", "data/juarez_propane.csv",
                "../models/juarez_scenarios.toml"):
        text = text.replace(f'"{rel}"', f'"{(root / "calibration" / rel).resolve()}"')
    runs = []
    for seed in (11, 12):
        (tmp_path / f"j{seed}.toml").write_text(text.replace("seed = 20161", f"seed = {seed}"))
        runs.append(calibrate(tmp_path / f"j{seed}.toml", progress=False))
    a, b = runs
    assert a.mass.share > 0 and b.mass.share > 0
    assert abs(a.mass.share - b.mass.share) <= 4 * np.hypot(a.mass.se, b.mass.se)
    assert [c.question for c in a.conclusions] == [c.question for c in b.conclusions]
    assert len(a.conclusions) >= 8
    for x, y in zip(a.conclusions, b.conclusions):
        assert abs(x.share.share - y.share.share) <= 4 * np.hypot(x.share.se, y.share.se), \
            (x.question, x.share, y.share)


def test_a_sampled_constant_that_looks_like_a_switch_is_flagged(tmp_path):
    """Which constants are switches is the spec's to declare; one that is sampled
    but looks like one (range [0, 1], value 0 or 1) gets a note asking for it."""
    from sd.calibration.inputs import resolve
    from sd.model import load

    model = load(TOY)
    quiet = resolve(model, {"exclude": ["Boost", "Switch Growth"]}, {}, "spec")
    assert quiet.notes == () and "Boost" not in quiet.names
    loud = resolve(model, {}, {}, "spec")
    assert {"Boost", "Switch Growth"} <= set(loud.names)
    (note,) = loud.notes
    assert "Boost, Switch Growth" in note and "[uncertain] exclude" in note
