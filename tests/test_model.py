"""sd.model: translation cache, variable table, name resolution, parse errors."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sd.errors import SdInputError
from sd.model import load

TEACUP = Path(__file__).parent / "data" / "teacup.mdl"


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SD_CACHE_DIR", str(cache))
    return cache


def test_translation_goes_to_cache_not_beside_model(tmp_path, private_cache):
    mdl = tmp_path / "src" / "teacup.mdl"
    mdl.parent.mkdir()
    shutil.copy(TEACUP, mdl)
    model = load(mdl)
    assert model.translation.is_file()
    assert sorted(p.name for p in mdl.parent.iterdir()) == ["teacup.mdl"]
    # the sealed entry is in the cache; what is imported is a private copy of it
    assert len(list(private_cache.glob("pysd/*/model.py"))) == 1
    assert not model.translation.is_relative_to(mdl.parent)
    # Same content, other path: the same cached translation is reused.
    other = tmp_path / "copy.mdl"
    shutil.copy(TEACUP, other)
    assert load(other).translation == model.translation


def test_edit_invalidates_cache(tmp_path, private_cache):
    mdl = tmp_path / "teacup.mdl"
    shutil.copy(TEACUP, mdl)
    first = load(mdl)
    mdl.write_text(mdl.read_text().replace("\t10\n", "\t12\n", 1))
    second = load(mdl)
    assert first.sha256 != second.sha256
    assert first.translation != second.translation


def test_variable_kinds_units_comments():
    model = load(TEACUP)
    kinds = {v.name: v.kind for v in model.variables.values()}
    assert kinds["Teacup Temperature"] == "stock"
    assert kinds["Heat Loss to Room"] == "flow"
    assert kinds["Room Temperature"] == "constant"
    assert kinds["Cooling Curve"] == "lookup"
    assert kinds["Curve Output"] == "auxiliary"
    assert kinds["TIME STEP"] == "control"
    assert model.variables["Teacup Temperature"].units == "Degrees Fahrenheit"
    assert model.variables["Room Temperature"].comment == "Temperature of the room."


def test_names_match_like_vensim():
    model = load(TEACUP)
    assert model.variable("room_temperature").name == "Room Temperature"
    assert model.variable("  ROOM   temperature ").name == "Room Temperature"


def test_unknown_name_suggests_closest():
    model = load(TEACUP)
    with pytest.raises(SdInputError, match=r"no constant named 'Room Temprature'.*'Room Temperature'"):
        model.variable("Room Temprature", kinds=("constant",), what="constant")


def test_wrong_kind_is_named():
    model = load(TEACUP)
    with pytest.raises(SdInputError, match="is a stock"):
        model.variable("Teacup Temperature", kinds=("constant",), what="constant")


def test_missing_file_and_wrong_suffix(tmp_path):
    with pytest.raises(SdInputError, match="not found"):
        load(tmp_path / "nope.mdl")
    other = tmp_path / "model.txt"
    other.write_text("x")
    with pytest.raises(SdInputError, match=r"\.mdl"):
        load(other)


def test_parse_error_names_file_and_line(tmp_path, private_cache):
    text = TEACUP.read_text().replace(
        "(Teacup Temperature - Room Temperature) / Characteristic Time",
        "((Teacup Temperature - Room Temperature) / Characteristic Time")
    bad = tmp_path / "bad.mdl"
    bad.write_text(text)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "((Teacup" in l)
    with pytest.raises(SdInputError) as info:
        load(bad)
    assert f"bad.mdl:{line}" in str(info.value)


def test_unsupported_function_is_named(tmp_path, private_cache):
    bad = tmp_path / "unsupported.mdl"
    bad.write_text(TEACUP.read_text().replace("Cooling Curve(Time)", "FOOBAR FN(Time, 1)"))
    with pytest.raises(SdInputError, match="FOOBAR FN"):
        load(bad)
    assert not (tmp_path / "unsupported.py").exists()


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"   \n\t\n", "the file is empty"),
    (b"\x00\x01VMF binary", "not a text file"),
])
def test_empty_or_binary_model_is_named(tmp_path, content, message):
    bad = tmp_path / "model.mdl"
    bad.write_bytes(content)
    with pytest.raises(SdInputError, match=message):
        load(bad)
