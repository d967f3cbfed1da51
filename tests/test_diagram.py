"""The Vensim sketch drawn with matplotlib: the drawn artists, not pixels."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from sd.model.sketch import parse_sketch
from sd.plots import _arc, draw_sketch, draw_view

matplotlib.use("Agg")
DATA = Path(__file__).parent / "data"


def _gids(ax) -> Counter:
    """Count the artists of each drawn element (``kind:name``)."""
    out = Counter()
    for artist in ax.get_children():
        gid = artist.get_gid()
        if gid:
            out[gid] += 1
    return out


def _kinds(ax) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for gid in _gids(ax):
        kind, _, name = gid.partition(":")
        out.setdefault(kind, set()).add(name)
    return out


def test_population_view_draws_every_element():
    view = parse_sketch(DATA / "population.mdl").views[0]
    ax = draw_view(view)
    kinds = _kinds(ax)
    assert kinds["stock"] == {"Population"}
    assert kinds["flow"] == {"Births", "Deaths"}
    assert kinds["aux"] == {"Birth Rate", "Lifetime", "Carrying Capacity", "Crowding Effect"}
    assert kinds["shadow"] == {"Lifetime"}
    assert kinds["valve"] == {"5", "10"} and kinds["cloud"] == {"2", "7"}
    assert kinds["pipe"] == {"3", "4", "8", "9"}
    assert kinds["arrow"] == {str(c.id) for c in view.connectors if not c.is_pipe}
    assert kinds["polarity"] == {"16", "18"}  # the two arrows whose sketch line carries a '+'
    texts = {t.get_gid(): t for t in ax.texts if t.get_gid()}
    assert texts["shadow:Lifetime"].get_text() == "<Lifetime>"
    assert matplotlib.colors.to_hex(texts["shadow:Lifetime"].get_color()) == "#808080"
    assert texts["flow:Births"].get_position() == (260, 222)
    # Vensim's y axis points down: the stock (y=200) is drawn above Birth Rate (y=320)
    assert ax.get_ylim()[0] > ax.get_ylim()[1]


def test_stock_box_has_the_sketch_size():
    view = parse_sketch(DATA / "population.mdl").views[0]
    ax = draw_view(view)
    box = next(p for p in ax.patches if p.get_gid() == "stock:Population")
    assert (box.get_x(), box.get_y(), box.get_width(), box.get_height()) == (360, 180, 80, 40)


def test_pipe_ends_on_the_stock_edge_and_has_its_arrowhead():
    view = parse_sketch(DATA / "population.mdl").views[0]
    ax = draw_view(view)
    pipe = [l for l in ax.lines if l.get_gid() == "pipe:3"]
    assert len(pipe) == 2  # the black outline and the white inside of the double line
    xs, ys = pipe[0].get_data()
    assert (xs[0], ys[0]) == (260, 200) and (xs[-1], ys[-1]) == (360, 200)
    heads = [p for p in ax.patches if p.get_gid() == "pipe:3"]
    assert len(heads) == 1 and heads[0].get_xy()[0].tolist() == [360, 200]


def test_arc_passes_through_the_curvature_handle():
    curve = _arc((0, 0), (50, 30), (100, 0))
    a, b, h = curve[:-1], curve[1:], np.array([50.0, 30.0])
    t = np.clip(np.einsum("ij,ij->i", h - a, b - a) / np.einsum("ij,ij->i", b - a, b - a), 0, 1)
    gap = np.hypot(*(a + t[:, None] * (b - a) - h).T).min()
    assert gap < 0.5  # the drawn polyline passes within half a pixel of the handle
    assert np.allclose(curve[0], (0, 0)) and np.allclose(curve[-1], (100, 0))
    straight = _arc((0, 0), (50, 0), (100, 0))  # a handle on the line: a straight arrow
    assert np.allclose(straight[:, 1], 0)


def test_juarez_all_views_and_one_view(juarez_path):
    sketch = parse_sketch(juarez_path)
    fig = draw_sketch(sketch)
    assert [ax.get_title(loc="left") for ax in fig.axes] == [v.name for v in sketch.views]
    for view, ax in zip(sketch.views, fig.axes):
        kinds = _kinds(ax)
        assert kinds.get("stock", set()) == {v.name for v in view.variables if v.shape == 3 and not v.is_shadow}
        assert len(kinds["arrow"]) == sum(not c.is_pipe for c in view.connectors)
        assert len(kinds.get("valve", ())) == len(view.valves)
    one = draw_sketch(sketch, view="decisions")
    assert [ax.get_title(loc="left") for ax in one.axes] == ["Decisions"]


@pytest.mark.parametrize("name", ["smooth_and_stock", "subscripted_flows", "reality_checks"])
def test_sdxorg_sketches_draw(test_models_dir, name):
    path = next((test_models_dir / name).glob("*.mdl"))
    sketch = parse_sketch(path)
    fig = draw_sketch(sketch)
    assert len(fig.axes) == len(sketch.views)
    drawn = set().union(*(_kinds(ax).get("stock", set()) | _kinds(ax).get("aux", set())
                          | _kinds(ax).get("flow", set()) | _kinds(ax).get("shadow", set())
                          for ax in fig.axes))
    assert drawn == {v.name for view in sketch.views for v in view.variables}
