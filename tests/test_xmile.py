"""XMILE in: .xmile, .stmx and .itmx files through sd run, sd info, sd check, sd calibrate, the
API and the fast engine, like .mdl files; the XML read safely (no DTD, no entities)."""
from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sd
from sd.cli import main
from sd.errors import SdInputError

TEACUP_MDL = Path(__file__).parent / "data" / "teacup.mdl"

#: The teacup of tests/data/teacup.mdl, written as Stella writes XMILE.
TEACUP = """<?xml version="1.0" encoding="utf-8"?>
<xmile version="1.0" xmlns="http://docs.oasis-open.org/xmile/ns/XMILE/v1.0"
       xmlns:isee="http://iseesystems.com/XMILE">
  <header><vendor>sd tests</vendor><product version="1.0">hand written</product></header>
  <sim_specs method="Euler" time_units="Minute">
    <start>0</start><stop>30</stop><dt>0.125</dt>
  </sim_specs>
  <model>
    <variables>
      <stock name="Teacup Temperature">
        <eqn>180</eqn><outflow>Heat_Loss_to_Room</outflow>
        <units>Degrees Fahrenheit</units><doc>Temperature of the tea.</doc>
      </stock>
      <flow name="Heat Loss to Room">
        <eqn>(Teacup_Temperature - Room_Temperature) / Characteristic_Time</eqn>
        <units>Degrees Fahrenheit/Minute</units><doc>Newton's law of cooling.</doc>
      </flow>
      <aux name="Room Temperature"><eqn>70</eqn><units>Degrees Fahrenheit</units></aux>
      <aux name="Characteristic Time"><eqn>10</eqn><units>Minute</units></aux>
    </variables>
  </model>
</xmile>
"""


