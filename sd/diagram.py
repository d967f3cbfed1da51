"""Draw a model's Vensim sketch with matplotlib, the way Vensim shows it.

Stocks are boxes with their name inside, flows are pipes (double lines) through
a valve between two stocks or a stock and a cloud, with the flow's name by the
valve; auxiliaries and constants are their names; information arrows are
arcs through the curvature handle Vensim stores, with the polarity sign where
the sketch has one; shadow variables are grey names in angle brackets. The
coordinates are the sketch's own (one Vensim pixel = one point), so a modeler
recognises the picture Vensim shows.

Every drawn element carries a ``gid`` (``stock:NAME``, ``flow:NAME``,
``aux:NAME``, ``shadow:NAME``, ``valve:ID``, ``cloud:ID``, ``pipe:ID``,
``arrow:ID``) so tests and tools can find it.
"""
from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np

from .sketch import Cloud, Sketch, SketchVariable, Valve, View

__all__ = ["draw_view", "draw_sketch", "save_diagram"]

_STOCK, _FLOW = 3, 40
_PT_PER_PX = 96 / 72  # Vensim sizes text in pixels at 96 dpi; one sketch pixel is drawn as one point
_FONTS = ("Times New Roman", "Liberation Serif", "Nimbus Roman", "STIXGeneral", "DejaVu Serif")
_GREY = "#808080"


def _font(preferred: str) -> str:
    from matplotlib import font_manager

    have = {f.name for f in font_manager.fontManager.ttflist}
    for name in (preferred, *_FONTS):
        if name in have:
            return name
    return "serif"


def _box(obj) -> tuple[float, float, float, float]:
    """Centre and half-size of an object, for clipping arrows and pipes."""
    if isinstance(obj, SketchVariable):
        return obj.x, obj.y, max(obj.w, 4), max(obj.h, 4)
    if isinstance(obj, Valve):
        return obj.x, obj.y, 6, 8
    if isinstance(obj, Cloud):
        return obj.x, obj.y, 12, 9
    return 0, 0, 0, 0


def _wrap(name: str, half_width: float, size: float) -> str:
    """Wrap a name into the label box Vensim gives it (average glyph 0.5 em)."""
    per_line = max(int(2 * half_width / (0.5 * size)), 6)
    return "\n".join(textwrap.wrap(name, per_line, break_long_words=False)) or name


