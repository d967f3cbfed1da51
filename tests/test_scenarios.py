"""sd.scenarios: TOML and .cin reading, --set parsing, validation against a model."""
from __future__ import annotations

from pathlib import Path

import pytest

from sd.errors import SdInputError
from sd.model import load
from sd.scenarios import Scenario, from_assignments, load_cin, load_toml, resolve, validate, write_cin

TEACUP = Path(__file__).parent / "data" / "teacup.mdl"


def test_toml_base_inheritance_and_tables(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('''
[warm]
description = "warm room"
[warm.constants]
"Room Temperature" = 80
"Characteristic Time" = 5

[warmer]
base = "warm"
[warmer.constants]
"Room Temperature" = 90
[warmer.lookups]
"Cooling Curve" = { x = [0, 100], y = [2, 3] }
[warmer.time]
final_time = 20
''')
    s = load_toml(f)
    assert dict(s["warmer"].constants) == {"Room Temperature": 90.0, "Characteristic Time": 5.0}
    assert s["warmer"].lookups["Cooling Curve"] == ((0.0, 100.0), (2.0, 3.0))
    assert s["warmer"].time["final_time"] == 20.0
    assert s["warmer"].description == "warm room"  # inherited when not given


@pytest.mark.parametrize("body, message", [
    ('[a]\nbase = "b"\n[b]\nbase = "a"\n', "circular"),
    ('[a]\nbase = "nope"\n', "base scenario 'nope'"),
    ('[a]\nconstans = {x = 1}\n', "Did you mean 'constants'"),
    ('[a.constants]\nx = "high"\n', "expected a number"),
    ('[a.lookups]\nx = { x = [1, 0], y = [0, 1] }\n', "increase strictly"),
    ('[a.time]\nstep = 1\n', "unknown setting 'step'"),
    ('[a\n', "not valid TOML"),
])
def test_toml_errors_name_the_problem(tmp_path, body, message):
    f = tmp_path / "s.toml"
    f.write_text(body)
    with pytest.raises(SdInputError, match=message) as info:
        load_toml(f)
    assert "s.toml" in str(info.value)


def test_cin_as_vensim_writes_it(tmp_path):
    f = tmp_path / "changes.cin"
    f.write_text(":COM a comment\nRoom Temperature = 75\n"
                 "Cooling Curve( [(0,0)-(100,2)],(0,0.5),(100,1.5) )\n"
                 "FINAL TIME = 12\n\nCharacteristic Time=1e1\n")
    s = load_cin(f)
    assert dict(s.constants) == {"Room Temperature": 75.0, "Characteristic Time": 10.0}
    assert s.lookups["Cooling Curve"] == ((0.0, 100.0), (0.5, 1.5))
    assert dict(s.time) == {"final_time": 12.0}


def test_cin_bad_value_names_line(tmp_path):
    f = tmp_path / "bad.cin"
    f.write_text("Room Temperature = 75\nCharacteristic Time = fast\n")
    with pytest.raises(SdInputError, match=r"bad\.cin:2"):
        load_cin(f)


def test_cin_roundtrip(tmp_path):
    f = tmp_path / "out.cin"
    write_cin(f, {"Room Temperature": 71.25, "Characteristic Time": 1 / 3}, header="fitted")
    s = load_cin(f)
    assert s.constants["Room Temperature"] == 71.25
    assert s.constants["Characteristic Time"] == pytest.approx(1 / 3, rel=1e-9)  # %.10g


def test_set_assignments():
    s = from_assignments(["Room Temperature=60", " Characteristic  Time = 2.5"])
    assert dict(s.constants) == {"Room Temperature": 60.0, "Characteristic Time": 2.5}
    with pytest.raises(SdInputError, match="NAME=VALUE"):
        from_assignments(["Room Temperature"])
    with pytest.raises(SdInputError, match="expected a number"):
        from_assignments(["Room Temperature=warm"])


def test_validate_canonicalises_and_routes_controls():
    model = load(TEACUP)
    s = validate(Scenario(constants={"room_temperature": 1, "FINAL TIME": 5}), model)
    assert dict(s.constants) == {"Room Temperature": 1}
    assert dict(s.time) == {"final_time": 5}


def test_validate_rejects_unknown_with_suggestion_and_source():
    model = load(TEACUP)
    with pytest.raises(SdInputError, match=r"'Room Temp'.*in x\.toml \[a\].*Room Temperature"):
        validate(Scenario(constants={"Room Temp": 1}, source="x.toml [a]"), model)
    with pytest.raises(SdInputError, match="not a lookup table"):
        validate(Scenario(lookups={"Room Temperature": ((0, 1), (0, 1))}), model)


def test_resolve_by_name_beside_model(tmp_path):
    (tmp_path / "m_scenarios.toml").write_text('[hot.constants]\n"Room Temperature" = 99\n')
    model_path = tmp_path / "m.mdl"
    assert resolve("hot", model_path).constants["Room Temperature"] == 99
    with pytest.raises(SdInputError, match="Did you mean 'hot'"):
        resolve("hott", model_path)


def test_a_bare_name_comes_from_the_models_own_file_first(tmp_path):
    # Several models in one folder, each with its own scenario file defining the same cell
    # names: a bare name must not come from the first file in name order (it used to: every
    # model in models/ ran brick_relocation's cells).
    (tmp_path / "alpha_scenarios.toml").write_text('[cell.constants]\n"X" = 1\n')
    (tmp_path / "zeta_model_scenarios.toml").write_text('[cell.constants]\n"X" = 2\n')
    (tmp_path / "zeta_scenarios.toml").write_text('[cell.constants]\n"X" = 3\n[only.constants]\n"X" = 4\n')
    assert resolve("cell", tmp_path / "zeta_model.mdl").constants["X"] == 2   # most specific
    assert resolve("cell", tmp_path / "zeta_other.mdl").constants["X"] == 3
    assert resolve("only", tmp_path / "zeta_model.mdl").constants["X"] == 4   # next own file
    # found only in other models' files, defined differently: ambiguous, not a silent pick
    with pytest.raises(SdInputError, match=r"defined differently.*cell@"):
        resolve("cell", tmp_path / "beta.mdl")
