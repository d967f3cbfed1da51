"""The fast engine agrees with PySD on every model it accepts.

Tolerance: rtol 1e-9 plus atol 1e-12. The engine evaluates PySD's formulas
in the same order, but not always the same floating-point operations
(e.g. SUM is a sequential sum where xarray uses numpy's pairwise sum, and
lookups use a hand-written binary search); those differ by a few ulps,
far below 1e-9 relative. The atol covers values that should be exactly 0
but come out as ~1e-17 after such rounding.

Every ``models/*.mdl`` and every SDXorg test model is a case; a case the
engine refuses is skipped as "refused" with the construct named (never counted
as passing); ``test_accepted_count`` fails if fewer cases are accepted than
recorded, so regressions in coverage show. A case PySD itself cannot run fails,
unless it is on :data:`PYSD_CANNOT_RUN` with the reason.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, TEST_MODELS, need_shared
from sd.engine import UnsupportedModel, run_fast, supports
from sd.errors import SdInputError

SHARED = TEST_MODELS.parent
RTOL, ATOL = 1e-9, 1e-12
#: Test-model cases the engine accepts (of the 139 that PySD 3.14 runs);
#: raise it when coverage grows.
MIN_ACCEPTED = 138

#: Cases the fast engine accepts but PySD 3.14.3 itself cannot run, so there is
#: no reference to agree with. Each entry says why; any other PySD failure
#: fails the agreement test, and a listed case that PySD runs fails too (so the
#: list cannot outlive a PySD fix).
PYSD_CANNOT_RUN = {
    "data_from_other_model/model_to_generate_data.mdl":
        "PySD 3.14.3 fails to store a 3-D subscripted output (ValueError: could not "
        "broadcast input array from shape (3,2,1) into shape (3,2))",
}


def _cases():
    cases = [pytest.param(p, id=f"models/{p.name}") for p in sorted((ROOT / "models").glob("*.mdl"))]
    tests = SHARED / "tests"
    if tests.is_dir():
        cases += [pytest.param(p, id=f"{p.parent.name}/{p.name}")
                  for p in sorted(tests.glob("*/*.mdl"))]
    return cases


CASES = _cases()


@functools.lru_cache(maxsize=None)
def _support(path: Path):
    return supports(path)


@pytest.fixture(scope="session")
def pysd_work(tmp_path_factory):
    return tmp_path_factory.mktemp("pysd")


@functools.lru_cache(maxsize=None)
def _pysd_model_file(path: Path, work: Path) -> Path:
    """Translate once per session, in a copy of the model's folder (the
    translation must never land next to the shared .mdl)."""
    import pysd

    dst = work / f"{path.parent.parent.name}-{path.parent.name}"
    if not dst.exists():
        shutil.copytree(path.parent, dst, ignore=shutil.ignore_patterns("*.py", "*.nc"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pysd.read_vensim(str(dst / path.name))
    return dst / (path.stem + ".py")


def _pysd_run(path: Path, work: Path, params=None) -> pd.DataFrame:
    import pysd

    case = f"{path.parent.name}/{path.name}"
    try:
        py = _pysd_model_file(path, work)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = pysd.load(str(py)).run(params=params, progress=False)
    except Exception as exc:  # noqa: BLE001 - PySD's own failures
        if case in PYSD_CANNOT_RUN:
            pytest.skip(f"PySD cannot run this model: {PYSD_CANNOT_RUN[case]}")
        pytest.fail(f"PySD cannot run {case} ({type(exc).__name__}: {exc}); if PySD itself is "
                    "at fault, list the case in PYSD_CANNOT_RUN with the reason")
    assert case not in PYSD_CANNOT_RUN, f"PySD now runs {case}: remove it from PYSD_CANNOT_RUN"
    return frame


#: Cases where PySD's own numerics stop short of rounding error, with the
#: absolute tolerance as a fraction of the column's largest magnitude.
#: ALLOCATE AVAILABLE: PySD finds the priority at which the allocations add up
#: to the supply with scipy's least_squares (default xtol 1e-8); the engine
#: bisects to machine precision, so an allocation PySD leaves at 3.5e-7 out of
#: ~750 is 6e-14 here (measured: worst difference 4.7e-10 of the scale).
LOOSER = {"allocate_available": 1e-8}


def assert_agree(ds, frame: pd.DataFrame, run=0, scaled_atol=0.0) -> None:
    """Every PySD column at every saved time equals the engine's value."""
    assert np.allclose(ds["time"].values, frame.index.to_numpy(dtype=float), rtol=0, atol=1e-9)
    bad = []
    for col in frame.columns:
        if col == "Time":
            continue
        name, _, elems = col.partition("[")
        assert name in ds, f"engine output lacks {name!r}"
        da = ds[name].isel(run=run)
        if elems:
            try:
                da = da.sel({d: e.strip() for d, e in zip(da.dims[1:], elems[:-1].split(","))})
            except (KeyError, ValueError):
                bad.append(f"engine output lacks element {col!r}")
                continue
        got = da.values.astype(float)
        want = frame[col].to_numpy(dtype=float)
        atol = max(ATOL, scaled_atol * float(np.nanmax(np.abs(want), initial=0.0)))
        ok = np.isclose(got, want, rtol=RTOL, atol=atol, equal_nan=True)
        if not ok.all():
            i = int(np.argmin(ok))
            bad.append(f"{col} at t={frame.index[i]}: engine {got[i]!r}, PySD {want[i]!r}")
    assert not bad, "; ".join(bad[:5])


