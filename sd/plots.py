"""Every figure of sd: runs, scenario comparisons, fits, ensemble bands,
histograms, sensitivity indices and the model diagram.

``ax=None`` in, Axes out. A helper given no Axes draws on a new pyplot figure
with the user's own backend; writers (:mod:`sd.report`) draw on figures from
:func:`figure`, which are not registered with pyplot, so writing a report
never changes the user's backend or leaves figures open. Nothing here selects
a backend.
"""
from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ._common import atomic_path
from .model.sketch import Cloud, Sketch, SketchVariable, Valve, View


def figure(nrows: int = 1, ncols: int = 1, *, size=(7, 4), layout: str | None = "constrained"):
    """A figure outside pyplot and its Axes grid (``squeeze=False``), for files.

    ``layout=None`` skips the constrained layout, whose cost grows with the
    number of Axes (seconds for a grid of dozens).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout=layout)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def save_figure(fig, path, dpi: int = 110) -> None:
    """Save ``fig`` (a Figure, or an Axes of it) to ``path`` as PNG, atomically.

    A figure pyplot manages is closed after saving; others need no closing.
    """
    fig = fig.get_figure() if hasattr(fig, "get_figure") and not hasattr(fig, "savefig") \
        else fig
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    _close(fig)


def _close(fig) -> None:
    """Close ``fig`` if pyplot manages it (a figure from :func:`figure` needs nothing)."""
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close(fig)


def _axes(ax, size=(7, 4)):
    """``ax``, or the Axes of a new pyplot figure (the user's backend, unchanged)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    if size is None:
        return plt.subplots()[1]
    return plt.subplots(figsize=size, layout="constrained")[1]


def _ylabel(name: str, units: str) -> str:
    return f"{name} ({units})" if units else name


def plot_variable(ds: xr.Dataset, name: str, ax=None, label: str | None = None):
    """One variable of a run over time, titled with its scenario; return the Axes."""
    ax = _axes(ax)
    da = ds[name]
    scenario = ds.attrs.get("scenario", "")
    ax.plot(ds["time"].values, da.values, label=label or scenario or name)
    ax.set_title(f"{name} (scenario {scenario})" if scenario else name)
    ax.set_xlabel("Time")
    ax.set_ylabel(_ylabel(name, da.attrs.get("units", "")))
    ax.grid(alpha=0.3)
    return ax


def draw_run(ds: xr.Dataset, names, fig=None):
    """The variables ``names`` of one run, one Axes each, in a pyplot figure
    (``fig`` is cleared and drawn again: the window ``sd run --watch``
    refreshes after every save). Returns the figure."""
    import matplotlib.pyplot as plt

    if fig is None:
        fig = plt.figure(figsize=(7, 3 * len(names)), layout="constrained")
    fig.clear()
    axes = fig.subplots(len(names), 1, squeeze=False)[:, 0]
    for ax, name in zip(axes, names):
        plot_variable(ds, name, ax=ax)
    return fig


def plot_scenarios(datasets: dict, variable: str, ax=None):
    """One variable of several scenario runs (name -> Dataset) on one Axes."""
    ax = _axes(ax)
    for name, ds in datasets.items():
        ax.plot(ds["time"].values, ds[variable].values, label=name)
    units = next(iter(datasets.values()))[variable].attrs.get("units", "")
    ax.set_title(variable)
    ax.set_xlabel("Time")
    ax.set_ylabel(_ylabel(variable, units))
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def plot_fit(result, variable: str, ax=None):
    """The fitted trajectory of ``variable``, its counterfactuals and the
    documented outcomes it is held to (green met, red missed)."""
    ax = _axes(ax, (8, 3.2))
    best = result.trajectories
    ax.plot(best["time"].values, best[variable].values[0], color="k", lw=2, label="fitted")
    why = result.explanation
    if why is not None and why.variable == variable:
        for c in why.counterfactuals:
            ax.plot(why.times, c.series, lw=1, ls="--", label=c.name)
    for t in (t for t in result.targets if t["target"].variable == variable):
        _draw_target(ax, t)
    ax.set_title(variable)
    ax.set_xlabel("time")
    ax.set_ylabel(_ylabel(variable, best[variable].attrs.get("units", "")))
    ax.legend(fontsize=7, loc="best")
    return ax


def _draw_target(ax, t) -> None:
    from matplotlib.patches import Rectangle

    tg, color = t["target"], ("tab:green" if t["satisfied"] else "tab:red")
    if tg.kind == "point":
        ax.errorbar([tg.time], [tg.value], yerr=[2 * tg.sigma], fmt="o", color=color,
                    capsize=4, label=f"documented ±2σ ({tg.source.split(' ')[0]})")
    elif tg.kind == "peak_time":
        ax.axvspan(tg.time, tg.time_end, color=color, alpha=0.1, label="documented peak time")
    else:
        ax.add_patch(Rectangle((tg.time, tg.low), tg.time_end - tg.time, tg.high - tg.low,
                               fill=tg.kind == "range", alpha=0.15 if tg.kind == "range" else 1,
                               ec=color, fc=color, ls="-" if tg.kind == "range" else "--",
                               lw=1.5, label=f"documented {tg.kind}"))


def plot_set_variable(times, paths: np.ndarray, variable: str, targets=(), units: str = "",
                      ax=None):
    """Members of a behaviour-consistent set: median and 50/90 % bands of
    ``variable`` (``paths``: members x times) with the documented outcomes."""
    ax = _axes(ax, (8, 3.2))
    q = np.nanquantile(paths, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    ax.fill_between(times, q[0], q[4], color="#2f7fd1", alpha=0.2, label="90% of the set")
    ax.fill_between(times, q[1], q[3], color="#2f7fd1", alpha=0.4, label="50% of the set")
    ax.plot(times, q[2], color="k", lw=1.5, label="median")
    for tg in targets:
        _draw_target(ax, {"target": tg, "satisfied": True})
    ax.set_title(variable)
    ax.set_xlabel("time")
    ax.set_ylabel(_ylabel(variable, units))
    ax.legend(fontsize=7, loc="best")
    return ax


def plot_intervals(names, quantiles, ax=None, marks=()):
    """Inputs over a set, each scaled to its prior range [0, 1]: 90 % (thin)
    and 50 % (thick) intervals and the median, one row per input.

    ``quantiles``: (inputs, 5) of the 5, 25, 50, 75 and 95 % points in unit
    coordinates; ``marks``: rows to label as identified.
    """
    ax = _axes(ax, (7, 0.22 * len(names) + 1))
    q = np.asarray(quantiles)
    y = np.arange(len(names))[::-1]
    ax.hlines(y, 0, 1, color="#dddddd", lw=6, label="prior range")
    ax.hlines(y, q[:, 0], q[:, 4], color="#2f7fd1", lw=1.5, label="90% of the set")
    ax.hlines(y, q[:, 1], q[:, 3], color="#2f7fd1", lw=4, label="50% of the set")
    ax.plot(q[:, 2], y, "k|", ms=8, label="median")
    ax.set_yticks(y)
    ax.set_yticklabels([n + (" (identified)" if i in marks else "") for i, n in enumerate(names)],
                       fontsize=7)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-1, len(names))
    ax.set_xlabel("position in the prior range (0 = low, 1 = high)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 1.0 + 1.2 / max(len(names), 1)),
              ncol=4, frameon=False)
    return ax


def plot_policy_cells(policies, series, ax=None, title: str = "", ylabel: str = ""):
    """Distributions of one output under each policy over a set: the median and
    the 90 % interval, one marker per series (e.g. per year), side by side.

    ``series``: ``[(label, medians, q05s, q95s), ...]``, one value per policy.
    """
    ax = _axes(ax)
    x = np.arange(len(policies))
    width = 0.5 / max(len(series), 1)
    for k, (label, med, lo, hi) in enumerate(series):
        med, lo, hi = (np.asarray(v, dtype=float) for v in (med, lo, hi))
        xs = x + (k - (len(series) - 1) / 2) * width
        ax.errorbar(xs, med, yerr=[med - lo, hi - med], fmt="os"[k % 2], ms=4, capsize=2,
                    lw=1, label=label)
    ax.set_xticks(x, [_wrap(p.replace("_", " "), 14) for p in policies], rotation=40,
                  ha="right", fontsize=6)
    ax.set_title(title, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=7)
    ax.tick_params(axis="y", labelsize=6)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=6, loc="best")
    return ax


