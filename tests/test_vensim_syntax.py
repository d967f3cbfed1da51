"""Vensim syntax as Vensim accepts it, one test per construct sd adds to PySD's parser and
builder (sd.model.prepass, sd.model.extend, data files, data aliases). Models are tiny and
written here; each result is checked against the value Vensim computes for it."""
from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pandas as pd
import pytest

import sd
from sd.cli import main
from sd.errors import SdInputError
from sd.model.prepass import rewrite

CONTROLS = ("INITIAL TIME = 0 ~ Month ~ |\nFINAL TIME = 4 ~ Month ~ |\n"
            "TIME STEP = 0.5 ~ Month ~ |\nSAVEPER = 1 ~ Month ~ |\n")


def model(tmp_path, text: str, name: str = "m.mdl"):
    path = tmp_path / name
    path.write_text("{UTF-8}\n" + text + CONTROLS, encoding="utf-8")
    return path


def run(path, engine="pysd", **kwargs):
    return sd.run(sd.load(path, **kwargs), engine=engine)


def test_inline_comments_inside_equations(tmp_path):
    path = model(tmp_path, "STP = 2 ~~|\nSNE = 3 ~~|\n"
                           "d = 8760 { nested: IF THEN ELSE(c, 8784 {leap}, 8760 {not}) } ~~|\n"
                           "total = STP+SNE {Note: the sum of both} ~ Dmnl ~ |\n"
                           "x = 5 {a comment\nover two lines} * 2 ~ Dmnl ~ A {braced} comment. |\n"
                           "noise = RANDOM NORMAL(-1, 1, 0, 0.5, 3){RANDOM NORMAL()} ~ Dmnl ~ |\n")
    ds = run(path)
    assert float(ds["total"][0]) == 5 and float(ds["x"][0]) == 10 and float(ds["d"][0]) == 8760
    assert ds["x"].attrs["comment"] == "A {braced} comment."      # comments are not equations
    assert np.all(np.abs(ds["noise"].values) <= 1)


def test_prepass_keeps_every_line_and_leaves_quotes_units_and_comments():
    text = ('{UTF-8}\nx = "a {b}" + c {note\nmore} ~ u {k} ~ doc {x} don\'t |\n'
            "y = 'file{1}.csv' ~~|\n\\\\\\---/// Sketch {keep}\n")
    out = rewrite(text)
    assert out.count("\n") == text.count("\n")
    assert '"a {b}"' in out and "{note" not in out and "more}" not in out
    assert "~ u {k} ~ doc {x} don't |" in out and "'file{1}.csv'" in out
    assert out.endswith("Sketch {keep}\n")


def test_time_step_dollar_and_control_variables_inside_macros(tmp_path):
    """Fiddaman's pink-noise macro style: TIME STEP$ inside a macro, and DELAY FIXED (which
    needs TIME STEP) inside a macro; neither translated with PySD alone."""
    path = model(tmp_path, ":MACRO: SCALED(x)\nSCALED = x * TIME STEP$ / SAVEPER$ ~ x ~ |\n"
                           ":END OF MACRO:\n:MACRO: LAGGED(x, d)\nLAGGED = DELAY FIXED(x, d, 0) "
                           "~ x ~ |\n:END OF MACRO:\n"
                           "a = SCALED(Time) ~~|\nb = LAGGED(Time, 1) ~~|\n"
                           "c = Time$ + TIME STEP$ ~~|\n")
    ds = run(path)
    t = ds["time"].values
    np.testing.assert_allclose(ds["a"].values, t * 0.5, rtol=1e-12)       # TIME STEP/SAVEPER
    np.testing.assert_allclose(ds["b"].values, np.where(t >= 1, t - 1, 0), rtol=1e-12)
    np.testing.assert_allclose(ds["c"].values, t + 0.5, rtol=1e-12)


def test_macros_after_equations_and_groups(tmp_path):
    """PySD's file grammar took the text before the last :MACRO: as one block, so two macros
    after a group header did not parse."""
    path = model(tmp_path, "*******\n\t.Group\n*******~\n\tA group. |\n"
                           ":MACRO: POS(INPUT)\nPOS = MAX(INPUT, 1e-10) ~ INPUT ~ |\n:END OF MACRO:\n"
                           ":MACRO: CLIP(t, f, a, b)\nCLIP = IF THEN ELSE(a >= b, t, f) ~ t ~ |\n"
                           ":END OF MACRO:\n"
                           "y = POS(-3) + CLIP(10, 20, Time, 2) ~~|\n")
    ds = run(path)
    np.testing.assert_allclose(ds["y"].values, 1e-10 + np.where(ds["time"] >= 2, 10, 20))


