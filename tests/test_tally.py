"""The tally: every SDXorg test model (``.mdl``, ``.xmile``, ``.stmx``) through ``sd run MODEL
--out DIR``. Each one reproduces its canonical output (Vensim's or Stella's ``output.tab`` /
``output.csv``) or is refused with a message naming what is unsupported; none ends in an
internal error. The exceptions are listed here with their reasons, and the README's table
lists the same ones (``test_readme_lists_every_exception``).

Tolerance: |sd - canonical| <= 1e-5 + 1e-5 |sd| at every canonical time, PySD's own test of
these models (the canonical files hold 6 significant digits). Two cases use PySD's looser
tolerance, with its reason (:data:`LOOSER`).

Speed: the cases run in this process through ``sd.cli.main`` (one subprocess each would cost
~2 s of start-up apiece), as ``sd run`` runs them (one run: the fast engine's back end chosen
by cost, no numba compile). A handful run through a real ``sd run`` subprocess
(:func:`test_sd_run_subprocess`).
"""
from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, TEST_MODELS, need_shared

RTOL = ATOL = 1e-5
#: PySD's own looser tolerances for these cases (tests/pytest_integration of PySD 3.14).
LOOSER = {
    "allocate_available/test_allocate_available.mdl":
        (2e-2, "ALLOCATE AVAILABLE is solved numerically; Vensim's and PySD's solutions differ "
               "by up to 1.5% on a few allocations (PySD's tolerance: rtol 2e-2)"),
    "arguments/test_arguments.mdl":
        (1e-2, "a nested SMOOTH of a nested SMOOTH: 0.5% from Vensim at t=5 (PySD's tolerance: "
               "rtol 1e-2)"),
}
#: Canonical output other than the folder's output.tab/.csv.
CANONICAL = {"data_from_other_model/model_to_generate_data.mdl": "data.tab"}
#: Data files a case is run with (``--data``), as Vensim's data sources.
DATA = {"data_from_other_model/test_data_from_other_model.mdl": ["data.tab"]}

#: Cases refused, each with the exit status, a pattern of the message and the reason.
REFUSED = {
    "control_vars/test_control_vars.mdl": (
        2, r"test_control_vars\.mdl:\d+: INITIAL TIME changes during the run",
        "time settings that change during the run (Vensim DSS allows them; sd reads them once)"),
    "dynamic_final_time/test_dynamic_final_time.mdl": (
        2, r"test_dynamic_final_time\.mdl:\d+: FINAL TIME changes during the run",
        "FINAL TIME computed during the run (ends the run on a condition)"),
    "get_constants/test_get_constants.mdl": (
        2, r"reads the file 'data\.xls', which does not exist",
        "the folder lacks its data files (data.xls, data.csv; also upstream)"),
    "get_data/test_get_data.mdl": (
        2, r"reads the file 'data down\.xls', which does not exist",
        "the folder lacks its data files (data down.xls, data across.xls; also upstream)"),
    "get_time_value/test_get_time_value.mdl": (
        2, r"test_get_time_value\.mdl:\d+: GET TIME VALUE\(1, \.\.\., 0\)",
        "GET TIME VALUE relative to INITIAL TIME and calendar measures of model time (need "
        "Vensim's date settings; PySD does not implement them)"),
}
_MACRO = (2, r"PySD cannot parse near '(EXPRESSION|SECOND) MACRO\(",
          "the XMILE file calls a macro it does not define (xmutil did not export it)")
_QUESTION = (2, r"is '\?\?\?', a placeholder",
             "an equation is '???' (xmutil could not translate it): the file is incomplete")
for _stem, _reason in [("macro_expression/test_macro_expression", _MACRO),
                       ("macro_multi_expression/test_macro_multi_expression", _MACRO),
                       ("macro_multi_macros/test_macro_multi_macros", _MACRO),
                       ("macro_stock/test_macro_stock", _MACRO),
                       ("subscript_1d_arrays/test_subscript_1d_arrays", _QUESTION),
                       ("subscript_constant_call/test_subscript_constant_call", _QUESTION),
                       ("subscript_mixed_assembly/test_subscript_mixed_assembly", _QUESTION),
                       ("subscript_multiples/test_multiple_subscripts", _QUESTION),
                       ("subscript_subranges/test_subscript_subrange", _QUESTION),
                       ("subscript_subranges_equal/test_subscript_subrange_equal", _QUESTION),
                       ("subscript_updimensioning/test_subscript_updimensioning", _QUESTION),
                       ("subscripted_flows/test_subscripted_flows", _QUESTION)]:
    for _suffix in (".xmile", ".stmx"):
        REFUSED[_stem + _suffix] = _reason
REFUSED.update({
    "logicals/test_logicals.stmx": (
        2, r"test_logicals\.stmx: PySD could not read the XMILE model near '\( IF false_input "
           r"not THEN", "Stella's prefix NOT written after its operand by the exporter: PySD's "
           "XMILE grammar does not parse it (the .xmile of the same folder runs)"),
    "lookups/test_lookups.stmx": (
        2, r"test_lookups\.stmx: PySD could not read the XMILE model .*LookupsStructure",
        "a graphical function PySD's XMILE reader fails on (the .xmile files of the same "
        "folder run)"),
    "special_characters_xmile/test_special_variable_names.stmx": (
        2, r"PySD cannot parse near 'Flow_w/_division",
        "a name with '/' written unquoted by Stella: PySD's XMILE grammar reads it as a "
        "division (the .xmile of the same folder runs)"),
})
#: Cases that run but do not reproduce the canonical output, with the reason.
DIFFERENT = {
    "active_initial/test_active_initial.xmile":
        "ACTIVE INITIAL exported by xmutil as an XMILE stock whose initial value is not the "
        "active initial (Stock A starts at 0, Vensim 45); PySD marks the case failing",
    "active_initial/test_active_initial.stmx": "as test_active_initial.xmile",
    "smooth_and_stock/test_smooth_and_stock.xmile":
        "the XMILE file is a different model from the folder's .mdl: it has no 'Input', "
        "'Smoothed Input' or 'Smoothing Time', which the canonical output holds",
    "smooth_and_stock/test_smooth_and_stock.stmx": "as test_smooth_and_stock.xmile",
}