def plot_pair(x, y, xname: str, yname: str, limits, ax=None):
    """Members of a set in the plane of two inputs (their prior ranges as limits)."""
    ax = _axes(ax, (2.5, 2.5))
    ax.scatter(x, y, s=3, alpha=0.4, color="#2f7fd1", linewidths=0)
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])
    ax.set_xlabel(_wrap(xname, 22), fontsize=6)
    ax.set_ylabel(_wrap(yname, 22), fontsize=6)
    ax.tick_params(labelsize=5)
    return ax


#: Vensim's sensitivity-graph bands (percent of runs inside) and colours.
BANDS = (50, 75, 95, 100)
_COLOURS = {50: "#f2d100", 75: "#4caf50", 95: "#2f7fd1", 100: "#9e9e9e"}

#: Saved times read at once when computing bands: bounds memory for 10^6 runs.
_TIME_BLOCK = 8


def band_quantiles(da: xr.DataArray, levels=BANDS) -> pd.DataFrame:
    """Lower/upper percentiles of each band and the median over ``run``, per time.

    ``da`` (dims ``run``, ``time``) may be lazy (from
    :func:`sd.simulation.chunks.open_ensemble`); it is read a few times at a
    time so that a million runs never sit in memory at once.

    Returns
    -------
    pandas.DataFrame
        Index time; columns ``median`` and ``lo<L>``/``hi<L>`` per level.
    """
    qs = sorted({50.0} | {50 - L / 2 for L in levels} | {50 + L / 2 for L in levels})
    times = da["time"].values
    out = np.empty((len(times), len(qs)))
    for t0 in range(0, len(times), _TIME_BLOCK):
        block = np.asarray(da.isel(time=slice(t0, t0 + _TIME_BLOCK)).transpose("run", "time").values,
                           dtype=float)
        out[t0:t0 + block.shape[1]] = np.nanpercentile(block, qs, axis=0).T
    frame = pd.DataFrame(out, index=pd.Index(times, name="time"), columns=qs)
    cols = {"median": frame[50.0]}
    for L in levels:
        cols[f"lo{L}"], cols[f"hi{L}"] = frame[50 - L / 2], frame[50 + L / 2]
    return pd.DataFrame(cols)