def test_dynamo_style_lookup_lists_all_x_then_all_y(tmp_path):
    path = model(tmp_path, "T(0, 1, 2, 0, 10, 40) ~ Dmnl ~ |\nPAIRS((0,0),(1,10),(2,40)) ~~|\n"
                           "a = T(Time / 2) ~~|\nb = PAIRS(Time / 2) ~~|\n")
    ds = run(path)
    np.testing.assert_array_equal(ds["a"].values, ds["b"].values)
    assert float(ds["a"].sel(time=3)) == 25.0


DATA = "Sales :INTERPOLATE: ~ widgets ~ |\nPrices ~ USD ~ A data variable with no keyword. |\n" \
       "Revenue = Sales * Prices ~ USD ~ |\n"


def test_data_variables_without_equation_read_from_data_files(tmp_path):
    path = model(tmp_path, DATA)
    data = tmp_path / "history.tab"
    data.write_text("Time\t0\t2\t4\nSales\t10\t20\t40\nPrices\t1\t1\t2\n", encoding="utf-8")
    ds = run(path, data_files=[data])
    np.testing.assert_allclose(ds["Sales"].values, [10, 15, 20, 30, 40])     # interpolated
    np.testing.assert_allclose(ds["Revenue"].values, [10, 15, 20, 45, 80])
    assert ds.attrs["engine"] == "pysd"
    code = _cli("run", path, "--data", data, "--out", tmp_path / "o", "--engine", "pysd")
    assert code == 0
    assert pd.read_csv(tmp_path / "o" / "results.csv")["Sales"].tolist() == [10, 15, 20, 30, 40]


@pytest.mark.parametrize("files, message", [
    ((), r"'Sales', 'Prices' have no equation.*--data FILE"),
    (("other.tab",), r"data variable '(Sales|Prices)' is in none of them .*other\.tab"),
    (("history.vdf",), r"\.vdf is Vensim's binary data format.*export"),
])
def test_data_files_missing_or_wrong_are_named(tmp_path, files, message):
    path = model(tmp_path, DATA)
    (tmp_path / "other.tab").write_text("Time\t0\t4\nCosts\t1\t2\n", encoding="utf-8")
    (tmp_path / "history.vdf").write_bytes(b"\x7fVDF")
    with pytest.raises(SdInputError, match=message):
        run(path, data_files=[tmp_path / f for f in files])


def test_data_files_for_a_model_without_data_variables_are_refused(tmp_path):
    path = model(tmp_path, "x = 1 ~~|\n")
    (tmp_path / "d.tab").write_text("Time\t0\nx\t1\n", encoding="utf-8")
    with pytest.raises(SdInputError, match="no data variable without an equation"):
        sd.load(path, data_files=[tmp_path / "d.tab"])


def test_data_alias_resolves_through_the_model_settings(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "series.csv").write_text("Time,0,4\nv,1,9\n", encoding="utf-8")
    body = "x := GET DIRECT DATA('?hist', ',', '1', 'B2') ~~|\n"
    settings = "\\\\\\---/// Sketch information\nV300\n///---\\\\\\\n:L<%^E!@\n30:?hist=sub/series.csv\n"
    path = tmp_path / "alias.mdl"
    path.write_text("{UTF-8}\n" + body + CONTROLS + settings, encoding="utf-8")
    ds = run(path)
    np.testing.assert_allclose(ds["x"].values, [1, 3, 5, 7, 9])
    path.write_text("{UTF-8}\n" + body + CONTROLS, encoding="utf-8")
    with pytest.raises(SdInputError, match=r"alias.*'\?hist'|'\?hist'.*alias"):
        sd.load(path)


def _cli(*args) -> int:
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        return main([str(a) for a in args])