class _Painter:
    def __init__(self, ax, view: View):
        self.ax = ax
        self.view = view
        self.objs = view.by_id()
        self.size = view.font_size * _PT_PER_PX * 0.8  # a bit smaller: no font here is as narrow as Times
        self.font = _font(view.font)
        self.arrow_color = tuple(c / 255 for c in view.arrow_color)

    # -- variables ---------------------------------------------------------
    def variable(self, var: SketchVariable) -> None:
        from matplotlib.patches import Rectangle

        if var.is_shadow:
            self.text(var.x, var.y, f"<{var.name}>", var.w + 8, f"shadow:{var.name}", color=_GREY)
        elif var.shape == _STOCK:
            self.ax.add_patch(Rectangle((var.x - var.w, var.y - var.h), 2 * var.w, 2 * var.h,
                                        facecolor="white", edgecolor="black", lw=1.0, zorder=3,
                                        gid=f"stock:{var.name}"))
            self.text(var.x, var.y, var.name, var.w, None, zorder=4)
        elif var.shape == _FLOW:
            self.text(var.x, var.y, var.name, var.w, f"flow:{var.name}")
        else:
            self.text(var.x, var.y, var.name, var.w, f"aux:{var.name}")

    def text(self, x, y, label, half_width, gid, color="black", zorder=5) -> None:
        self.ax.text(x, y, _wrap(label, half_width, self.size), ha="center", va="center",
                     fontsize=self.size, family=self.font, color=color, zorder=zorder,
                     linespacing=1.0, gid=gid)

    # -- valves and clouds ------------------------------------------------------
    def valve(self, valve: Valve, direction: tuple[float, float]) -> None:
        from matplotlib.patches import Polygon

        ux, uy = direction
        px, py = -uy, ux  # across the pipe
        a, b = 7.0, 6.0
        tri1 = [(valve.x, valve.y), (valve.x - a * ux + b * px, valve.y - a * uy + b * py),
                (valve.x - a * ux - b * px, valve.y - a * uy - b * py)]
        tri2 = [(valve.x, valve.y), (valve.x + a * ux + b * px, valve.y + a * uy + b * py),
                (valve.x + a * ux - b * px, valve.y + a * uy - b * py)]
        for tri in (tri1, tri2):
            self.ax.add_patch(Polygon(tri, closed=True, facecolor="white", edgecolor="black",
                                      lw=1.0, zorder=4, gid=f"valve:{valve.id}"))
        # the spindle of the valve, on the side away from the name
        self.ax.plot([valve.x, valve.x - 9 * px], [valve.y, valve.y - 9 * py], color="black",
                     lw=1.0, zorder=4, gid=f"valve:{valve.id}")

    def cloud(self, cloud: Cloud) -> None:
        from matplotlib.patches import Ellipse

        for dx, dy, r in ((-6, 2, 6), (0, -3, 7), (6, 2, 6), (0, 4, 6)):
            self.ax.add_patch(Ellipse((cloud.x + dx, cloud.y + dy), 2 * r, 1.6 * r,
                                      facecolor="white", edgecolor="#4060c0", lw=0.9, zorder=3,
                                      gid=f"cloud:{cloud.id}"))

    # -- pipes and arrows --------------------------------------------------------
    def pipe(self, conn) -> tuple[float, float] | None:
        from matplotlib.patches import Polygon

        valve, end = self.objs.get(conn.from_id), self.objs.get(conn.to_id)
        if valve is None or end is None:
            return None
        pts = [(valve.x, valve.y)] + [p for p in conn.points if p != (0, 0)]
        pts = _reach(pts, _box(end))
        for width, color, z in ((4.2, "black", 2), (2.2, "white", 2.1)):
            self.ax.plot(*zip(*pts), color=color, lw=width, solid_capstyle="butt",
                         solid_joinstyle="miter", zorder=z, gid=f"pipe:{conn.id}")
        if conn.head == 4 and len(pts) >= 2:  # the hollow arrowhead where the pipe enters
            (x0, y0), (x1, y1) = pts[-2], pts[-1]
            n = math.hypot(x1 - x0, y1 - y0) or 1.0
            ux, uy = (x1 - x0) / n, (y1 - y0) / n
            head = [(x1, y1), (x1 - 9 * ux + 6 * uy, y1 - 9 * uy - 6 * ux),
                    (x1 - 9 * ux - 6 * uy, y1 - 9 * uy + 6 * ux)]
            self.ax.add_patch(Polygon(head, closed=True, facecolor="white", edgecolor="black",
                                      lw=1.0, zorder=2.2, gid=f"pipe:{conn.id}"))
        dx, dy = pts[1][0] - pts[0][0], pts[1][1] - pts[0][1]
        norm = math.hypot(dx, dy) or 1.0
        return dx / norm, dy / norm

    def arrow(self, conn) -> None:
        from matplotlib.patches import FancyArrowPatch
        from matplotlib.path import Path as MPath

        src, dst = self.objs.get(conn.from_id), self.objs.get(conn.to_id)
        if src is None or dst is None or not isinstance(src, (SketchVariable, Valve, Cloud)):
            return
        handle = next((p for p in conn.points if p != (0, 0)), None)
        curve = _arc((src.x, src.y), handle, (dst.x, dst.y))
        curve = _clip(curve, _box(src), _box(dst))
        if len(curve) < 2:
            return
        color = self.arrow_color
        self.ax.add_patch(FancyArrowPatch(path=MPath(curve), arrowstyle="-|>", mutation_scale=9,
                                          color=color, lw=0.8, zorder=1, gid=f"arrow:{conn.id}"))
        if conn.polarity:
            (x1, y1), (x0, y0) = curve[-1], curve[max(len(curve) - 4, 0)]
            nx, ny = -(y1 - y0), x1 - x0
            n = math.hypot(nx, ny) or 1.0
            self.ax.text(x1 - 0.8 * (x1 - x0) + 7 * nx / n, y1 - 0.8 * (y1 - y0) + 7 * ny / n,
                         conn.polarity, fontsize=self.size, color=color, ha="center",
                         va="center", zorder=5, gid=f"polarity:{conn.id}")