def plot_bands(da: xr.DataArray, ax=None, levels=BANDS, title: str | None = None):
    """Nested shaded confidence bands of one variable over time (Vensim style).

    The widest band is drawn first so each narrower one sits on top of it.
    """
    ax = _axes(ax)
    q = band_quantiles(da, levels)
    for L in sorted(levels, reverse=True):
        ax.fill_between(q.index, q[f"lo{L}"], q[f"hi{L}"], color=_COLOURS.get(L, "#cccccc"),
                        alpha=0.85, linewidth=0, label=f"{L}%")
    ax.plot(q.index, q["median"], color="black", linewidth=1, label="median")
    name = str(da.name)
    ax.set_title(title or f"{name} ({da.sizes['run']} runs)")
    ax.set_xlabel("Time")
    ax.set_ylabel(_ylabel(name, da.attrs.get("units", "")))
    ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def plot_histogram(values, name: str, ax=None, bins: int | str = "auto", units: str = ""):
    """Histogram of one metric over the runs."""
    ax = _axes(ax, (6, 4))
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0 or np.ptp(values) == 0:
        bins = 1  # a metric that never varies: one bar, not a numpy error
    ax.hist(values, bins=bins, color="#2f7fd1", edgecolor="white")
    ax.set_title(name)
    ax.set_xlabel(_ylabel(name, units))
    ax.set_ylabel("runs")
    ax.grid(alpha=0.3)
    return ax


def plot_sobol(table: pd.DataFrame, metric: str, ax=None):
    """First-order and total Sobol indices of one metric, 95 % intervals as error bars.

    ``table`` is :func:`sd.sensitivity_analysis.methods.sobol_indices`'s result.
    """
    return _bars(table.loc[metric], [("S1", "S1_conf", "first order"),
                                     ("ST", "ST_conf", "total")], metric, "Sobol index", ax)


def plot_morris(table: pd.DataFrame, metric: str, ax=None):
    """Morris mu* (95 % interval) and sigma of one metric."""
    return _bars(table.loc[metric], [("mu_star", "mu_star_conf", "mu*"), ("sigma", None, "sigma")],
                 metric, "elementary effect (per quantile range)", ax)


def _bars(rows: pd.DataFrame, series, metric: str, ylabel: str, ax):
    ax = _axes(ax)
    x = np.arange(len(rows))
    width = 0.8 / len(series)
    for k, (col, conf, label) in enumerate(series):
        err = rows[conf].to_numpy() if conf else None
        ax.bar(x + (k - (len(series) - 1) / 2) * width, rows[col].to_numpy(), width,
               yerr=err, capsize=3, label=label)
    ax.set_xticks(x, [_wrap(p) for p in rows.index], rotation=30, ha="right", fontsize="small")
    ax.set_title(metric)
    ax.set_ylabel(ylabel)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3, axis="y")
    return ax