def _cases():
    if not TEST_MODELS.is_dir():
        return [pytest.param(None, id="test-models-missing")]
    files = sorted(p for pattern in ("*/*.mdl", "*/*.xmile", "*/*.stmx")
                   for p in TEST_MODELS.glob(pattern))
    return [pytest.param(p, id=f"{p.parent.name}/{p.name}") for p in files]


def _key(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _sd_run(model: Path, out: Path) -> tuple[int, str]:
    args = ["run", str(model), "--out", str(out)]
    for name in DATA.get(_key(model), []):
        args += ["--data", str(model.parent / name)]
    err = io.StringIO()
    from sd.cli import main

    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")      # the engine's "running PySD" notice
        code = main(args)
    return code, err.getvalue()


def canonical(model: Path) -> pd.DataFrame:
    """The canonical output, as PySD's tests read it: time index; a constant, which Vensim
    writes in the first row only, filled down."""
    path = model.parent / CANONICAL.get(_key(model), "")
    if not path.is_file():
        path = next(p for p in (model.parent / "output.csv", model.parent / "output.tab")
                    if p.is_file())
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    frame = pd.read_csv(io.StringIO(text), sep="\t" if path.suffix == ".tab" else ",",
                        index_col=0)
    frame.index = pd.to_numeric(frame.index, errors="coerce")
    frame = frame[~np.isnan(frame.index)].apply(pd.to_numeric, errors="coerce")
    constant = frame.iloc[1:].isna().all() & frame.iloc[0].notna()
    for col in frame.columns[constant.values]:
        frame[col] = frame[col].iloc[0]
    return frame


def _norm(name: str) -> str:
    return " ".join(str(name).replace('"', "").replace("_", " ").lower().split()) \
        .replace(", ", ",").replace(" [", "[")


def compare(model: Path, results: Path) -> list[str]:
    """Columns (and the first time) where the run differs from the canonical output."""
    want = canonical(model)
    got = pd.read_csv(results, index_col=0)
    got.columns = [_norm(c) for c in got.columns]
    rtol = LOOSER.get(_key(model), (RTOL,))[0]
    bad = []
    for col in want.columns:
        key = _norm(col)
        if key not in got.columns:
            bad.append(f"{col}: not in results.csv")
            continue
        times = want.index.to_numpy(dtype=float)
        rows = [np.flatnonzero(np.isclose(got.index, t, rtol=0, atol=1e-9)) for t in times]
        if any(len(r) == 0 for r in rows):
            bad.append(f"{col}: results lack a canonical time")
            continue
        g = got[key].to_numpy(dtype=float)[[r[0] for r in rows]]
        w = want[col].to_numpy(dtype=float)
        ok = (np.abs(g - w) <= ATOL + rtol * np.abs(g)) | (np.isnan(g) & np.isnan(w))
        if not ok.all():
            i = int(np.argmin(ok))
            bad.append(f"{col} at t={times[i]:g}: sd {g[i]:.6g}, canonical {w[i]:.6g}")
    return bad


@pytest.mark.parametrize("model", _cases())
def test_test_model_reproduces_or_is_refused_by_name(model, tmp_path):
    need_shared(TEST_MODELS)
    case = _key(model)
    out = tmp_path / "out"
    code, err = _sd_run(model, out)
    assert "internal error" not in err and "Traceback" not in err, err
    if case in REFUSED:
        status, pattern, _ = REFUSED[case]
        assert code == status, f"expected exit {status} ({REFUSED[case][2]}), got {code}: {err}"
        assert re.search(pattern, err), err
        assert not (out / "results.csv").exists()
        return
    assert code == 0, err
    bad = compare(model, out / "results.csv")
    if case in DIFFERENT:
        assert bad, f"{case} now reproduces its canonical output: remove it from DIFFERENT"
        return
    assert not bad, "; ".join(bad[:5])


SUBPROCESS = ["smooth_and_stock/test_smooth_and_stock.mdl", "subscript_2d_arrays/test_subscript_2d_arrays.mdl",
              "fully_invalid_names/test_fully_invalid_names.mdl", "lookups/test_lookups.xmile",
              "get_time_value/test_get_time_value.mdl"]


@pytest.mark.parametrize("case", SUBPROCESS)
def test_sd_run_subprocess(case, tmp_path):
    """The real command, default engine (numba where the fast engine runs the model)."""
    model = need_shared(TEST_MODELS) / case
    assert model.is_file(), f"{case} is missing from {TEST_MODELS}"
    r = subprocess.run([sys.executable, "-m", "sd", "run", str(model), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=600)
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    if _key(model) in REFUSED:
        assert r.returncode == REFUSED[_key(model)][0] and re.search(REFUSED[_key(model)][1],
                                                                      r.stderr), r.stderr
    else:
        assert r.returncode == 0, r.stderr
        assert not compare(model, tmp_path / "o" / "results.csv")


def test_readme_lists_every_exception():
    """The README's tally names every refused or different case (and no other)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### The SDXorg test models", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`([\w\-]+/[\w\-.]+\.(?:mdl|xmile|stmx))`", section))
    expected = set(REFUSED) | set(DIFFERENT)
    assert listed == expected, (sorted(expected - listed), sorted(listed - expected))
