"""Documented outcomes: what a model must reproduce, each with its source.

A target is a metric (:mod:`.metrics`) of one variable, an observation and a
rule that turns the two into a residual.

A calibration target is one row of a CSV file (columns below). Documented
facts are rarely time series; most are "about 350 kilns in the mid-1990s" or
"a portion of the community adopted". Each kind of target turns one such fact
into a residual that is zero when the fact is reproduced:

``point``
    ``value`` with standard deviation ``sigma`` at ``time``. Residual
    ``(sim(time) - value) / sigma`` (a Gaussian residual: a point 2 sigma off
    adds exactly 4 to the sum of squares). Met when ``|residual| <= 2``.
``range``
    the variable stays within ``[low, high]`` over ``[time, time_end]``.
    Residual: the largest distance of the simulated values outside the
    interval, divided by the tolerance (signed: + above, - below).
``peak``
    the maximum of the variable over ``[time, time_end]`` lies in
    ``[low, high]``. Residual: distance of that maximum outside the interval,
    divided by the tolerance.
``trough``
    the minimum over ``[time, time_end]`` lies in ``[low, high]`` (as ``peak``).
``peak_time``
    the time at which the variable reaches its maximum over the whole run lies
    in ``[time, time_end]``. Residual: distance of that time outside the
    window, divided by the tolerance.

The tolerance of a ``range``/``peak``/``trough``/``peak_time`` target is its
``sigma`` when given, else the half-width of its interval. Range-like targets
are met when their residual is 0. Columns: ``variable, kind, time, time_end,
value, low, high, sigma, source, note`` (``weight`` optional, default 1,
multiplies the residual). A file with only ``variable,time,value,sigma``
holds point observations.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from .._common import number, read_text, time_text
from ..errors import SdInputError, canon, suggest
from .metrics import Metric, matrix, values

#: Every kind of target and the columns it needs.
KINDS = {
    "point": ("time", "value", "sigma"),
    "range": ("time", "time_end", "low", "high"),
    "peak": ("time", "time_end", "low", "high"),
    "trough": ("time", "time_end", "low", "high"),
    "peak_time": ("time", "time_end"),
}

#: A point target is "met" within this many standard deviations (95 %).
POINT_MET_SIGMAS = 2.0

_NUMERIC = ("time", "time_end", "value", "low", "high", "sigma", "weight")


@dataclass(frozen=True)
class Target:
    """One documented outcome (one CSV row).

    Attributes
    ----------
    variable : str
        Vensim name of the model variable.
    kind : str
        One of :data:`KINDS`.
    time, time_end : float
        Time of a point; window of the other kinds (``time_end`` NaN for
        points).
    value, low, high, sigma : float
        As the kind needs them (NaN when not used).
    weight : float
        Multiplies the residual (default 1).
    source, note : str
        Citation and interpretation.
    where : str
        ``file:line`` for messages.
    """

    variable: str
    kind: str
    time: float
    time_end: float = float("nan")
    value: float = float("nan")
    low: float = float("nan")
    high: float = float("nan")
    sigma: float = float("nan")
    weight: float = 1.0
    source: str = ""
    note: str = ""
    where: str = ""

    @property
    def tolerance(self) -> float:
        """Scale of the residual: sigma, else the interval half-width."""
        if not np.isnan(self.sigma):
            return self.sigma
        if self.kind == "peak_time":
            return (self.time_end - self.time) / 2
        return (self.high - self.low) / 2

    @property
    def basis(self) -> str:
        """How the outcome stands in its source, from its note (CASES.md's convention):
        ``quoted`` (figure or phrase in the source), ``interpreted`` (a range read from a
        qualitative statement), ``quoted, read with interpretation`` (a quoted figure
        whose date or tolerance is interpreted), or ``not stated``."""
        note = self.note.strip().lower()
        quoted, interpreted = "quoted" in note, "interpret" in note
        if quoted and interpreted and not note.startswith("interpret"):
            return "quoted, read with interpretation"
        if interpreted:
            return "interpreted"
        return "quoted" if quoted else "not stated"

    def describe(self) -> str:
        """Short human-readable statement of the target."""
        t0, t1 = time_text(self.time), time_text(self.time_end)
        if self.kind == "point":
            return f"{self.variable} = {self.value:g} ± {self.sigma:g} at {t0}"
        if self.kind == "peak_time":
            return f"{self.variable} peaks between {t0} and {t1}"
        what = {"range": "stays in", "peak": "peak in", "trough": "minimum in"}[self.kind]
        return f"{self.variable} {what} [{self.low:g}, {self.high:g}] over {t0}-{t1}"

    def metrics(self) -> tuple[Metric, ...]:
        """What the target looks at in a trajectory, as metrics."""
        name, var = self.describe(), self.variable
        if self.kind == "point":
            return (Metric(name, var, "at", time=self.time),)
        if self.kind == "peak_time":
            return (Metric(name, var, "time_of_max"),)
        window = {"start": self.time, "end": self.time_end}
        if self.kind == "range":
            return (Metric(name, var, "max", **window), Metric(name, var, "min", **window))
        return (Metric(name, var, "max" if self.kind == "peak" else "min", **window),)


# -- reading -----------------------------------------------------------------
def load(path: str | Path) -> tuple[Target, ...]:
    """Read and check a documented-outcomes CSV.

    Parameters
    ----------
    path : str or Path
        CSV file with the columns described in the module docstring.

    Returns
    -------
    tuple of Target

    Raises
    ------
    SdInputError
        Missing file or columns, unknown kind, missing/NaN/non-numeric values,
        reversed intervals, non-positive sigma; the message names file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise SdInputError(f"Documented-outcomes file not found: {path}.")
    text = read_text(path, "Documented-outcomes file")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    rows = [(i + 1, r) for i, r in enumerate(rows) if r and not r[0].lstrip().startswith("#")]
    if not rows:
        raise SdInputError(f"{path}: empty file; expected a header line such as "
                           "'variable,kind,time,time_end,value,low,high,sigma,source,note'.")
    _, raw = rows[0]
    header = [h.strip().lower() for h in raw]
    _check_columns(header, path)
    if "variable" not in header and header[:1] == ["time"] and len(header) > 1:
        raise SdInputError(
            f"{path}:1: this looks like a series (a time column and one column per variable: "
            f"{', '.join(h.strip() for h in raw[1:4])}{', ...' if len(raw) > 4 else ''}), which "
            "says nothing of each value's error. Write one row per value with its standard deviation "
            "(variable,time,value,sigma), or name a Vensim payoff file as the data (data = "
            '"payoff.vpd", data_file = this file: Variable|Data Variable/weight, weight = '
            "1/sigma).")
    if "variable" not in header or "time" not in header:
        missing = [c for c in ("variable", "time") if c not in header]
        raise SdInputError(f"{path}:1: missing column(s) {', '.join(missing)}; the header is "
                           f"{','.join(header)!r}. Required: variable,time and, per kind, "
                           "value,sigma (point) or time_end,low,high (range, peak, ...).")
    if "kind" not in header:
        absent = [c for c in ("value", "sigma") if c not in header]
        if absent:
            raise SdInputError(f"{path}:1: without a 'kind' column the file holds point "
                               f"observations and needs column(s) {', '.join(absent)}.")
    targets = []
    for line, row in rows[1:]:
        if len(row) > len(header):
            raise SdInputError(f"{path}:{line}: {len(row)} fields but the header has "
                               f"{len(header)} (quote text fields that contain commas).")
        fields = dict(zip(header, (c.strip() for c in row)))
        targets.append(_target(fields, f"{path}:{line}"))
    if not targets:
        raise SdInputError(f"{path}: no targets below the header.")
    check_duplicates(targets)
    return tuple(targets)


#: Every column a documented-outcomes file may have.
COLUMNS = ("variable", "kind", "time", "time_end", "value", "low", "high", "sigma", "weight",
           "source", "note")


def _check_columns(header: list[str], path: Path) -> None:
    """A column named twice, or a misspelt known column (silently ignored, it would
    drop e.g. every weight), is refused; other extra columns (units, comments) are
    the file's own and are ignored."""
    for i, name in enumerate(header):
        if name in header[:i]:
            raise SdInputError(f"{path}:1: column {name!r} appears twice in the header.")
        hint = suggest(name, COLUMNS, n=1) if name not in COLUMNS else ""
        if hint and name:
            raise SdInputError(f"{path}:1: unknown column {name!r}; the columns are "
                               f"{', '.join(COLUMNS)}.{hint}")


def check_duplicates(targets) -> None:
    """Refuse a row given twice and two point observations of one variable at one
    time: counted twice, the same datum would narrow every interval as if it had
    been measured twice."""
    seen: dict = {}
    for t in targets:
        key = (canon(t.variable), t.kind, t.time) if t.kind == "point" else \
            (canon(t.variable), t.kind) + tuple(None if np.isnan(x) else x for x in (
                t.time, t.time_end, t.low, t.high, t.value, t.sigma))
        if key in seen:
            what = (f"a second observation of {t.variable} at {time_text(t.time)}"
                    if t.kind == "point" else "the same outcome again")
            raise SdInputError(
                f"{t.where}: {what} (first at {seen[key].where}). Remove the "
                "copy; independent measurements of one value at one time are one point: "
                "their mean, with sigma / sqrt(n).")
        seen[key] = t


def _target(fields: dict, where: str) -> Target:
    kind = (fields.get("kind") or "point").lower()
    if kind not in KINDS:
        raise SdInputError(f"{where}: unknown kind {kind!r}; use one of {', '.join(KINDS)}."
                           + suggest(kind, KINDS))
    if not fields.get("variable"):
        raise SdInputError(f"{where}: the 'variable' field is empty.")
    nums = {}
    for col in _NUMERIC:
        text = fields.get(col, "")
        if text == "":
            nums[col] = float("nan")
            continue
        nums[col] = number(text, f"{where}: {col}", strings=True)
    for col in KINDS[kind]:
        if np.isnan(nums[col]):
            raise SdInputError(f"{where}: a {kind} target needs {col} "
                               f"(needs {', '.join(KINDS[kind])}).")
    target = Target(variable=fields["variable"], kind=kind, time=nums["time"],
                    time_end=nums["time_end"], value=nums["value"], low=nums["low"],
                    high=nums["high"], sigma=nums["sigma"],
                    weight=1.0 if np.isnan(nums["weight"]) else nums["weight"],
                    source=fields.get("source", ""), note=fields.get("note", ""), where=where)
    _check_target(target)
    return target


def _check_target(t: Target) -> None:
    if t.kind != "point" and not t.time_end >= t.time:
        raise SdInputError(f"{t.where}: time_end {t.time_end:g} is before time {t.time:g}.")
    if t.kind in ("range", "peak", "trough") and not t.high >= t.low:
        raise SdInputError(f"{t.where}: low {t.low:g} is above high {t.high:g} (reversed?).")
    if not t.tolerance > 0:
        raise SdInputError(f"{t.where}: the tolerance (sigma, or the interval half-width) "
                           f"must be positive; give a sigma > 0.")
    if t.weight < 0:
        raise SdInputError(f"{t.where}: weight must not be negative.")


def check_against(targets, model, initial_time: float, final_time: float) -> tuple[Target, ...]:
    """Resolve target variables in ``model`` and check times lie in the run.

    Returns the targets with canonical Vensim names; raises
    :class:`SdInputError` naming the row and suggesting names.
    """
    from dataclasses import replace

    out = []
    for t in targets:
        var = model.variable(t.variable, kinds=("stock", "flow", "auxiliary"),
                             what="model variable", where=f" ({t.where})")
        ends = [t.time] if t.kind == "point" else [t.time, t.time_end]
        for x in ends:
            if x < initial_time - 1e-9 or x > final_time + 1e-9:
                raise SdInputError(f"{t.where}: time {time_text(x)} is outside the run "
                                   f"({time_text(initial_time)}-{time_text(final_time)}).")
        out.append(replace(t, variable=var.name))
    return tuple(out)


# -- evaluating ----------------------------------------------------------------
def evaluate(targets, ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Residuals and simulated summaries of every target for a batch of runs.

    Parameters
    ----------
    targets : sequence of Target
    ds : xarray.Dataset
        Dims ``run`` and ``time`` (from :func:`sd.simulation.run_many`).

    Returns
    -------
    residuals : ndarray, shape (n_runs, n_targets)
        Weighted scaled residuals; the payoff is the sum of their squares.
        NaN for a failed run.
    simulated : ndarray, shape (n_runs, n_targets)
        What each target looks at: the value at the time (point), the worst
        value (range), the maximum (peak), the minimum (trough), the time of
        the maximum (peak_time).
    """
    times = np.asarray(ds["time"].values, dtype=float)
    res = np.zeros((ds.sizes["run"], len(targets)))
    sim = np.zeros_like(res)
    for j, t in enumerate(targets):
        y = matrix(ds, t.variable)
        sim[:, j], res[:, j] = _residual(t, [values(m, times, y) for m in t.metrics()])
        res[:, j] *= t.weight
    return res, sim


def _residual(t: Target, stats):
    """(simulated summary, scaled residual) of target ``t`` from its metrics' values."""
    if t.kind == "point":
        return stats[0], (stats[0] - t.value) / t.sigma
    if t.kind == "peak_time":
        return stats[0], _outside(stats[0], t.time, t.time_end) / t.tolerance
    if t.kind == "range":
        high, low = stats
        above, below = high - t.high, t.low - low
        # Report the worst excursion; inside the band the value nearest a bound.
        worst = np.where(above >= below, high, low)
        dist = np.where((above > 0) & (above >= below), above, np.where(below > 0, -below, 0.0))
        return worst, dist / t.tolerance
    return stats[0], _outside(stats[0], t.low, t.high) / t.tolerance


def _outside(x, low, high):
    """Signed distance of ``x`` outside ``[low, high]`` (0 inside)."""
    return np.where(x > high, x - high, np.where(x < low, x - low, 0.0))


def met(targets, residuals: np.ndarray) -> np.ndarray:
    """Boolean per target: point within 2 sigma, other kinds residual 0."""
    out = np.zeros(len(targets), dtype=bool)
    for j, t in enumerate(targets):
        r = abs(residuals[j])
        out[j] = r <= POINT_MET_SIGMAS * max(t.weight, 1e-300) if t.kind == "point" else r <= 1e-12
    return out


def times(targets) -> list[float]:
    """The times at which the targets read a trajectory: every point's time and the
    ends of every window (a ``peak_time`` reads the whole run)."""
    out = []
    for t in targets:
        if t.kind == "point":
            out.append(t.time)
        elif t.kind != "peak_time":
            out += [t.time, t.time_end]
    return sorted(set(out))


def variables(targets) -> list[str]:
    """The model variables the targets look at, in first-seen order."""
    return list(dict.fromkeys(t.variable for t in targets))
