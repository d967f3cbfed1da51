"""Documented outcomes: payoff units of every kind and CSV validation."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from sd.outcomes import targets as outcomes
from sd.errors import SdInputError
from sd.outcomes.targets import Target

TIMES = np.arange(0.0, 10.5, 0.5)


def _runs(name, y) -> xr.Dataset:
    return xr.Dataset({name: (("run", "time"), np.atleast_2d(y))}, coords={"time": TIMES})


def _res(target, y):
    res, sim = outcomes.evaluate([target], _runs(target.variable, y))
    return res[0, 0], sim[0, 0]


def test_point_two_sigma_off_adds_exactly_four():
    t = Target("x", "point", time=3.0, value=10.0, sigma=0.5)
    r, sim = _res(t, np.full(TIMES.size, 11.0))
    assert sim == 11.0 and r == pytest.approx(2.0)
    assert r ** 2 == pytest.approx(4.0)
    assert not outcomes.met([t], np.array([2.01]))[0] and outcomes.met([t], np.array([2.0]))[0]


def test_point_interpolates_between_saved_times():
    t = Target("x", "point", time=3.25, value=0.0, sigma=1.0)
    r, sim = _res(t, TIMES.copy())
    assert sim == pytest.approx(3.25) and r == pytest.approx(3.25)


def test_range_zero_when_satisfied_and_scaled_by_half_width_when_not():
    t = Target("x", "range", time=2.0, time_end=4.0, low=0.0, high=1.0)
    assert _res(t, np.full(TIMES.size, 0.5))[0] == 0.0
    y = np.where((TIMES >= 2) & (TIMES <= 4), 0.5, 9.0)
    assert _res(t, y)[0] == 0.0                       # outside the window does not count
    y[TIMES == 3.0] = 1.5                              # 0.5 above high, half-width 0.5
    assert _res(t, y)[0] == pytest.approx(1.0)
    y[TIMES == 3.0] = -0.25                            # below: negative residual
    assert _res(t, y)[0] == pytest.approx(-0.5)


def test_range_tolerance_is_sigma_when_given():
    t = Target("x", "range", time=0.0, time_end=10.0, low=0.0, high=1.0, sigma=0.1)
    assert _res(t, np.full(TIMES.size, 1.2))[0] == pytest.approx(2.0)


def test_peak_and_trough_and_peak_time():
    y = np.exp(-((TIMES - 4.0) ** 2))                  # peak 1 at t = 4
    peak = Target("x", "peak", time=0, time_end=10, low=0.2, high=0.6)
    r, sim = _res(peak, y)
    assert sim == pytest.approx(1.0) and r == pytest.approx(0.4 / 0.2)
    assert _res(Target("x", "peak", time=0, time_end=10, low=0.5, high=1.5), y)[0] == 0.0
    trough = Target("x", "trough", time=0, time_end=10, low=0.0, high=0.1)
    assert _res(trough, y)[0] == 0.0
    when = Target("x", "peak_time", time=5.0, time_end=7.0)
    r, sim = _res(when, y)
    assert sim == 4.0 and r == pytest.approx(-1.0)     # 1 year early, half-width 1
    assert _res(Target("x", "peak_time", time=3.0, time_end=5.0), y)[0] == 0.0


def test_batch_rows_are_independent():
    t = Target("x", "point", time=1.0, value=0.0, sigma=1.0)
    y = np.vstack([np.zeros(TIMES.size), np.ones(TIMES.size)])
    res, _ = outcomes.evaluate([t], _runs("x", y))
    assert res[:, 0].tolist() == [0.0, 1.0]


def test_targets_and_metrics_are_one_implementation():
    """A target's simulated value is the metric it is built on (same window, same
    interpolation at window ends that fall between saved times)."""
    from sd.outcomes.metrics import compute

    y = np.sin(TIMES)
    ds = _runs("x", y)
    for t in (Target("x", "peak", time=0.3, time_end=2.7, low=0, high=1),
              Target("x", "trough", time=3.1, time_end=6.2, low=-1, high=0),
              Target("x", "point", time=4.25, value=0, sigma=1),
              Target("x", "peak_time", time=0, time_end=10)):
        (metric,) = t.metrics()
        assert _res(t, y)[1] == compute(ds, [metric])[metric.name].values[0], t.kind


def test_failed_run_has_no_summary():
    """A NaN anywhere in a run (a failed run) gives NaN, never a partial summary."""
    from sd.outcomes.metrics import Metric, values

    y = np.vstack([TIMES.copy(), TIMES.copy()])
    y[1, 7] = np.nan
    for kind in ("max", "time_of_max", "mean", "final"):
        out = values(Metric("m", "x", kind), TIMES, y)
        assert np.isfinite(out[0]) and np.isnan(out[1]), kind


def test_weight_multiplies_residual():
    t = Target("x", "point", time=1.0, value=0.0, sigma=1.0, weight=3.0)
    assert _res(t, np.ones(TIMES.size))[0] == pytest.approx(3.0)


# -- CSV -----------------------------------------------------------------------
HEADER = "variable,kind,time,time_end,value,low,high,sigma,source,note\n"


def _csv(tmp_path, text, name="o.csv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_full_csv_reads_every_kind(tmp_path):
    p = _csv(tmp_path, HEADER + "A,point,1,,5,,,1,S1,quoted\n"
             "A,range,0,2,,0,1,,S2,interpreted\nA,peak,0,2,,0,1,,S3,interpreted\n"
             "A,peak_time,0,2,,,,,S4,interpreted\n")
    ts = outcomes.load(p)
    assert [t.kind for t in ts] == ["point", "range", "peak", "peak_time"]
    assert ts[1].tolerance == 0.5 and ts[3].tolerance == 1.0 and ts[0].source == "S1"


def test_minimal_csv_means_points(tmp_path):
    ts = outcomes.load(_csv(tmp_path, "variable,time,value,sigma\nA,1,5,0.5\n"))
    assert ts[0].kind == "point" and ts[0].sigma == 0.5


@pytest.mark.parametrize("text, match", [
    ("variable,value,sigma\nA,1,1\n", r"o\.csv:1: missing column\(s\) time"),
    ("variable,time,value\nA,1,1\n", r"needs column\(s\) sigma"),
    (HEADER + "A,pointy,1,,5,,,1,S,\n", r"o\.csv:2: unknown kind 'pointy'.*'point'"),
    (HEADER + "A,point,1,,nan,,,1,S,\n", r"o\.csv:2: value: expected a finite number, got 'nan'"),
    (HEADER + "A,point,1,,abc,,,1,S,\n", r"o\.csv:2: value: expected a number, got 'abc'"),
    (HEADER + "A,point,1,,5,,,,S,\n", r"o\.csv:2: a point target needs sigma"),
    (HEADER + "A,range,0,2,,1,0,,S,\n", r"o\.csv:2: low 1 is above high 0"),
    (HEADER + "A,range,3,2,,0,1,,S,\n", r"o\.csv:2: time_end 2 is before time 3"),
    (HEADER + "A,point,1,,5,,,0,S,\n", r"must be positive"),
])
def test_bad_csv_names_file_and_row(tmp_path, text, match):
    with pytest.raises(SdInputError, match=match):
        outcomes.load(_csv(tmp_path, text))


@pytest.fixture(scope="module")
def teacup():
    from pathlib import Path

    from sd.model import load

    return load(Path(__file__).parent / "data" / "teacup.mdl")


def test_unknown_variable_suggests_and_time_outside_run(tmp_path, teacup):
    ts = outcomes.load(_csv(tmp_path, "variable,time,value,sigma\nTeacup Temprature,1,5,1\n"))
    with pytest.raises(SdInputError, match=r"o\.csv:2.*Did you mean 'Teacup Temperature'"):
        outcomes.check_against(ts, teacup, 0, 30)
    ts = outcomes.load(_csv(tmp_path, "variable,time,value,sigma\nteacup temperature,45,5,1\n"))
    with pytest.raises(SdInputError, match=r"o\.csv:2: time 45 is outside the run \(0-30\)"):
        outcomes.check_against(ts, teacup, 0, 30)
    ts = outcomes.load(_csv(tmp_path, "variable,time,value,sigma\nteacup temperature,5,5,1\n"))
    assert outcomes.check_against(ts, teacup, 0, 30)[0].variable == "Teacup Temperature"


def test_a_target_says_how_it_stands_in_its_source():
    from sd.outcomes.targets import Target

    def basis(note):
        return Target("X", "range", 0.0, 1.0, low=0, high=1, note=note).basis

    assert basis("quoted: about 350 kilns") == "quoted"
    assert basis("interpreted: 'a portion' read as 0.2-0.6") == "interpreted"
    assert basis("interpreted: 'gradual increase' (quoted)") == "interpreted"
    assert basis("quoted: about 350; sigma 25 (interpreted)") == "quoted, read with interpretation"
    assert basis("") == "not stated"
