"""A model file is data, never code (issue 8).

Every crafted file below tries to run code that writes a canary file (the
payloads were checked to write it through plain ``pysd.read_vensim``). Each
is tried through ``sd info``, ``sd check``, ``sd run`` on both engines,
``sd.load`` (with its translation) and ``sd.run_many``; afterwards the
canary must not exist, and every command either refuses the file with a
located message (exit 2 / :class:`SdInputError`) or runs the model with its
normal numbers (comments and units are documentation).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import TEST_MODELS, need_shared

from sd.cli import main
from sd.errors import SdInputError

TEACUP = Path(__file__).parent / "data" / "teacup.mdl"
BASE = TEACUP.read_text(encoding="utf-8")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh private cache for each test (first runs, planted entries)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("SD_CACHE_DIR", str(root))
    import sd.model.translate as translate

    monkeypatch.setattr(translate, "_PRIVATE", [])
    return root


def _hostile(canary: Path) -> dict:
    """name -> (model text, refused?) for every class of issue 8."""
    c = str(canary)
    opener = f"open('{c}','w')"
    x27 = f"open(\\x27{c}\\x27,\\x27w\\x27)"      # quotes PySD's eval() restores
    direct = ("GET DIRECT CONSTANTS('data.csv\\x27, \\x27,\\x27, \\x27B2\\x27, {}, _root, {}, "
              f"\\x27x\\x27) and open(\\x27{c}\\x27,\\x27w\\x27) #', ',', 'B2')")
    return {
        # a comment closing PySD's docstring; the code ran when the variable was computed
        "comment-triple-quotes": (BASE.replace("~\tTemperature of the room.",
                                               f'~\tRoom.""";{opener.replace(chr(39), chr(34))};"""x'),
                                  False),
        "comment-backslashes": (BASE.replace("~\tTemperature of the room.",
                                             '~\tA \\N{LATIN SMALL LETTER A} \\x22\\x22\\x22 \\'),
                                False),
        "units-triple-quotes": (BASE.replace("~\tDegrees Fahrenheit\n\t~\tTemperature of the room.",
                                             f'~\tDegrees"""{opener}"""\n\t~\tRoom.'), False),
        # PySD's parser eval()s a lookup's [(x0,y0)-(x1,y1)] range
        "lookup-range-eval": (BASE.replace("[(0,0)-(100,2)]", f"[(0,0)-({opener} and 100,2)]"),
                              True),
        # string arguments of GET functions go into code between bare quotes
        "get-direct-constants-x27": (BASE.replace("\t70\n", f"\t{direct}\n"), True),
        "get-xls-data-quote": (BASE.replace(
            "Room Temperature=\n\t70",
            f"Room Temperature:=\n\tGET XLS DATA('data.xlsx', 'S\\x27, \\x27A\\x27, "
            f"\\x27B2\\x27, None, {{}}, _root, {{}}, \\x27x\\x27) and {x27} #', 'A', 'B2')"), True),
        "get-xls-lookups-trailing-backslash": (BASE.replace(
            "[(0,0)-(100,2)],(0,1),(50,1),(100,1))",
            f'GET XLS LOOKUPS(\'data.xlsx\', \'S\\\', \'+\', \') if open("{c}","w") else 0 #\'))'),
            True),
        "get-direct-data-cell-quote": (BASE.replace(
            "Room Temperature=\n\t70",
            f"Room Temperature:=\n\tGET DIRECT DATA('data.csv', ',', 'A', 'B2\\x27, None, "
            f"{{}}, _root, {{}}, \\x27x\\x27) and {x27} #')"), True),
        # the quoted name of a data variable without an equation
        "data-variable-quoted-name": (BASE.replace(
            "Room Temperature=\n\t70",
            f'"d\', \'p\', {{}}, None) if {opener} else TabData(\'" :INTERPOLATE:\n\t~\t~\t|\n\n'
            "Room Temperature=\n\t70"),
            True),
        "subscript-name-quote": (BASE.replace(
            "Room Temperature=\n\t70",
            f'"dim\') and {opener} and (\'": a, b\n\t~\t~\t|\n\nRoom Temperature=\n\t70'),
            True),
        "macro-name-quote": (BASE.replace(
            "{UTF-8}\n",
            f'{{UTF-8}}\n:MACRO: "m\') and {opener} and (\'"(input)\n'
            f'"m\') and {opener} and (\'" = input\n\t~\t~\t|\n:END OF MACRO:\n'), True),
        # a {UTF-7} header hides the quotes from any byte-level filter
        "utf7-comment": (BASE.replace("{UTF-8}", "{UTF-7}").replace(
            "~\tTemperature of the room.", f"~\tRoom.+ACIAIgAi-;{opener};+ACIAIgAi-x"), True),
    }


def _files(folder: Path) -> None:
    (folder / "data.csv").write_text("a,b\n1,70\n", encoding="utf-8")
    # present, so that what refuses the GET XLS cases is their sheet argument
    (folder / "data.xlsx").write_bytes(b"")


@pytest.mark.parametrize("case", list(_hostile(Path("c"))))
def test_hostile_file_never_runs_code(case, tmp_path, cache, capsys):
    canary = tmp_path / "canary"
    text, refused = _hostile(canary)[case]
    mdl = tmp_path / "m.mdl"
    mdl.write_bytes(text.encode("utf-8"))
    _files(tmp_path)
    commands = [["info"], ["check"], ["run", "--engine", "pysd", "--out", str(tmp_path / "o1")],
                ["run", "--engine", "fast", "--out", str(tmp_path / "o2")]]
    for cmd in commands:
        code = main([cmd[0], str(mdl), *cmd[1:]])
        err = capsys.readouterr().err
        assert not canary.exists(), f"sd {cmd[0]} ran code from {case}"
        assert "internal error" not in err, err
        if cmd[0] == "check":
            # sd check only parses (no code is built): it refuses what cannot be
            # parsed or decoded, and otherwise reports findings (exit 0/1)
            assert code in (0, 1, 2), (cmd, err)
        elif refused:
            assert code == 2, (cmd, err)
            assert "m.mdl" in err and "does not exist" not in err, err
        else:
            assert code == 0, (cmd, err)
    if refused:
        assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
        with pytest.raises(SdInputError):
            import sd
            sd.load(mdl)
        with pytest.raises(SdInputError):
            import sd
            sd.run_many(mdl, pd.DataFrame(index=range(2)))
    else:
        import sd
        model = sd.load(mdl)
        assert model.translation.is_file()
        ds = sd.run_many(model, pd.DataFrame(index=range(2)))
        clean = sd.run_many(TEACUP, pd.DataFrame(index=range(2)))
        np.testing.assert_array_equal(ds["Teacup Temperature"].values,
                                      clean["Teacup Temperature"].values)
        frame = pd.read_csv(tmp_path / "o1" / "results.csv", index_col=0)
        np.testing.assert_allclose(frame["Teacup Temperature"].to_numpy(),
                                   clean["Teacup Temperature"].values[0], rtol=1e-9)
    assert not canary.exists()


def test_comment_text_is_kept_for_sd_info(tmp_path, cache, capsys):
    """The translation gets a harmless copy; sd info shows what the modeler wrote."""
    mdl = tmp_path / "m.mdl"
    mdl.write_text(BASE.replace("~\tTemperature of the room.", '~\tSay """hi""" \\ there'),
                   encoding="utf-8")
    import sd

    model = sd.load(mdl)
    assert model.variables["Room Temperature"].comment == 'Say """hi""" \\ there'
    assert main(["info", str(mdl)]) == 0
    assert 'Say """hi""" \\ there' in capsys.readouterr().out


# -- the cache -------------------------------------------------------------------------------
def _run_pysd(mdl: Path, out: Path) -> int:
    return main(["run", str(mdl), "--engine", "pysd", "--out", str(out)])


def test_planted_translation_is_discarded(tmp_path, cache, monkeypatch, recwarn):
    canary = tmp_path / "canary"
    mdl = tmp_path / "m.mdl"
    shutil.copy(TEACUP, mdl)
    assert _run_pysd(mdl, tmp_path / "a") == 0
    [entry] = list(cache.glob("pysd/*/model.py"))
    entry.write_text(f"open({str(canary)!r}, 'w')\n" + entry.read_text())
    import sd.model.translate as translate

    monkeypatch.setattr(translate, "_PRIVATE", [])     # as a new process would
    assert _run_pysd(mdl, tmp_path / "b") == 0
    assert not canary.exists()
    assert any("failed its integrity check" in str(w.message) for w in recwarn)
    assert "open(" not in entry.read_text()[:200]       # rebuilt


def test_planted_pyc_beside_translation_is_discarded(tmp_path, cache, monkeypatch, recwarn):
    mdl = tmp_path / "m.mdl"
    shutil.copy(TEACUP, mdl)
    assert _run_pysd(mdl, tmp_path / "a") == 0
    [entry] = list(cache.glob("pysd/*"))
    (entry / "__pycache__").mkdir()
    (entry / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"planted")
    import sd.model.translate as translate

    monkeypatch.setattr(translate, "_PRIVATE", [])
    assert _run_pysd(mdl, tmp_path / "b") == 0
    assert not (entry / "__pycache__").exists()
    assert any("__pycache__" in str(w.message) for w in recwarn)


_PLANT = """
import pickle, sys
from pathlib import Path
canary, index = sys.argv[1], Path(sys.argv[2])
class Boom:
    def __reduce__(self):
        return (open, (canary, "w"))
