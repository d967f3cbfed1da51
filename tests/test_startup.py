"""Start-up that costs what the model costs (issue 13): parse once, compile once.

No test here measures time (``benchmarks/interactive.py`` does): each
asserts on what was imported, parsed, compiled or stored.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import JUAREZ, MODELS, ROOT, TEST_MODELS

DATA = ROOT / "tests" / "data"
TEACUP = DATA / "teacup.mdl"


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("SD_CACHE_DIR", str(root))
    from sd.engine import build
    from sd.model import cache as cache_mod

    cache_mod._CHECKED.clear()
    build._MEMO.clear()          # compiled models of this process: start from the cache
    for name in [n for n in sys.modules if n.startswith("sd_engine_")]:
        monkeypatch.delitem(sys.modules, name)
    return root


def _copy(src: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(src, folder / src.name))


def _models():
    out = sorted(MODELS.glob("*.mdl")) + sorted(DATA.glob("*.mdl"))
    if TEST_MODELS.is_dir():
        out += sorted(TEST_MODELS.glob("*/*.mdl"))
    return out


# -- the parser ---------------------------------------------------------------------------------
def test_entries_split_as_pysds_grammar():
    """The regular expression finds exactly the entries PySD's section grammar
    finds, in every model at hand (quotes, continuations, group headers,
    macros, unclosed quotes)."""
    from pysd.translators.vensim import vensim_utils as vu
    from pysd.translators.vensim.vensim_element import Element
    from pysd.translators.vensim.vensim_file import VensimFile
    from pysd.translators.vensim.vensim_section import SectionElementsVisitor

    from sd.model.entries import split

    checked = 0
    for path in _models():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                vf = VensimFile(path)
                vf.parse(parse_all=False)
            except Exception:  # noqa: BLE001 - a file PySD cannot read has nothing to compare
                continue
        for section in vf.sections:
            tree = vu.Grammar.get("section_elements").parse(section.content)
            want = [(e.equation, e.units, str(e.limits), e.documentation)
                    for e in SectionElementsVisitor(tree).entries]
            found = [Element(e.equation, e.units, e.documentation)
                     for e in split(section.content) if not e.header]
            got = [(e.equation, e.units, str(e.limits), e.documentation) for e in found]
            assert got == want, f"{path} section {section.name}"
            checked += 1
    assert checked >= 9


def test_entries_split_as_pysds_grammar_on_crafted_text():
    """Quotes escaped, unclosed or spanning entries, headers, a fourth field,
    and random texts over the characters that matter: the same split as the
    grammar (which the scanner does in linear time: a text of 10^5 unclosed
    escaped quotes is split at once, where a backtracking scan is quadratic)."""
    import random

    from parsimonious.exceptions import ParseError
    from pysd.translators.vensim import vensim_utils as vu
    from pysd.translators.vensim.vensim_section import SectionElementsVisitor

    from sd.model.entries import split

    def grammar(text):
        try:
            tree = vu.Grammar.get("section_elements").parse(text)
        except ParseError:
            return None
        return [(e.equation, e.units, e.documentation)
                for e in SectionElementsVisitor(tree).entries] or None

    def ours(text):
        found = split(text)
        return None if found is None else \
            [(e.equation, e.units, e.documentation) for e in found if not e.header] or None

    texts = ['a = "x\\"y" ~ u ~ d |', 'a = "x ~ u ~ d | b = 2 ~ u ~ "d" |',
             'a = "\\"\\"" ~ u ~ d | b = 1 ~ ~ |', 'a = b ~ u ~ d ~ :SUPPLEMENTARY |',
             '***** ~ header | a = 1 ~ u ~ d |', 'a = "unclosed ~ u ~ d |',
             'a = "' + '\\"' * 300 + ' ~ u ~ d |']
    rng = random.Random(13)
    texts += ["".join(rng.choice('ab "\\~|=') for _ in range(rng.randint(1, 40)))
              for _ in range(2000)]
    for text in texts:
        assert ours(text) == grammar(text), repr(text)
    assert len(split('a = "' + '\\"' * 100000 + ' ~ u ~ d |')) == 1


def test_parse_by_entries_equals_pysds_parse():
    """The abstract model of an entry-by-entry parse (and of a second parse
    from the memo) is PySD's, element for element."""
    from pysd.translators.vensim.vensim_file import VensimFile

    from sd.model import reparse
    from sd.model.parse import _install_literal_eval

    _install_literal_eval()
    for path in sorted(MODELS.glob("*.mdl")) + [DATA / "macros.mdl"]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vf = VensimFile(path)
            vf.parse()
            want = repr(vf.get_abstract_model())
            for _ in range(2):
                vf = VensimFile(path)
                vf.parse(parse_all=False)
                assert reparse.parse_sections(vf)
                assert repr(vf.get_abstract_model()) == want, path