def _wrap(name: str, width: int = 18) -> str:
    words, lines, line = name.split(), [], ""
    for w in words:
        if line and len(line) + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "\n".join(lines + [line])


# -- the model diagram (Vensim sketch) ----------------------------------------------
# Draws a model's Vensim sketch the way Vensim shows it.
# Stocks are boxes with their name inside, flows are pipes (double lines) through
# a valve between two stocks or a stock and a cloud, with the flow's name by the
# valve; auxiliaries and constants are their names; information arrows are
# arcs through the curvature handle Vensim stores, with the polarity sign where
# the sketch has one; shadow variables are grey names in angle brackets. The
# coordinates are the sketch's own (one Vensim pixel = one point), so a modeler
# recognises the picture Vensim shows.
#
# Every drawn element carries a ``gid`` (``stock:NAME``, ``flow:NAME``,
# ``aux:NAME``, ``shadow:NAME``, ``valve:ID``, ``cloud:ID``, ``pipe:ID``,
# ``arrow:ID``) so tests and tools can find it.

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


def _wrap_label(name: str, half_width: float, size: float) -> str:
    """Wrap a name into the label box Vensim gives it (average glyph about 0.45 em)."""
    per_line = max(int(2 * half_width / (0.45 * size)) + 1, 6)
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
        self.ax.text(x, y, _wrap_label(label, half_width, self.size), ha="center", va="center",
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
        if conn.polarity:  # the sign sits beside the arrowhead, as in Vensim
            back = np.cumsum(np.hypot(*np.diff(curve[::-1], axis=0).T))
            k = len(curve) - 2 - int(np.searchsorted(back, 12.0))
            (x0, y0), (x1, y1) = curve[max(k, 0)], curve[-1]
            n = math.hypot(x1 - x0, y1 - y0) or 1.0
            self.ax.text(x0 - 8 * (y1 - y0) / n, y0 + 8 * (x1 - x0) / n, conn.polarity,
                         fontsize=self.size, color=color, ha="center", va="center", zorder=5,
                         gid=f"polarity:{conn.id}")


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
    """Make a pipe end on the edge of the stock or cloud it enters.

    Vensim stores the end point on the stock's edge, or a cloud's centre; a
    hand-edited sketch may leave it short, then an elbow reaches the box.
    """
    x, y, w, h = box
    last = pts[-1]
    if _inside(last, box, margin=3):
        if len(pts) >= 2 and _inside(last, box, margin=-2):  # inside: stop at the edge
            (x0, y0), (x1, y1) = pts[-2], last
            for k in np.linspace(0, 1, 101):
                p = (x0 + k * (x1 - x0), y0 + k * (y1 - y0))
                if _inside(p, box, margin=0):
                    return pts[:-1] + [p]
        return pts
    if abs(last[1] - y) <= h:  # straight on along the last direction
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
    ax = _axes(ax, None)
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
    from matplotlib.figure import Figure

    views = [v for v in sketch.views if view is None or v.name.lower() == view.lower()]
    sizes = [(e[1] - e[0], e[3] - e[2]) for e in map(_extent, views)]
    title, pad = 28.0, 10.0  # points: a title line above each view, a margin around all
    width = max(w for w, _ in sizes) + 2 * pad
    height = sum(h + title for _, h in sizes) + 2 * pad
    # one sketch pixel is one point on every view, so text and shapes keep Vensim's proportions
    fig = Figure(figsize=(width / 72, height / 72))
    top = height - pad
    for v, (w, h) in zip(views, sizes):
        top -= title + h
        ax = fig.add_axes((pad / width, top / height, w / width, h / height))
        draw_view(v, ax)
    return fig


def save_diagram(fig, path: str | Path, fmt: str | None = None, max_pixels: int = 6000) -> Path:
    """Write a diagram figure to ``path`` and close it, capping the raster size.

    ``fmt`` (``png``, ``svg``, ``pdf``) defaults to the suffix of ``path``.
    """
    path = Path(path)
    w, h = fig.get_size_inches()
    dpi = min(110.0, max_pixels / max(w, h, 1e-9))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, facecolor="white", format=fmt or path.suffix[1:].lower())
    _close(fig)
    return path