index.write_bytes(pickle.dumps(Boom()))
"""


def test_planted_numba_index_is_never_unpickled(tmp_path, cache):
    """numba's cache index is a pickle: a planted one must fail the HMAC check
    before numba reads it (a new process, as numba's in-memory cache would
    otherwise hide the disk)."""
    import subprocess
    import sys

    canary = tmp_path / "canary"
    mdl = tmp_path / "m.mdl"
    shutil.copy(TEACUP, mdl)
    env = {**os.environ, "SD_CACHE_DIR": str(cache)}
    # a batch: numba's back end (one run uses the python back end, no numba)
    run = [sys.executable, "-c", _BATCH, str(mdl)]
    first = subprocess.run(run + [str(tmp_path / "a.csv")], capture_output=True, text=True,
                           env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    [index] = list(cache.glob("engine/*/__pycache__/*.nbi"))
    subprocess.run([sys.executable, "-c", _PLANT, str(canary), str(index)], check=True)
    second = subprocess.run(run + [str(tmp_path / "b.csv")], capture_output=True, text=True,
                            env=env, timeout=300)
    assert second.returncode == 0, second.stderr
    assert not canary.exists()
    assert "failed its integrity check" in second.stderr
    a = pd.read_csv(tmp_path / "a.csv")
    b = pd.read_csv(tmp_path / "b.csv")
    pd.testing.assert_frame_equal(a, b)


_BATCH = """
import sys
import pandas as pd
import sd
ds = sd.run_many(sys.argv[1], pd.DataFrame(index=range(2)), engine="fast")
ds["Teacup Temperature"].to_pandas().to_csv(sys.argv[2])
"""


def test_cache_of_another_user_is_refused(tmp_path, cache, monkeypatch, capsys):
    cache.mkdir(mode=0o700)
    import sd.model.cache as cache_mod

    monkeypatch.setattr(cache_mod, "_CHECKED", {})
    monkeypatch.setattr(cache_mod.os, "getuid", lambda: os.stat(cache).st_uid + 1)
    assert _run_pysd(TEACUP, tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "belongs to another user" in err and "SD_CACHE_DIR" in err
    assert not (tmp_path / "o").exists()


def test_world_writable_cache_is_refused(tmp_path, cache, capsys):
    cache.mkdir()
    os.chmod(cache, 0o777)
    import sd.model.cache as cache_mod

    cache_mod._CHECKED.clear()
    assert _run_pysd(TEACUP, tmp_path / "o") == 2
    assert "writable by group or others" in capsys.readouterr().err


def test_cache_is_private(tmp_path, cache):
    assert _run_pysd(TEACUP, tmp_path / "o") == 0
    assert oct(os.stat(cache).st_mode & 0o777) == oct(0o700)
    assert oct(os.stat(cache / "secret.key").st_mode & 0o777) == oct(0o600)


def test_unwritable_cache_is_a_located_message(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SD_CACHE_DIR", str(blocker / "cache"))
    assert _run_pysd(TEACUP, tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "cannot write to the model cache" in err and "SD_CACHE_DIR" in err


def test_full_disk_is_a_located_message(tmp_path, cache, monkeypatch, capsys):
    import errno
    import tempfile

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkdtemp", full)
    mdl = tmp_path / "m.mdl"
    shutil.copy(TEACUP, mdl)
    assert _run_pysd(mdl, tmp_path / "o") == 2
    assert "the disk is full" in capsys.readouterr().err


def test_cache_key_covers_external_files(tmp_path, cache):
    """An edited data file gives new numbers (the key holds its hash)."""
    import sd

    mdl = tmp_path / "m.mdl"
    mdl.write_text(BASE.replace("\t70\n", "\tGET DIRECT CONSTANTS('data.csv', ',', 'B2')\n"),
                   encoding="utf-8")
    _files(tmp_path)
    first = sd.run(sd.load(mdl), engine="pysd")["Room Temperature"].values[0]
    (tmp_path / "data.csv").write_text("a,b\n1,60\n", encoding="utf-8")
    second = sd.run(sd.load(mdl), engine="pysd")["Room Temperature"].values[0]
    assert (first, second) == (70, 60)



@pytest.mark.parametrize("engine", ["pysd", "fast"])
def test_a_model_passed_by_path_rereads_an_edited_data_file(tmp_path, cache, engine):
    """Paths are loaded once per content: the content includes the files the model reads,
    not only the .mdl's bytes (an edited CSV used to give the old numbers in-process)."""
    import sd

    mdl = tmp_path / "m.mdl"
    mdl.write_text(BASE.replace("\t70\n", "\tGET DIRECT CONSTANTS('data.csv', ',', 'B2')\n"),
                   encoding="utf-8")
    _files(tmp_path)
    first = sd.run(mdl, engine=engine)["Room Temperature"].values[0]
    (tmp_path / "data.csv").write_text("a,b\n1,60\n", encoding="utf-8")
    second = sd.run(mdl, engine=engine)["Room Temperature"].values[0]
    assert (first, second) == (70, 60)