def test_an_edit_parses_only_the_entry_it_changed(tmp_path, monkeypatch):
    from sd.model import reparse, source
    from sd.model.parse import parse

    path = _copy(TEACUP, tmp_path)
    parse(source.read(path))
    path.write_text(path.read_text().replace("Room Temperature=\n\t70", "Room Temperature=\n\t65"))
    parsed = []
    original = reparse._parsed

    def counting(entry):
        if (entry.equation, entry.units, entry.documentation, entry.header) not in reparse._MEMO:
            parsed.append(entry.equation)
        return original(entry)

    monkeypatch.setattr(reparse, "_parsed", counting)
    parse(source.read(path))
    assert parsed == ["Room Temperature= 65"]


# -- the stored description -------------------------------------------------------------------------
def test_a_rerun_neither_parses_nor_compiles(cache, tmp_path):
    import sd
    from sd.model import load

    path = _copy(TEACUP, tmp_path / "m")
    first = sd.run(path)
    model = load(path)
    assert model.stored is not None and model.parsed._abstract is None
    again = sd.run(model)
    assert model.parsed._abstract is None          # nothing asked for the parse
    assert again.attrs["engine"] == "fast"
    np.testing.assert_array_equal(first["Teacup Temperature"].values,
                                  again["Teacup Temperature"].values)


def test_description_matches_a_fresh_load(cache, tmp_path):
    """Everything read from the description equals what a parse gives."""
    from sd.model import load
    from sd.model.model import from_source
    from sd.model.timing import settings

    path = _copy(JUAREZ, tmp_path / "m")
    load(path)
    recalled = load(path)
    fresh = from_source(recalled.source)
    assert recalled.stored is not None
    assert recalled.variables == fresh.variables
    assert recalled.dependencies == fresh.dependencies
    assert recalled.key == fresh.key
    assert settings(recalled) == settings(fresh)
    over = {"final_time": 1995, "time_step": 0.125}
    assert settings(recalled, over) == settings(fresh, over)


def test_plain_run_imports(cache, tmp_path):
    """A plain ``sd run`` with a warm cache imports no dask, SALib, scipy,
    matplotlib, nor PySD or numba (numbers: benchmarks/interactive.py)."""
    path = _copy(JUAREZ, tmp_path / "m")
    code = textwrap.dedent(f"""
        import sys
        from sd.cli import main
        status = main(["run", {str(path)!r}, "--out", {str(tmp_path / 'out')!r}])
        heavy = ("dask", "distributed", "SALib", "scipy", "matplotlib", "pysd", "numba")
        print(status, sorted(m for m in heavy if m in sys.modules))
    """)
    env = {**os.environ, "SD_CACHE_DIR": str(cache)}
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, cwd=tmp_path) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
    cold, warm = (r.stdout.strip().splitlines()[-1] for r in runs)
    assert cold.startswith("0 ") and "dask" not in cold and "matplotlib" not in cold \
        and "SALib" not in cold                    # the first run parses, with PySD
    assert warm == "0 []"
    assert not (cache / "pysd").exists()          # no PySD translation unless PySD runs


def test_a_model_pickles_before_and_after_its_parse(cache, tmp_path):
    import pickle

    from sd.model import load

    path = _copy(TEACUP, tmp_path / "m")
    load(path)
    model = load(path)                              # from its description: not parsed
    again = pickle.loads(pickle.dumps(model))
    assert again.variables == model.variables and again.abstract is not None
    assert pickle.loads(pickle.dumps(again)).key == model.key