#: SDXorg cases also checked on the numba back end. The full sweep runs the
#: numpy back end (no JIT: compiling ~100 models with numba costs ~1 s each,
#: over the 3-minute budget); the two back ends share the generated
#: expressions and differ only in helpers, IF THEN ELSE and state arrays, so
#: this subset covers every stateful kind and the allocations; the other
#: vector helpers are checked on ``tests/data/vectors.mdl``, macros on
#: ``tests/data/macros.mdl`` and the table readers by
#: ``test_table_readers_match_pysd``.
NUMBA_CASES = (
    "abs", "active_initial", "builtin_max", "builtin_min", "delay_fixed", "delays",
    "exp", "forecast", "if_stmt", "initial_function", "input_functions", "ln", "log",
    "logicals", "lookups", "lookups_inline", "non_negative_stocks", "power", "rounding",
    "sample_if_true", "smooth", "sqrt", "subscript_aggregation", "subscript_1d_arrays",
    "trend", "trig", "xidz_zidz", "allocate_by_priority", "invert_matrix",
    "subscript_mapping_simple", "allocate_available", "get_data_args_3d_xls",
)


def _mode(path: Path):
    return None if path.parent.name == "models" else "numpy"


@pytest.mark.parametrize("path", CASES)
def test_agrees_with_pysd(path, pysd_work):
    ok, reason = _support(path)
    if not ok:
        pytest.skip(f"refused by the fast engine: {reason}")
    frame = _pysd_run(path, pysd_work)
    assert_agree(run_fast(path, mode=_mode(path)), frame,
                 scaled_atol=LOOSER.get(path.parent.name, 0.0))


@pytest.mark.parametrize("path", [c for c in CASES if c.values[0].parent.name in NUMBA_CASES])
def test_numba_agrees_with_pysd(path, pysd_work):
    pytest.importorskip("numba")
    ok, reason = _support(path)
    if not ok:
        pytest.skip(f"refused by the fast engine: {reason}")
    frame = _pysd_run(path, pysd_work)
    assert_agree(run_fast(path, mode="numba"), frame,
                 scaled_atol=LOOSER.get(path.parent.name, 0.0))