def _arc(a, handle, b, n: int = 40) -> np.ndarray:
    """Points of the circular arc from ``a`` through ``handle`` to ``b`` (a line if none)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    line = np.linspace(a, b, n)
    if handle is None:
        return line
    h = np.asarray(handle, float)
    # circle through three points; collinear (or nearly) means a straight arrow
    d = 2 * (a[0] * (h[1] - b[1]) + h[0] * (b[1] - a[1]) + b[0] * (a[1] - h[1]))
    chord = np.linalg.norm(b - a)
    if abs(d) < 1e-9 or chord == 0:
        return line
    sa, sh, sb = a @ a, h @ h, b @ b
    c = np.array([sa * (h[1] - b[1]) + sh * (b[1] - a[1]) + sb * (a[1] - h[1]),
                  sa * (b[0] - h[0]) + sh * (a[0] - b[0]) + sb * (h[0] - a[0])]) / d
    r = np.linalg.norm(a - c)
    if r > 50 * chord:  # a huge circle is a straight line drawn by hand
        return line
    ta, th, tb = (math.atan2(p[1] - c[1], p[0] - c[0]) for p in (a, h, b))
    # go from ta to tb the way that passes th
    span = (tb - ta) % (2 * math.pi)
    if (th - ta) % (2 * math.pi) > span:
        span -= 2 * math.pi
    t = ta + np.linspace(0, span, n)
    return np.column_stack([c[0] + r * np.cos(t), c[1] + r * np.sin(t)])


def _inside(p, box, margin=2.0) -> bool:
    x, y, w, h = box
    return abs(p[0] - x) <= w + margin and abs(p[1] - y) <= h + margin


def _clip(curve: np.ndarray, src_box, dst_box) -> np.ndarray:
    """Drop the ends of a curve hidden under its source and target objects."""
    keep = [i for i, p in enumerate(curve) if not _inside(p, src_box) and not _inside(p, dst_box)]
    if not keep:
        return curve[:0]
    return curve[keep[0]:keep[-1] + 1]


def _reach(pts: list, box) -> list:
    """Extend a pipe from its last point to the edge of the stock or cloud it enters."""
    x, y, w, h = box
    last = pts[-1]
    if _inside(last, box, margin=3):
        return pts
    # go straight along the last direction if that meets the box, else add an elbow
    if abs(last[1] - y) <= h:
        edge = x - w if last[0] < x else x + w
        return pts + [(edge, last[1])]
    if abs(last[0] - x) <= w:
        edge = y - h if last[1] < y else y + h
        return pts + [(last[0], edge)]
    ex = min(max(last[0], x - w + 4), x + w - 4)
    edge = y - h if last[1] < y else y + h
    return pts + [(ex, last[1]), (ex, edge)]


def draw_view(view: View, ax=None):
    """Draw one view of a sketch.

    Parameters
    ----------
    view : sd.sketch.View
    ax : matplotlib.axes.Axes, optional
        Axes to draw on (a new figure when omitted).

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    painter = _Painter(ax, view)
    valve_dirs: dict[int, tuple[float, float]] = {}
    for conn in view.connectors:
        if conn.is_pipe:
            direction = painter.pipe(conn)
            if direction is not None and conn.from_id not in valve_dirs:
                valve_dirs[conn.from_id] = direction
        else:
            painter.arrow(conn)
    for valve in view.valves:
        painter.valve(valve, valve_dirs.get(valve.id, (1.0, 0.0)))
    for cloud in view.clouds:
        painter.cloud(cloud)
    for var in view.variables:
        painter.variable(var)
    _frame(ax, view)
    return ax


def _extent(view: View) -> tuple[float, float, float, float]:
    boxes = [_box(o) for o in (*view.variables, *view.valves, *view.clouds)]
    pts = [p for c in view.connectors for p in c.points if p != (0, 0)]
    xs = [b[0] - b[2] for b in boxes] + [b[0] + b[2] for b in boxes] + [p[0] for p in pts]
    ys = [b[1] - b[3] for b in boxes] + [b[1] + b[3] for b in boxes] + [p[1] for p in pts]
    if not xs:
        return 0, 100, 0, 100
    return min(xs) - 30, max(xs) + 30, min(ys) - 30, max(ys) + 30


def _frame(ax, view: View) -> None:
    x0, x1, y0, y1 = _extent(view)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y1, y0)  # Vensim's y axis points down
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(view.name, loc="left", fontsize=13, color="#404040", family=_font("DejaVu Sans"))


def draw_sketch(sketch: Sketch, view: str | None = None):
    """Draw every view of a sketch (or the one named ``view``), stacked in one figure.

    Parameters
    ----------
    sketch : sd.sketch.Sketch
    view : str, optional
        Name of the one view to draw (case-insensitive).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    views = [v for v in sketch.views if view is None or v.name.lower() == view.lower()]
    sizes = [(e[1] - e[0], e[3] - e[2]) for e in map(_extent, views)]
    title, pad = 28.0, 10.0  # points: a title line above each view, a margin around all
    width = max(w for w, _ in sizes) + 2 * pad
    height = sum(h + title for _, h in sizes) + 2 * pad
    # one sketch pixel is one point on every view, so text and shapes keep Vensim's proportions
    fig = plt.figure(figsize=(width / 72, height / 72))
    top = height - pad
    for v, (w, h) in zip(views, sizes):
        top -= title + h
        ax = fig.add_axes((pad / width, top / height, w / width, h / height))
        draw_view(v, ax)
    return fig


def save_diagram(fig, path: str | Path, max_pixels: int = 6000) -> Path:
    """Write a figure to ``path`` (format from the suffix), capping the raster size."""
    path = Path(path)
    w, h = fig.get_size_inches()
    dpi = min(110.0, max_pixels / max(w, h, 1e-9))
    fig.savefig(path, dpi=dpi, facecolor="white")
    return path