def test_plot_imports_matplotlib_only_when_asked(cache, tmp_path):
    path = _copy(TEACUP, tmp_path / "m")
    code = textwrap.dedent(f"""
        import sys
        from sd.cli import main
        main(["run", {str(path)!r}, "--out", {str(tmp_path / 'out')!r},
              "--plot", "Teacup Temperature"])
        print("matplotlib" in sys.modules)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "SD_CACHE_DIR": str(cache), "MPLBACKEND": "Agg"})
    assert r.stdout.strip().endswith("True") and (tmp_path / "out" / "teacup_temperature.png").is_file()


def test_a_constant_edit_reuses_the_compiled_artefact(cache, tmp_path):
    """Editing a number: no parse, no new compiled code (the numba entry, keyed
    by the generated source, is the one compiled before), new results."""
    from sd.engine import compile_model, run_compiled
    from sd.model import load

    path = _copy(TEACUP, tmp_path / "m")
    cm = compile_model(load(path), "numba")
    before = run_compiled(cm)["Teacup Temperature"].values
    engine_entries = sorted(p.name for p in (cache / "engine").iterdir())
    assert len(engine_entries) == 1

    path.write_text(path.read_text().replace("Room Temperature=\n\t70",
                                             "Room Temperature=\n\t60"))
    edited = load(path)
    assert edited.stored["derived"]["constants"] == {"Room Temperature": [70.0, 60.0]}
    cm2 = compile_model(edited, "numba")
    assert edited.parsed._abstract is None            # derived: never parsed
    assert cm2.code == cm.code and cm2.fn is cm.fn     # the same machine code
    assert sorted(p.name for p in (cache / "engine").iterdir()) == engine_entries
    after = run_compiled(cm2)["Teacup Temperature"].values
    assert after[0, -1] < before[0, -1]                # a cooler room: cooler tea
    # and the derived artefact is what a full compile of the edited text gives
    from sd.model.model import from_source
    from sd.engine import build

    full = build._artefact(from_source(edited.source), "x" * 64, "numba", build=False)
    assert [p[2] for p in cm2.params] == [p[2] for p in full.params]


def test_an_equation_edit_recompiles_what_it_must(cache, tmp_path):
    from sd.engine import compile_model
    from sd.model import load

    path = _copy(TEACUP, tmp_path / "m")
    cm = compile_model(load(path), "python")
    path.write_text(path.read_text().replace(
        "(Teacup Temperature - Room Temperature) / Characteristic Time",
        "(Teacup Temperature - Room Temperature) / (2 * Characteristic Time)"))
    edited = load(path)
    assert edited.stored is None or not edited.stored.get("derived")
    cm2 = compile_model(edited, "python")
    assert cm2.code != cm.code


def test_a_diagram_edit_keeps_everything(cache, tmp_path):
    from sd.engine import compile_model
    from sd.model import load

    path = _copy(JUAREZ, tmp_path / "m")
    cm = compile_model(load(path), "python")
    text = path.read_text(encoding="utf-8")
    head, mark, sketch = text.partition("\\\\\\---///")
    lines = sketch.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("10,"))
    fields = lines[i].split(",")
    fields[3] = str(int(fields[3]) + 7)                 # move one variable 7 px right
    lines[i] = ",".join(fields)
    path.write_text(head + mark + "\n".join(lines) + "\n", encoding="utf-8")
    moved = load(path)
    assert moved.sha256 != cm.model.sha256
    assert moved.stored is not None and moved.parsed._abstract is None
    assert compile_model(moved, "python").digest == cm.digest


def test_a_tampered_description_is_rejected_and_rebuilt(cache, tmp_path):
    from sd.model import load
    from sd.model.cache import CacheWarning

    path = _copy(TEACUP, tmp_path / "m")
    load(path)
    [entry] = (cache / "model").iterdir()
    body = json.loads((entry / "description.json").read_text())
    body["variables"][0][0] = "Planted Name"
    (entry / "description.json").write_text(json.dumps(body))
    with pytest.warns(CacheWarning, match="failed its integrity check"):
        model = load(path)
    assert "Planted Name" not in model.variables and model.stored is None
    assert load(path).stored is not None                # rebuilt and sealed again
    assert "Planted Name" not in load(path).variables


def test_a_tampered_artefact_is_rejected_and_rebuilt(cache, tmp_path):
    import sd
    from sd.model.cache import CacheWarning

    path = _copy(TEACUP, tmp_path / "m")
    want = sd.run(path)["Teacup Temperature"].values
    [entry] = (cache / "compiled").iterdir()
    body = json.loads((entry / "artefact.json").read_text())
    body["source"] = body["source"].replace("def simulate", "import os\ndef simulate")
    (entry / "artefact.json").write_text(json.dumps(body))
    from sd.engine import build

    build._MEMO.clear()                                 # as a new process: read the cache
    with pytest.warns(CacheWarning, match="failed its integrity check"):
        got = sd.run(path)["Teacup Temperature"].values
    np.testing.assert_array_equal(got, want)


def test_a_stored_description_is_data(cache, tmp_path):
    """The entry holds JSON only and is sealed like every other entry."""
    from sd.model import cache as cache_mod, load

    path = _copy(TEACUP, tmp_path / "m")
    load(path)
    [entry] = (cache / "model").iterdir()
    assert sorted(p.name for p in entry.iterdir()) == ["MANIFEST.json", "description.json"]
    json.loads((entry / "description.json").read_text())
    manifest = json.loads((entry / "MANIFEST.json").read_text())
    assert manifest["kind"] == "model" and cache_mod.check(entry, "model", manifest["key"]) is None


# -- the back end of one run --------------------------------------------------------------------------
def test_python_back_end_agrees_with_the_numpy_back_end(cache):
    """The same formulas in the same order on float64 (scalars in CPython,
    arrays in numpy): rtol 1e-12 leaves room only for numpy's own pow/exp on
    arrays versus scalars (all 138 SDXorg cases the engine runs agree too)."""
    from sd.engine import compile_model, run_compiled
    from sd.model import load

    for path in sorted(MODELS.glob("*.mdl")):
        model = load(path)
        a = run_compiled(compile_model(model, "python"))
        b = run_compiled(compile_model(model, "numpy"))
        for name in a.data_vars:
            np.testing.assert_allclose(a[name].values, b[name].values, rtol=1e-12, atol=0,
                                       err_msg=f"{path.name} {name}")


def test_python_back_end_fails_loudly_like_the_others(cache, tmp_path):
    """CPython raises where numba returns inf (a literal division by zero):
    the run is done again on numpy and fails with the usual message."""
    import sd
    from sd.errors import SdRuntimeError

    path = tmp_path / "zero.mdl"
    path.write_text(TEACUP.read_text().replace(
        "Characteristic Time=\n\t10", "Characteristic Time=\n\t10 * (1 / 0)"))
    with pytest.raises(SdRuntimeError, match="Characteristic Time"):
        sd.run(path)


def test_one_run_uses_the_back_end_that_starts_at_once(cache, tmp_path):
    from sd.engine import backends, compile_model
    from sd.model import load

    model = load(_copy(JUAREZ, tmp_path / "m"))
    assert backends.one_run(model).mode == "python"
    cm = compile_model(model, "python")
    huge = type("Big", (), {"size": cm.size, "code": cm.code})()
    assert backends.choose(huge, 10) == "python"
    # many node-steps and the code already compiled in this process: numba
    compile_model(model, "numba")
    assert backends.choose(huge, 10**7) == "numba"


def test_an_equation_edit_in_a_new_process_does_not_import_scipy(cache, tmp_path):
    """PySD's Python names of an unchanged list of variables are the previous
    description's (PySD's namespace module imports scipy)."""
    path = _copy(TEACUP, tmp_path / "m")
    env = {**os.environ, "SD_CACHE_DIR": str(cache)}
    code = textwrap.dedent(f"""
        import sys
        from sd.model import load
        m = load({str(path)!r})
        print("scipy" in sys.modules, m.variables["Heat Loss to Room"].py_name)
    """)
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    path.write_text(path.read_text().replace(
        "(Teacup Temperature - Room Temperature) / Characteristic Time",
        "(Teacup Temperature - Room Temperature) / (2 * Characteristic Time)"))
    edited = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert first.stdout.split() == ["True", "heat_loss_to_room"], first.stderr
    assert edited.stdout.split() == ["False", "heat_loss_to_room"], edited.stderr
    from sd.model import load
    from sd.model.model import from_source

    model = load(path)
    assert model.variables == from_source(model.source).variables    # as PySD names them


def test_a_constant_edit_after_a_reverted_equation_edit_is_derived(cache, tmp_path):
    """Edit an equation, undo it, then change a number: the number's edit
    starts from the version loaded last, so nothing is parsed."""
    from sd.model import load

    path = _copy(TEACUP, tmp_path / "m")
    text = path.read_text()
    load(path)
    path.write_text(text.replace("/ Characteristic Time", "/ (2 * Characteristic Time)"))
    load(path)
    path.write_text(text)
    load(path)
    path.write_text(text.replace("Room Temperature=\n\t70", "Room Temperature=\n\t75"))
    edited = load(path)
    assert edited.stored["derived"]["constants"] == {"Room Temperature": [70.0, 75.0]}
    assert edited.parsed._abstract is None