VECTORS = """DimA: A1, A2, A3 ~~|
DimB: B1, B2 ~~|
DimX: one, two, three, four, five ~~|
a[DimA] = 0, 1, 1 ~~|
b[DimB] = 1, 2 ~~|
c[DimA] = 10 + VECTOR ELM MAP(b[B1], a[DimA]) ~~|
d[DimA, DimB] = 1, 4; 2, 5; 3, 6; ~~|
e[DimA, DimB] = 0, 1; 1, 0; 0, 1; ~~|
f[DimA, DimB] = VECTOR ELM MAP(d[DimA, B1], e[DimA, DimB]) ~~|
x[DimX] = 1, 2, 3, 4, 5 ~~|
y[DimA] = VECTOR ELM MAP(x[three], (DimA - 1)) ~~|
tab[DimX] = 0, 10, 40, 90, 160 ~~|
mode = 0 ~~|
held = VECTOR LOOKUP(tab[one], Time * 1.5 - 1, 0, 4, mode) ~~|
extrapolated = VECTOR LOOKUP(tab[one], Time, 0, 2, 3) ~~|
rows[DimA] = SMOOTH(VECTOR LOOKUP(d[DimA, B1], Time, 0, 1, 0), 1) ~~|
"""


def test_vector_elm_map_and_vector_lookup(tmp_path):
    """Values as Vensim computes them (Vensim's reference: VECTOR ELM MAP moves along the
    vector's last dimension from the element named; VECTOR LOOKUP spreads the vector over
    [xmin, xmax]; mode 0 holds the end values, mode 3 extrapolates the end segments)."""
    ds = run(model(tmp_path, VECTORS))
    assert ds["c"].values[0].tolist() == [11, 12, 12]
    assert ds["f"].isel(time=0).values.tolist() == [[1, 4], [5, 2], [3, 6]]
    assert ds["y"].values[0].tolist() == [3, 4, 5]
    t = ds["time"].values
    np.testing.assert_allclose(ds["held"].values, np.interp(t * 1.5 - 1, [0, 1, 2, 3, 4],
                                                            [0, 10, 40, 90, 160]))
    np.testing.assert_allclose(ds["extrapolated"].values, [0, 40, 160, 300, 440])
    np.testing.assert_allclose(ds["rows"].isel(time=0).values, [1, 2, 3])


@pytest.mark.parametrize("equation, message", [
    ("v = VECTOR LOOKUP(tab[one], Time, 0, 4, 5) ~~|", r"VECTOR LOOKUP with mode 5"),
    ("v = VECTOR ELM MAP(tab, 1) ~~|", r"first argument of VECTOR ELM MAP must be .* one element"),
])
def test_vector_functions_sd_does_not_read_are_named(tmp_path, equation, message):
    path = model(tmp_path, "DimX: one, two ~~|\ntab[DimX] = 1, 2 ~~|\n" + equation + "\n")
    with pytest.raises(SdInputError, match=message):
        sd.run(path, engine="pysd")


def test_verifier_allows_only_sds_own_added_functions(tmp_path, monkeypatch):
    """The translation of a model using VECTOR LOOKUP imports sd_vector_lookup from PySD's
    functions module; the verifier allows that name only while it is sd's function."""
    from pysd.py_backend import functions

    from sd.model import verify

    m = sd.load(model(tmp_path, VECTORS))
    code = m.translation.read_text(encoding="utf-8")
    assert "import" in code and "sd_vector_lookup" in code
    texts, docs = verify.model_strings(m.prepared.abstract)
    kw = dict(file="model.py", model="m.mdl", texts=texts, docs=docs, module_names={"model.py"})
    verify.verify_translation(code, **kw)
    monkeypatch.setattr(functions, "sd_vector_lookup", print)
    with pytest.raises(SdInputError, match="refused.*sd_vector_lookup"):
        verify.verify_translation(code, **kw)


@pytest.mark.parametrize("equations, message", [
    ("a = A FUNCTION OF(b) ~~|\nb = A FUNCTION OF(a) ~~|\n",
     r"m\.mdl:\d+: 'a' is A FUNCTION OF\(\.\.\.\), a placeholder .*causal-loop diagram"),
    ("Dim: A1, A2 ~~|\nx = 1 ~~|\na[A1] = x ~~|\na[A2] = y ~~|\ny = a[A1] ~~|\n",
     r"subscripted variables that need each other's value .*element by element|"
     r"subscripted variables that need each other's value .*one by one"),
])
def test_what_cannot_be_simulated_is_named(tmp_path, equations, message):
    with pytest.raises(SdInputError, match=message):
        sd.load(model(tmp_path, equations))