_CONCURRENT = """
import sys
from sd.cli import main
code = main(["run", sys.argv[1], "--engine", sys.argv[2], "--out", sys.argv[3]])
sys.exit(code)
"""


def test_four_concurrent_first_runs_succeed(tmp_path, cache):
    """Four processes run a model no one has translated or compiled yet."""
    import subprocess
    import sys

    mdl = tmp_path / "new.mdl"
    mdl.write_text(BASE.replace("\t10\n", "\t11\n", 1), encoding="utf-8")
    env = {**os.environ, "SD_CACHE_DIR": str(cache)}
    engines = ["fast", "fast", "pysd", "pysd"]
    procs = [subprocess.Popen([sys.executable, "-c", _CONCURRENT, str(mdl), e,
                               str(tmp_path / f"out{i}")], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for i, e in enumerate(engines)]
    results = [(p.communicate(timeout=600)[1], p.returncode) for p in procs]
    results = [(code, err) for err, code in results]
    for code, err in results:
        assert code == 0, err
        assert "warning" not in err.lower(), err
    frames = [pd.read_csv(tmp_path / f"out{i}" / "results.csv") for i in range(4)]
    for f in frames[1:]:
        np.testing.assert_allclose(f["Teacup Temperature"], frames[0]["Teacup Temperature"],
                                   rtol=1e-9)
    # one translation, one description, one compiled artefact (one run: no numba code)
    assert len(list(cache.glob("pysd/*"))) == 1 and len(list(cache.glob("model/*"))) == 1
    assert len(list(cache.glob("compiled/*"))) == 1
    assert not list((cache / "tmp").iterdir())


# -- a loaded model is a snapshot ---------------------------------------------------------
def test_loaded_model_is_a_snapshot(tmp_path, cache):
    import sd

    mdl = tmp_path / "m.mdl"
    shutil.copy(TEACUP, mdl)
    model = sd.load(mdl)
    before = sd.run_many(model, pd.DataFrame(index=range(1)))["Teacup Temperature"].values
    mdl.write_text(BASE.replace("\t180)", "\t100)"), encoding="utf-8")
    fast = sd.run_many(model, pd.DataFrame(index=range(1)))["Teacup Temperature"].values
    slow = sd.run(model, engine="pysd")["Teacup Temperature"].values
    np.testing.assert_array_equal(fast, before)
    np.testing.assert_allclose(slow, before[0], rtol=1e-9)
    assert fast[0, 0] == 180
    assert sd.load(mdl).sha256 != model.sha256


# -- the verifiers: defence in depth --------------------------------------------------------
SPECIAL = TEST_MODELS / "special_characters" / "test_special_variable_names.mdl"


def _translation(tmp_path) -> tuple[str, dict]:
    import sd
    from sd.model import verify

    model = sd.load(TEACUP)
    texts, docs = verify.model_strings(model.prepared.abstract)
    return model.translation.read_text(encoding="utf-8"), dict(
        file="model.py", model="teacup.mdl", texts=texts, docs=docs, module_names={"model.py"})


@pytest.mark.parametrize("inject", [
    "import os\n",
    "open('/tmp/x', 'w')\n",
    "_root.joinpath('x').write_text('y')\n",
    "x = ().__class__.__base__.__subclasses__()\n",
    "@component.add(name='Room Temperature')\ndef evil():\n    return eval('1')\n",
    "@component.add(name='Room Temperature')\ndef evil():\n    return np.load('x.npy')\n",
    "@component.add(name='Room Temperature')\ndef evil():\n    return 'not from the model'\n",
    "@component.add(name='Room Temperature')\ndef evil():\n    '''not its documentation'''\n"
    "    return 1\n",
])
def test_pysd_verifier_refuses_code_the_builder_does_not_emit(inject, tmp_path):
    from sd.model.verify import verify_translation

    code, kw = _translation(tmp_path)
    verify_translation(code, **kw)           # the real translation passes
    with pytest.raises(SdInputError, match="refused"):
        verify_translation(code + "\n" + inject, **kw)


@pytest.mark.parametrize("inject", [
    "    open('/tmp/x', 'w')\n", "    x = 'text'\n", "    import os\n", "    t = P.__class__\n",
])
def test_engine_verifier_refuses_code_codegen_does_not_emit(inject):
    from sd.engine.codegen import generate
    from sd.engine.compiler import Compiler
    from sd.engine.model_ir import ModelIR
    from sd.engine.verify import verify_source

    comp = Compiler(ModelIR(TEACUP), "numpy")
    cols = [comp.node_name(c, s) for c, v in comp.ir.vars.items() if v.kind != "lookup"
            for s in range(v.size)]
    source = generate(comp, cols)
    verify_source(source, model="teacup.mdl", numba=False)
    lines = source.splitlines(keepends=True)
    with pytest.raises(SdInputError, match="refused"):
        verify_source("".join(lines[:1] + [inject] + lines[1:]), model="teacup.mdl", numba=False)


def test_engine_source_holds_no_text_from_the_model():
    """Names with quotes, backslashes and operators never reach the engine's code."""
    from sd.engine.codegen import generate
    from sd.engine.compiler import Compiler
    from sd.engine.model_ir import ModelIR

    need_shared(SPECIAL)
    import sd

    model = sd.load(SPECIAL)
    comp = Compiler(ModelIR(model), "numba")
    cols = [comp.node_name(c, s) for c, v in comp.ir.vars.items() if v.kind != "lookup"
            for s in range(v.size)]
    source = generate(comp, cols)
    import inspect
    import re

    import sd.engine.codegen as codegen
    own = set(re.findall(r"[a-z]+", inspect.getsource(codegen).lower()))   # its own vocabulary
    words = {w for name in model.variables for w in re.findall(r"[a-z]+", name.lower())}
    checked = {w for w in words if len(w) > 3} - own
    assert {"quotes", "backslashes", "hyphenated", "superfuluous"} <= checked
    for word in checked:
        assert word not in source.lower(), word


# -- names that are Python's, PySD's or the generated module's own ------------------------
@pytest.mark.parametrize("name", ["Component", "np", "__import__", "self", "os", "_root",
                                  "__data", "eval", "lambda", "simulate", "v0_0"])
def test_names_of_python_things_are_plain_names(name, tmp_path, cache):
    """A variable named like a builtin, a keyword, or a name the generated code uses
    itself (``component``, PySD's decorator object, made the translation fail to import)
    runs with the same numbers on both engines."""
    import sd

    mdl = tmp_path / "m.mdl"
    mdl.write_text(BASE.replace("Room Temperature", name), encoding="utf-8")
    clean = sd.run(TEACUP, engine="fast")["Teacup Temperature"].values
    for engine in ("fast", "pysd"):
        ds = sd.run(mdl, engine=engine)
        np.testing.assert_allclose(ds["Teacup Temperature"].values, clean, rtol=1e-12)
        np.testing.assert_array_equal(ds[name].values, 70.0)


def test_world_writable_cache_is_refused_on_every_path(tmp_path, cache, capsys):
    """The fast engine used the cache best-effort: with a cache others can write it ran
    without it and said nothing, while the PySD path refused. Both refuse now."""
    import sd.model.cache as cache_mod

    mdl = tmp_path / "m.mdl"
    shutil.copy(TEACUP, mdl)
    assert main(["run", str(mdl), "--engine", "fast", "--out", str(tmp_path / "a")]) == 0
    os.chmod(cache, 0o777)
    cache_mod._CHECKED.clear()
    for cmd in (["info", str(mdl)],
                ["run", str(mdl), "--engine", "fast", "--out", str(tmp_path / "b")]):
        assert main(cmd) == 2, cmd
        assert "writable by group or others" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