def test_agrees_with_vensim_where_pysd_cannot():
    """PySD fails on this model (a broadcasting error in its builder); the
    engine is checked against the run Vensim saved (data.tab). Tolerance: rtol
    and atol 1e-5, as Vensim writes 6 significant digits; a blank cell in a
    Vensim .tab means the value did not change (filled forward)."""
    folder = SHARED / "tests" / "data_from_other_model"
    if not folder.is_dir():
        pytest.skip(f"SDXorg test models not found at {SHARED}")
    frame = pd.read_csv(folder / "data.tab", sep="\t", index_col=0).ffill()
    ds = run_fast(folder / "model_to_generate_data.mdl", mode="numpy").isel(run=0)
    assert len(frame.columns) == 38
    for col in frame.columns:
        name, _, elems = col.partition("[")
        da = ds[name]
        if elems:
            da = da.sel({d: e.strip() for d, e in zip(da.dims[1:], elems[:-1].split(","))})
        np.testing.assert_allclose(da.values, frame[col].to_numpy(dtype=float), rtol=1e-5,
                                   atol=1e-5, err_msg=col)


def _agree_on_both_back_ends(name, tmp_path):
    """A model of ``tests/data`` run by PySD (in a scratch copy) and by the
    engine on both back ends: every variable at every saved time, rtol 1e-9."""
    import pysd

    shutil.copy(ROOT / "tests" / "data" / name, tmp_path / name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = pysd.read_vensim(str(tmp_path / name)).run(progress=False)
    for mode in ("numpy", "numba"):
        assert_agree(run_fast(tmp_path / name, mode=mode), frame)
    return frame


def test_macros_inlined_per_call(tmp_path):
    """Macros called from a subscripted variable, twice in one equation, and
    from inside another macro, each call with its own stock: the engine's
    inlined copies agree with PySD's Macro objects."""
    frame = _agree_on_both_back_ends("macros.mdl", tmp_path)
    assert {"smoothed demand[north]", "both", "nested[south]", "stock"} <= set(frame.columns)


def test_vector_functions_on_both_back_ends(tmp_path):
    """VECTOR SELECT (sum and max), SORT ORDER, RANK (descending), REORDER and
    INVERT MATRIX of values that change order over time: the small model the
    numba helpers are checked on (the SDXorg cases run on numpy only)."""
    frame = _agree_on_both_back_ends("vectors.mdl", tmp_path)
    order = frame[[f"order[i{i}]" for i in range(1, 5)]].to_numpy()
    assert not (order[0] == order[-1]).all()       # the order changes during the run


@pytest.mark.parametrize("mode", ["interpolate", "hold_backward", "look_forward", "raw",
                                  "extrapolate"])
def test_table_readers_match_pysd(mode):
    """Each way of reading a lookup or data series (PySD's lookup types and
    data keywords) against PySD's own objects, at the points, between them
    and beyond both ends, on both back ends (exact: same arithmetic)."""
    import xarray as xr
    from pysd.py_backend.data import Data
    from pysd.py_backend.lookups import HardcodedLookups
    from sd.engine import runtime

    xs, ys = np.array([0.0, 1.0, 2.5, 4.0]), np.array([3.0, -1.0, 2.0, 7.5])
    probes = np.array([-2.0, 0.0, 0.4, 1.0, 2.0, 2.5, 3.9, 4.0, 6.0])
    if mode in ("interpolate", "hold_backward", "extrapolate"):
        ref = HardcodedLookups(list(xs), list(ys), {}, mode, {}, "table")
        ref.initialize()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")     # PySD warns when it extrapolates
            want = [ref(x) for x in probes]
    if mode in ("look_forward", "raw") or mode == "hold_backward":
        ref = Data()
        ref.data = xr.DataArray(ys, {"time": xs}, ["time"])
        ref.interp, ref.is_float, ref.py_name, ref.nan = mode, True, "table", np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data_want = [ref(x) for x in probes]
        if mode == "hold_backward":     # lookups and data read it the same way
            assert np.array_equal(want, data_want)
        want = data_want
    helper, extra = runtime.TABLE_MODES[mode]
    args = [float(extra.strip(", "))] if extra else []
    LX, LY = xs.copy(), ys.copy()
    numpy_got = runtime.NUMPY[helper](LX, LY, 0, len(xs), probes, *args)
    np.testing.assert_array_equal(numpy_got, want)
    if importlib.util.find_spec("numba"):
        fn = runtime.numba_helpers()[helper]
        np.testing.assert_array_equal([fn(LX, LY, 0, len(xs), x, *args) for x in probes], want)


def test_test_models_present():
    tests = need_shared(TEST_MODELS)
    assert len(list(tests.glob("*/*.mdl"))) >= 139


def test_accepted_count():
    tests = need_shared(TEST_MODELS)
    accepted = [p for p in sorted(tests.glob("*/*.mdl")) if _support(p)[0]]
    assert len(accepted) >= MIN_ACCEPTED, f"only {len(accepted)} test models accepted"


JUAREZ = ROOT / "models" / "juarez_brick_kilns.mdl"
SMOOTH = SHARED / "tests" / "smooth_and_stock" / "test_smooth_and_stock.mdl"


def _constants_of(path):
    from sd.engine import compile_model

    cm = compile_model(path)
    return [p for p in cm.params if not p[1]]


@pytest.mark.parametrize("path", [JUAREZ, SMOOTH], ids=["juarez", "smooth_and_stock"])
def test_many_runs_equal_separate_pysd_runs(path, pysd_work):
    assert path.is_file(), f"{path} is missing"
    consts = [p for p in _constants_of(path) if p[2] != 0][:3]
    assert consts, "model has no non-zero constants to sample"
    rng = np.random.default_rng(3)
    samples = pd.DataFrame({name: default * rng.uniform(0.5, 1.5, 4) for name, _, default in consts},
                           index=pd.Index([10, 11, 12, 13], name="run"))
    ds = run_fast(path, samples)
    assert list(ds["run"].values) == [10, 11, 12, 13]
    for name in samples.columns:
        assert np.array_equal(ds[name].values, samples[name].to_numpy())
    for i, (_, row) in enumerate(samples.iterrows()):
        frame = _pysd_run(path, pysd_work, params=row.to_dict())
        assert_agree(ds, frame, run=i)


def test_numpy_back_end_agrees(pysd_work):
    path = SMOOTH if SMOOTH.is_file() else JUAREZ
    samples = pd.DataFrame(index=range(3))
    a = run_fast(path, samples, mode="numpy")
    b = run_fast(path, samples, mode="numba")
    for v in a.data_vars:
        np.testing.assert_allclose(a[v].values, b[v].values, rtol=RTOL, atol=ATOL)


def test_refused_construct_names_it(tmp_path):
    mdl = tmp_path / "random.mdl"
    mdl.write_text(
        "{UTF-8}\nx = RANDOM UNIFORM(0, 1, 3)\n\t~\t~\t|\n"
        "FINAL TIME = 10\n\t~\t~\t|\nINITIAL TIME = 0\n\t~\t~\t|\n"
        "SAVEPER = 1\n\t~\t~\t|\nTIME STEP = 1\n\t~\t~\t|\n")
    ok, reason = supports(mdl)
    assert not ok and "RANDOM UNIFORM" in reason and "'x'" in reason
    with pytest.raises(UnsupportedModel, match="RANDOM UNIFORM.*'x'"):
        run_fast(mdl)


def test_unknown_sample_column_suggests(tmp_path):
    path = SMOOTH if SMOOTH.is_file() else JUAREZ
    name = _constants_of(path)[0][0]
    wrong = name[:-1] + ("x" if name[-1] != "x" else "y")
    with pytest.raises(SdInputError, match=f"{wrong!r}.*Did you mean.*{name!r}"):
        run_fast(path, pd.DataFrame({wrong: [1.0]}))


def test_stock_sample_column_refused():
    path = SMOOTH if SMOOTH.is_file() else JUAREZ
    from sd.engine.model_ir import ModelIR
    from pysd.translators.structures.abstract_expressions import IntegStructure

    ir = ModelIR(path)
    stock = next(v.name for v in ir.vars.values()
                 if v.kind == "aux" and isinstance(v.flat[0][0].ast, IntegStructure))
    with pytest.raises(SdInputError, match="not a constant"):
        run_fast(path, pd.DataFrame({stock: [1.0]}))


def test_variables_and_times_subset():
    path = SMOOTH if SMOOTH.is_file() else JUAREZ
    full = run_fast(path, pd.DataFrame(index=range(2)))
    name = list(full.data_vars)[0]
    t = full["time"].values[[0, -1]]
    part = run_fast(path, pd.DataFrame(index=range(2)), variables=[name.upper()], times=t)
    assert list(part.data_vars) == [name]
    np.testing.assert_array_equal(part[name].values, full[name].sel(time=t).values)


@pytest.mark.parametrize("time", [
    {"saveper": 1.0},
    {"initial_time": 1990, "final_time": 1999.9},  # PySD initialises at INITIAL TIME
], ids=["saveper", "initial-time"])
def test_run_many_fast_equals_pysd_fallback(time):
    from sd.scenarios import Scenario
    from sd.simulation import run_many

    path = JUAREZ
    consts = [p for p in _constants_of(path) if p[2] != 0][:2]
    samples = pd.DataFrame({n: [v * 0.8, v * 1.2] for n, _, v in consts},
                           index=pd.Index(["a", "b"], name="run"))
    from sd.engine import compile_model

    keep = [o[0] for o in compile_model(path).outputs if not o[1]]
    fast = run_many(path, samples, variables=keep, engine="fast", scenario=Scenario(time=time))
    slow = run_many(path, samples, variables=keep, engine="pysd", scenario=Scenario(time=time))
    assert list(fast["run"].values) == ["a", "b"]
    np.testing.assert_allclose(fast["time"].values, slow["time"].values)
    for v in keep:
        if v in samples.columns:
            continue
        np.testing.assert_allclose(fast[v].values, slow[v].values, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("engine", ["fast", "pysd"])
def test_saveper_not_multiple_of_time_step_is_refused(engine):
    """Both engines would save only the steps that fall on SAVEPER (a grid the
    user did not ask for): refused, naming both values and the nearest choices."""
    from sd.scenarios import Scenario
    from sd.simulation import run_many

    with pytest.raises(SdInputError, match=r"SAVEPER \(0.3\) is not a whole multiple of TIME "
                                           r"STEP \(0.125\).*0.25 or 0.375"):
        run_many(JUAREZ, pd.DataFrame(index=range(2)), engine=engine,
                 scenario=Scenario(time={"saveper": 0.3, "time_step": 0.125}))


def test_generated_source_does_not_depend_on_hash_seed():
    """numba's disk cache is keyed by the source's bytes: code generation that
    followed set order (string hashing varies per process) recompiled the model
    in every new process."""
    import subprocess
    import sys

    script = ("import sys; from pathlib import Path\n"
              "from sd.engine.model_ir import ModelIR\n"
              "from sd.engine.compiler import Compiler\n"
              "from sd.engine.codegen import generate\n"
              "comp = Compiler(ModelIR(Path(sys.argv[1])), 'numba')\n"
              "cols = [comp.node_name(c, s) for c, v in comp.ir.vars.items() if v.kind != 'lookup'"
              " for s in range(v.size)]\n"
              "sys.stdout.write(generate(comp, cols))\n")
    mdl = Path(__file__).resolve().parents[1] / "models" / "juarez_brick_kilns.mdl"
    sources = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        r = subprocess.run([sys.executable, "-c", script, str(mdl)], capture_output=True,
                           text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        sources.append(r.stdout)
    assert sources[0] and sources[0] == sources[1]


def test_threaded_runs_equal_single_thread(monkeypatch):
    """Runs are split over threads for large batches; every run is independent,
    so the numbers must be bitwise identical whatever the split."""
    pytest.importorskip("numba")
    samples = pd.DataFrame({"Fuel Shock Size": np.linspace(0.0, 1.0, 600),
                            "Liberalisation Year": np.linspace(1991, 1994, 600)})
    results = []
    for threads in ("1", "3"):
        monkeypatch.setenv("SD_THREADS", threads)
        results.append(run_fast(JUAREZ, samples, variables=["Propane Share", "Cooperation"]))
    for name in ("Propane Share", "Cooperation"):
        np.testing.assert_array_equal(results[0][name].values, results[1][name].values)
    assert not np.allclose(results[0]["Propane Share"].values[0], results[0]["Propane Share"].values[-1])
