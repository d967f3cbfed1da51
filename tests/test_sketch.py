"""Tests for sd.model.sketch: the shipped Juarez diagram is clean and the checker catches defects."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import TEST_MODELS, need_shared
from sd.model.sketch import SketchVariable, check_sketch, model_dependencies, parse_sketch

ROOT = Path(__file__).resolve().parents[1]
JUAREZ = ROOT / "models" / "juarez_brick_kilns.mdl"
VIEWS = ["Kilns and flows", "Information", "Regulation and cooperation", "Programme and fuel costs",
         "Sales and profits", "Decisions"]


def _sketch_bounds(text: str) -> tuple[int, int]:
    return text.index("\\\\\\---/// Sketch"), text.rindex("///---\\\\\\")


def _remove_line(src: Path, dst: Path, predicate) -> str:
    """Copy ``src`` to ``dst`` without the one sketch line matching ``predicate``."""
    text = src.read_text(encoding="utf-8")
    start, end = _sketch_bounds(text)
    lines = text[start:end].split("\n")
    hits = [i for i, line in enumerate(lines) if predicate(line)]
    assert len(hits) == 1, hits
    removed = lines.pop(hits[0])
    dst.write_text(text[:start] + "\n".join(lines) + text[end:], encoding="utf-8")
    return removed


def _ids(view, name):
    return [v.id for v in view.variables if v.name == name]


def test_juarez_sketch_is_clean():
    assert check_sketch(JUAREZ) == []


def test_juarez_views_and_every_variable_placed_once():
    sketch = parse_sketch(JUAREZ)
    assert [v.name for v in sketch.views] == VIEWS
    names, _, flows = model_dependencies(JUAREZ)
    for key, name in names.items():
        if key == "time":
            continue
        real = [s for _, s in sketch.placements(name) if not s.is_shadow]
        assert len(real) == 1, name
    # the stocks and the flows between them
    stocks = {names[k] for k in flows}
    assert {"Traditional Kilns", "Kilns in Conversion", "Propane Kilns", "Informed Brickmakers",
            "Regulatory Pressure", "Cooperation"} <= stocks
    for view in sketch.views:
        valve_ids = {v.id for v in view.valves}
        for var in view.variables:
            assert isinstance(var, SketchVariable)
            if var.shape == 40:
                assert var.id - 1 in valve_ids, var.name


def test_shadows_are_grey_copies():
    sketch = parse_sketch(JUAREZ)
    info = next(v for v in sketch.views if v.name == "Information")
    shadow = [s for s in info.variables if s.name == "Propane Kilns"]
    assert len(shadow) == 1 and shadow[0].is_shadow


def test_missing_arrow_is_reported(tmp_path):
    sketch = parse_sketch(JUAREZ)
    view = next(v for v in sketch.views if v.name == "Information")
    src, dst_valve = _ids(view, "Contact Rate")[0], _ids(view, "Word of Mouth")[0] - 1
    copy = tmp_path / "m.mdl"
    view_of_line = {"name": None}

    def arrow_in_information_view(line):
        # ids are per view: the same pair of ids may join other objects in another view
        if line.startswith("*"):
            view_of_line["name"] = line[1:].strip()
        return (view_of_line["name"] == "Information"
                and re.match(rf"^1,\d+,{src},{dst_valve},", line) is not None)

    removed = _remove_line(JUAREZ, copy, arrow_in_information_view)
    assert removed.startswith("1,")
    assert check_sketch(copy) == [
        "view 'Information': no arrow from 'Contact Rate' to 'Word of Mouth' (dependency in its equation)"]


def test_missing_variable_is_reported(tmp_path):
    copy = tmp_path / "m.mdl"
    _remove_line(JUAREZ, copy, lambda line: line.startswith("10,") and ",Perception Time," in line)
    findings = check_sketch(copy)
    assert "variable 'Perception Time' is not placed as a real variable in any view" in findings
    # everything else is the dangling arrow of the removed variable
    rest = [f for f in findings if "not placed" not in f]
    assert rest, findings
    assert all("unknown object" in f or "'Perception Time'" in f for f in rest), rest
    assert any("no arrow from 'Perception Time' to 'Perceived Profit Advantage'" in f for f in rest)


def test_spurious_arrow_and_overlap_are_reported(tmp_path):
    text = JUAREZ.read_text(encoding="utf-8")
    sketch = parse_sketch(JUAREZ)
    view = next(v for v in sketch.views if v.name == "Decisions")
    a, b = _ids(view, "Perception Time")[0], _ids(view, "Decision Spread")[0]
    start, end = _sketch_bounds(text)
    body = text[start:end]
    marker = "*Decisions\n"
    i = body.index(marker)
    j = body.index("\n", i + len(marker)) + 1  # after the defaults line
    extra = f"1,900,{a},{b},0,0,0,0,0,64,0,-1--1--1,,1|(300,400)|\n"
    # a second, overlapping placement of a label (as a shadow, so it is not a duplicate)
    extra += "10,901,Fuel Shock Size,110,405,40,8,8,2,0,3,-1,0,0,0,128-128-128,0-0-0,|12||128-128-128\n"
    copy = tmp_path / "m.mdl"
    copy.write_text(text[:start] + body[:j] + extra + body[j:] + text[end:], encoding="utf-8")
    findings = check_sketch(copy)
    assert "view 'Decisions': arrow from 'Perception Time' to 'Decision Spread' has no matching dependency" in findings
    assert any("'Fuel Shock Size'" in f and "overlap" in f for f in findings)
    assert len(findings) == 2, findings


def test_broken_pipe_is_reported(tmp_path):
    sketch = parse_sketch(JUAREZ)
    view = next(v for v in sketch.views if v.name == "Regulation and cooperation")
    valve = _ids(view, "Cheating")[0] - 1
    copy = tmp_path / "m.mdl"
    _remove_line(JUAREZ, copy, lambda line: re.match(rf"^1,\d+,{valve},\d+,100,0,0,22,", line) is not None)
    assert check_sketch(copy) == [
        "view 'Regulation and cooperation': pipe of 'Cheating' does not connect a stock or cloud at both ends"]


@pytest.mark.parametrize("rel", [
    "game/test_game.mdl",
    "chained_initialization/test_chained_initialization.mdl",
    "delays/test_delays.mdl",
    "lookups/test_lookups.mdl",
])
def test_sdxorg_models_parse_and_check(rel):
    path = need_shared(TEST_MODELS / rel)
    sketch = parse_sketch(path)
    assert len(sketch.views) == 1 and sketch.views[0].variables
    assert check_sketch(path) == []


def test_chained_initialization_pipes():
    path = need_shared(TEST_MODELS / "chained_initialization/test_chained_initialization.mdl")
    view = parse_sketch(path).views[0]
    assert len(view.valves) == 4 and len(view.clouds) == 4
    assert sum(c.is_pipe for c in view.connectors) == 8