def cli(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def teacup(tmp_path):
    path = tmp_path / "teacup.xmile"
    path.write_text(TEACUP, encoding="utf-8")
    return path


@pytest.mark.parametrize("suffix", [".xmile", ".stmx", ".itmx"])
def test_xmile_runs_like_the_mdl(tmp_path, suffix):
    path = tmp_path / f"teacup{suffix}"
    path.write_text(TEACUP, encoding="utf-8")
    code, _, err = cli("run", path, "--out", tmp_path / "o", "--engine", "pysd")
    assert code == 0, err
    got = pd.read_csv(tmp_path / "o" / "results.csv", index_col=0)
    ref = sd.run(TEACUP_MDL, engine="pysd")
    np.testing.assert_allclose(got["Teacup Temperature"].values,
                               ref["Teacup Temperature"].values, rtol=1e-12)
    assert sd.read_results(tmp_path / "o" / "results.nc")["Teacup Temperature"].attrs[
        "units"] == "Degrees Fahrenheit"


def test_fast_engine_starts_from_the_same_abstract_model(teacup):
    model = sd.load(teacup)
    fast = sd.run(model, engine="fast")
    slow = sd.run(model, engine="pysd")
    assert fast.attrs["engine"] == "fast"
    for name in ("Teacup Temperature", "Heat Loss to Room"):
        np.testing.assert_allclose(fast[name].values, slow[name].values, rtol=1e-9, atol=1e-12)
    many = sd.run_many(model, pd.DataFrame({"Characteristic Time": [5.0, 20.0]}),
                       variables=["Teacup Temperature"])
    assert many["Teacup Temperature"].isel(time=-1).values[0] < \
        many["Teacup Temperature"].isel(time=-1).values[1]


def test_info_and_check_read_xmile(teacup):
    code, out, err = cli("info", teacup)
    assert code == 0, err
    assert "STOCKS (1)" in out and "Teacup Temperature" in out and "[Degrees Fahrenheit]" in out
    code, out, err = cli("check", teacup, "--no-sources")
    assert "diagram checks read Vensim sketches" in out, out + err
    code, _, err = cli("diagram", teacup, "-o", teacup.with_suffix(".png"))
    assert code == 2 and "XMILE" in err


def test_calibrate_an_xmile_model(teacup, tmp_path):
    (tmp_path / "obs.csv").write_text(
        "variable,kind,time,time_end,value,low,high,sigma,source,note\n"
        "Teacup Temperature,point,10,,107.4,,,1,synthetic,made up for the test\n")
    spec = tmp_path / "spec.toml"
    spec.write_text(f'model = "{teacup.name}"\ndata = "obs.csv"\nseed = 4\n'
                    '[optimizer]\nmethod = "least_squares"\nstarts = 1\n'
                    '[confidence]\nprofile_points = 5\n'
                    '[parameters]\n"Characteristic Time" = {low = 2, high = 20, init = 5}\n')
    r = subprocess.run([sys.executable, "-m", "sd", "calibrate", str(spec), "--out",
                        str(tmp_path / "fit"), "--no-progress"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    fit = json.loads((tmp_path / "fit" / "fit.json").read_text())
    # 180 -> 107.4 at t=10 against a room at 70: exp(-10/T) = 37.4/110, T ~ 9.3 minutes
    assert fit["parameters"]["Characteristic Time"]["value"] == pytest.approx(9.27, abs=0.1)


def test_stella_10_variables_outside_a_variables_element(tmp_path):
    path = tmp_path / "old.stmx"
    path.write_text(TEACUP.replace("<variables>", "").replace("</variables>", ""),
                    encoding="utf-8")
    assert "Teacup Temperature" in sd.load(path).variables


@pytest.mark.parametrize("change, message", [
    (("<model>", '<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>\n<model>'),
     r"declares a document type or entities \(<!DOCTYPE\)"),
    (('<?xml version="1.0" encoding="utf-8"?>',
      '<?xml version="1.0"?><!DOCTYPE xmile [<!ENTITY x SYSTEM "file:///etc/passwd">]>'),
     r":1: the file declares a document type"),
    (("<eqn>70</eqn>", "<eqn> ??? </eqn>"), r"'Room Temperature' is '\?\?\?'"),
    (("</model>", '</model><model name="Hares"><variables/></model>'), "XMILE modules"),
    (("<model>", '<macros><macro name="MYMAC"><eqn>1</eqn></macro></macros><model>'),
     "XMILE macro 'MYMAC'"),
    (('encoding="utf-8"', 'encoding="utf-16"'), "XMILE files are UTF-8"),
    (("<xmile ", "<other "), "no <xmile> element"),
])
def test_unsafe_or_unsupported_xmile_is_refused_by_name(tmp_path, change, message):
    path = tmp_path / "bad.xmile"
    text = TEACUP.replace(*change)
    if change[0] == "<xmile ":
        text = text.replace("</xmile>", "</other>")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SdInputError, match=message):
        sd.load(path)


def test_xmile_with_a_bad_equation_names_the_line(tmp_path):
    path = tmp_path / "bad.xmile"
    path.write_text(TEACUP.replace("<eqn>70</eqn>", "<eqn>70 +* 2</eqn>"), encoding="utf-8")
    with pytest.raises(SdInputError, match=r"bad\.xmile(:\d+)?: .*70 \+\* 2"):
        sd.load(path)


ARRAYS = """<?xml version="1.0" encoding="utf-8"?>
<xmile version="1.0" xmlns="http://docs.oasis-open.org/xmile/ns/XMILE/v1.0">
  <header><vendor>sd tests</vendor></header>
  <sim_specs><start>0</start><stop>2</stop><dt>1</dt></sim_specs>
  <dimensions><dim name="Items"><elem name="A"/><elem name="B"/><elem name="C"/></dim></dimensions>
  <model>
    <variables>
      <aux name="values"><dimensions><dim name="Items"/></dimensions>
        <element subscript="A"><eqn>1</eqn></element>
        <element subscript="B"><eqn>2</eqn></element>
        <element subscript="C"><eqn>3</eqn></element>
      </aux>
      <aux name="total"><eqn>SUM(values[*]) * 2</eqn></aux>
    </variables>
    <views><view><aux name="values" x="1" y="1"/></view></views>
  </model>
</xmile>
"""


def test_apply_to_all_wildcard(tmp_path):
    """XMILE's x[*] (every element: SUM(values[*])) is read as the dimension's '!' sum."""
    path = tmp_path / "arrays.xmile"
    path.write_text(ARRAYS, encoding="utf-8")
    ds = sd.run(sd.load(path), engine="pysd")
    assert float(ds["total"][0]) == 12