def test_long_and_deeply_nested_equations(tmp_path):
    """A sum of 3,000 terms and 150 nested parentheses: Vensim runs them; they used to stop
    Python's parser (RecursionError in the translation's check) and PySD's (nesting)."""
    path = model(tmp_path, "a = 1 ~~|\ny = " + " + ".join(["a"] * 3000) + " ~~|\n"
                           "z = " + "(" * 150 + "a" + ")" * 150 + " * 2 ~~|\n")
    for engine in ("pysd", "auto"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # auto: "running PySD" notice
            ds = sd.run(sd.load(path), engine=engine)
        assert float(ds["y"][0]) == 3000 and float(ds["z"][0]) == 2


MACROS = """Dim: A1, A2, A3 ~~|
x[Dim] = 1, 5, 9 ~~|
:MACRO: ROUND(v, interval)
ROUND = IF THEN ELSE(interval = 0, v, interval * INTEGER(v / interval + 0.5)) ~ v ~ |
:END OF MACRO:
:MACRO: CLIP(t, f, a, b)
CLIP = IF THEN ELSE(a >= b, t, f) ~ t ~ |
:END OF MACRO:
:MACRO: LAG(v, d)
LAG = SMOOTH(v, d) ~ v ~ |
:END OF MACRO:
:MACRO: ZERO(v)
ZERO = v - v ~ v ~ |
:END OF MACRO:
r[Dim] = ROUND(x[Dim] * 1.3, 2) ~~|
c[Dim] = CLIP(1, 0, x[Dim], 5) ~~|
l[Dim] = LAG(x[Dim] * Time, 1) ~~|
z = ZERO(RANDOM UNIFORM(0, 1, 1)) ~~|
"""


def test_macros_in_subscripted_equations_are_expanded_per_call(tmp_path):
    """PySD's macro objects fail on these (a macro named ROUND, calls in subscripted
    equations); sd expands each call as Vensim does, with its own SMOOTH per element, and an
    argument computed once per step (ZERO of a random draw is exactly 0)."""
    path = model(tmp_path, MACROS)
    ds = run(path)
    assert ds["r"].values[0].tolist() == [2, 6, 12]
    assert ds["c"].values[0].tolist() == [0, 1, 1]
    assert (ds["z"].values == 0).all()
    assert sorted(ds.data_vars) == sorted(sd.load(path).variables)   # no copies in results
    # SMOOTH(x * Time, 1), Euler at TIME STEP 0.5, saved every 1: s' = x*t - s, s(0) = 0
    s, expected = np.zeros(3), []
    for step in range(9):
        if step % 2 == 0:
            expected.append(s.copy())
        s = s + 0.5 * (np.array([1, 5, 9]) * step * 0.5 - s)
    np.testing.assert_allclose(ds["l"].values, expected, rtol=1e-12)


def test_macro_with_extra_outputs(tmp_path):
    """Fiddaman's SSTATS style: outputs after ':' become model variables."""
    path = model(tmp_path, ":MACRO: STATS(h, s : err, sq)\nSTATS = h - s ~ h ~ |\n"
                           "err = ABS(h - s) ~ h ~ |\nsq = (h - s) ^ 2 ~ h ~ |\n:END OF MACRO:\n"
                           "x = Time ~~|\nr = STATS(x, 2 : e, \"q (squared)\") ~ u ~ |\n")
    m = sd.load(path)
    assert {"e", '"q (squared)"'} <= set(m.variables)
    ds = sd.run(m, engine="pysd")
    t = ds["time"].values
    np.testing.assert_allclose(ds["r"].values, t - 2)
    np.testing.assert_allclose(ds["e"].values, np.abs(t - 2))
    np.testing.assert_allclose(ds['"q (squared)"'].values, (t - 2) ** 2)


# -- the sweep of Vensim's function list (notes/vensim-sweep.md): constructs sd adds ----------
def both(path):
    """The runs of ``path`` on both engines, which must agree to rtol 1e-12 (same Euler
    arithmetic; only the order of floating-point operations may differ)."""
    fast, pysd = run(path, engine="fast"), run(path, engine="pysd")
    for name in fast.data_vars:
        np.testing.assert_allclose(fast[name].values, pysd[name].values, rtol=1e-12,
                                   err_msg=name)
    return fast


def test_sinteg_keeps_its_limits_and_snaps_to_spec(tmp_path):
    """SINTEG (Vensim Reference Guide): never below min or above max; spec when within
    thresh of it; :NA: drops a restriction. Euler steps of 0.5 by hand."""
    path = model(tmp_path, "r = 0.3 ~ u/Month ~|\n"
                           "s = SINTEG(r, 0.5, 0, 1, :NA:, :NA:, :NA:) ~ u ~|\n"
                           "t = SINTEG (-0.4, 1, 0, :NA:, :NA:, :NA:,\\\n\t\t:NA:) ~ u ~|\n"
                           "v = SINTEG(0.04, 0.2, :NA:, :NA:, :NA:, 0.25, 0.015) ~ u ~|\n")
    ds = both(path)
    np.testing.assert_allclose(ds["s"].values, [0.5, 0.8, 1, 1, 1], atol=1e-12)
    np.testing.assert_allclose(ds["t"].values, [1, 0.6, 0.2, 0, 0], atol=1e-12)
    np.testing.assert_allclose(ds["v"].values, [0.2, 0.25, 0.29, 0.33, 0.37], atol=1e-12)
    assert sd.load(path).variables["s"].kind == "stock"


def test_sinteg_with_a_quantum_is_refused_by_name(tmp_path):
    with pytest.raises(SdInputError, match=r"m\.mdl:2: SINTEG in .s.: .*no quantum"):
        sd.load(model(tmp_path, "s = SINTEG(1, 0, 0, 10, 1, :NA:, :NA:) ~~|\n"))


MATERIAL = ("in = STEP(10, 1) ~~|\nd == 2 ~~|\nd2 = d * 1 ~~|\n"
            "out = DELAY MATERIAL(in, d2, 5, 0) ~~|\n"
            ":MACRO: PIPE(x, lag)\nPIPE = DELAY MATERIAL(x, lag, x, 0) ~ x ~|\n:END OF MACRO:\n"
            "p = PIPE(in, d) ~~|\n")


def test_delay_material_with_a_constant_delay_time_is_delay_fixed(tmp_path):
    """Vensim: 'the same as DELAY FIXED except that delay time can be a variable'. The
    input leaves 2 months later; before that, the initial value (5; the macro: the input
    at the start, 0). Thyroid-2008 calls it through a macro, as p does."""
    ds = both(model(tmp_path, MATERIAL))
    assert ds["out"].values.tolist() == [5, 5, 0, 10, 10]
    assert ds["p"].values.tolist() == [0, 0, 0, 10, 10]


@pytest.mark.parametrize("change", [
    ("d2 = d * 1", "d2 = d + Time"),           # a delay time that changes
    ("p = PIPE(in, d)", "p = PIPE(in, d + STEP(1, 2))"),  # through the macro's argument
])
def test_delay_material_with_a_varying_delay_time_is_refused_by_name(tmp_path, change):
    with pytest.raises(SdInputError, match=r"m\.mdl:\d+: DELAY MATERIAL in '\w+' has a delay "
                                           r"time that may change during the run"):
        sd.load(model(tmp_path, MATERIAL.replace(*change)))


def test_and_binds_tighter_than_or(tmp_path):
    """Vensim's operator table: :NOT:, relations, then :AND:, then :OR: (PySD nested a
    flat chain from the right, the fast engine from the left: both were wrong once)."""
    ds = both(model(tmp_path,
                    "a = IF THEN ELSE(Time > 1 :AND: Time < 3 :OR: :NOT: (Time > 0), 1, 0) ~~|\n"
                    "b = IF THEN ELSE(Time < 1 :OR: Time > 2 :AND: Time < 4, 1, 0) ~~|\n"
                    "c = IF THEN ELSE(Time < 1 :or: Time > 1 :and: Time < 4 :and: Time <> 2 "
                    ":OR: Time = 4, 1, 0) ~~|\n"))
    assert ds["a"].values.tolist() == [1, 0, 1, 0, 0]
    assert ds["b"].values.tolist() == [1, 0, 0, 1, 0]
    assert ds["c"].values.tolist() == [1, 0, 0, 1, 1]


def test_line_continuations_typed_with_spaces(tmp_path):
    ds = both(model(tmp_path, "out = 1 +\\\n  2 +\\\n \t3 ~~|\nlong name = out *\\\n    2 ~~|\n"))
    assert float(ds["out"][0]) == 6 and float(ds["long name"][0]) == 12


def test_npv_as_vensim_defines_it(tmp_path):
    """NPV = (accum + stream * TIME STEP * df) * factor, accum = INTEG(stream * df, init),
    df = INTEG(-df * rate / (1 + rate * TIME STEP), 1) (Vensim Reference Guide), per call,
    also in a subscripted equation; a model's own NPV macro is used as written."""
    ds = both(model(tmp_path, "cash = 100 ~ $/Month ~|\nrate = 0.1 ~ 1/Month ~|\n"
                              "v = NPV(cash, rate, 0, 1) ~ $ ~|\nw = NPV(cash * 2, rate, 5, 0.5) ~~|\n"
                              "A: a1, a2 ~~|\nx[A] = NPV(cash * 3, rate, 0, 1) ~ $ ~|\n"))
    dt, expected = 0.5, []
    accum, df, accum_w = 0.0, 1.0, 5.0
    for step in range(9):
        if step % 2 == 0:
            expected.append(((accum + 100 * dt * df), (accum_w + 200 * dt * df) * 0.5))
        accum, accum_w, df = accum + dt * 100 * df, accum_w + dt * 200 * df, \
            df - dt * df * 0.1 / (1 + 0.1 * dt)
    np.testing.assert_allclose(ds["v"].values, [e[0] for e in expected], rtol=1e-12)
    np.testing.assert_allclose(ds["w"].values, [e[1] for e in expected], rtol=1e-12)
    np.testing.assert_allclose(ds["x"].values[:, 1], 3 * ds["v"].values, rtol=1e-12)
    own = both(model(tmp_path, ":MACRO: NPV(a, b, c, d)\nNPV = a * 2 ~ a ~|\n:END OF MACRO:\n"
                               "v = NPV(Time, 0, 0, 0) ~~|\n", name="own.mdl"))
    assert own["v"].values.tolist() == [0, 2, 4, 6, 8]


RANDOM = "k = 1 ~~|\nout = k * RANDOM NORMAL(-5, 5, 0, 1, 3) + RANDOM UNIFORM(0, 1, 7) ~~|\n"


def test_random_functions_repeat_their_numbers_in_every_run(tmp_path):
    """PySD ignores Vensim's seed arguments; sd seeds numpy's generator from the model file
    for each PySD run (and restores it), so a rerun gives the same numbers, like Vensim."""
    path = model(tmp_path, RANDOM)
    state = np.random.get_state()[1].copy()
    first, again = run(path)["out"].values, run(path)["out"].values
    assert np.array_equal(first, again) and len(set(first)) == len(first)
    assert np.array_equal(np.random.get_state()[1], state)
    many = sd.run_many(sd.load(path), pd.DataFrame({"k": [1.0, 1.0]}), engine="pysd")
    assert np.array_equal(many["out"].values[0], first)
    assert np.array_equal(many["out"].values[1], first)
    changed = run(model(tmp_path, RANDOM.replace(", 3)", ", 4)"), name="seed4.mdl"))
    assert not np.array_equal(changed["out"].values, first)      # another seed, other numbers


def test_random_functions_are_refused_by_the_fast_engine_by_name(tmp_path):
    with pytest.raises(SdInputError, match=r"RANDOM NORMAL in 'out'.*seeded from the model"):
        run(model(tmp_path, RANDOM), engine="fast")


def test_a_subscript_mapping_pysd_cannot_build_is_named_with_its_line(tmp_path):
    """SDEverywhere's mapping.mdl: a mapping onto a subrange plus an element; PySD's builder
    fails inside numpy. The message names the variable it was building and its line."""
    text = ("DimA: A1, A2, A3 ~~|\nDimB: B1, B2 -> (DimA: SubA, A3) ~~|\nSubA: A1, A2 ~~|\n"
            "b[DimB] = 1, 2 ~~|\na[DimA] = b[DimB] * 10 ~~|\n")
    with pytest.raises(SdInputError, match=r"m\.mdl:5: PySD could not translate 'b' "
                                           r"\(ValueError: cannot reshape"):
        run(model(tmp_path, text))



@pytest.mark.parametrize("name, text, message", [
    ("inf.tab", "Time\t0\t1e309\nSales\t1\t2\nPrices\t1\t1\n", r"inf\.tab:1: the time '1e309' is not a finite"),
    ("twice.tab", "Time\t0\t0\nSales\t1\t2\nPrices\t1\t1\n", r"twice\.tab:1: the time 0 appears twice"),
    ("twice.csv", "Time,Sales,Prices\n0,1,1\n0,2,1\n", r"twice\.csv:3: the time 0 appears twice "
                                                       r"\(also at line 2\)"),
    ("pipe.tab", None, r"pipe\.tab: is not a regular file"),
])
def test_data_file_times_are_finite_and_distinct(tmp_path, name, text, message):
    """PySD's reader took a time of 1e309 and two values for one time silently; a pipe
    given as a data file blocked the read forever."""
    import os

    path = model(tmp_path, DATA)
    data = tmp_path / name
    if text is None:
        os.mkfifo(data)
    else:
        data.write_text(text, encoding="utf-8")
    with pytest.raises(SdInputError, match=message):
        run(path, data_files=[data])
