"""Vensim users' optimisation files: ``.voc`` (controls) and ``.vpd`` (payoff).

What is accepted (from the Vensim reference, "Optimization Control" and
"Payoff Definitions (.vpd files)"):

``.voc``
    one parameter per line, ``LOW <= Name = INIT <= HIGH`` or
    ``LOW <= Name <= HIGH`` (init: the midpoint). Option lines start with
    ``:``: ``:OPTIMIZER=Powell|Off`` (-> ``powell``; ``DE``/``LS`` also
    accepted for sd's other methods), ``:SEED=n``, ``:MAX_ITERATIONS=n``
    (-> evaluation budget), ``:RESTART_MAX=n`` (-> number of starts). Other
    options are ignored. Blank lines and lines starting with ``;`` or ``#``
    are comments.
``.vpd``
    calibration payoffs only: type lines ``*C`` (or ``*Calibration``; only
    the first letter after ``*`` matters; ``*P`` policy payoffs are refused)
    and element lines ``Model Variable|Data Variable/weight``. As in Vensim's
    Gaussian calibration payoff the weight is 1/sigma, so every data value of
    ``Data Variable`` becomes a ``point`` target with ``sigma = 1/weight``.
    The data come from a CSV given beside the ``.vpd`` (spec key
    ``data_file``): either a ``time`` column and one column per data variable,
    or Vensim's export layout (one row per variable, its name in the first
    column, times in the header, whose first cell may be ``Time``); commas or
    tabs (a ``.tab`` file). Empty cells are missing data.

Encodings: ``.voc`` and ``.vpd`` files are read as UTF-8 or, when they are
not valid UTF-8, as Latin-1 (Windows-1252), which older Vensim versions
write; the data CSV must be UTF-8 (a file that is not names its line).
"""
from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path


from .._common import number, read_text, run_limit, seed, whole
from ..errors import SdInputError, suggest
from ..outcomes.targets import Target, check_duplicates

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_VOC_LINE = re.compile(rf"^\s*({_NUM})\s*<=\s*(.+?)\s*(?:=\s*({_NUM})\s*)?<=\s*({_NUM})\s*$")
_METHODS = {"powell": "powell", "de": "differential_evolution",
            "differential_evolution": "differential_evolution",
            "ls": "least_squares", "least_squares": "least_squares"}


def read_voc(path: str | Path):
    """Parameters and options of a Vensim optimisation control file.

    Returns
    -------
    (list of (name, low, high, init, where), dict)
        One row per parameter (``where`` is ``file:line``, for messages) and
        the ``[optimizer]`` options the file implies.
    """
    path = Path(path)
    params, options = [], {}
    for line_no, line in enumerate(read_text(path, "Optimization control file", latin1=True)
                                   .splitlines(), start=1):
        text = line.strip()
        where = f"{path}:{line_no}"
        if not text or text[0] in ";#":
            continue
        if text.startswith(":"):
            key, _, value = text[1:].partition("=")
            _option(key.strip().upper(), value.strip(), options, where)
            continue
        m = _VOC_LINE.match(text)
        if not m:
            raise SdInputError(f"{where}: cannot read {text!r}; expected "
                               "'LOW <= Name = INIT <= HIGH' or an option ':KEY=VALUE'.")
        low, name, init, high = m.groups()
        low, high = float(low), float(high)
        init = float(init) if init is not None else (low + high) / 2
        params.append((name, low, high, init, where))
    if not params:
        raise SdInputError(f"{path}: no parameter lines ('LOW <= Name = INIT <= HIGH').")
    return params, options


def _option(key: str, value: str, options: dict, where: str) -> None:
    if key == "OPTIMIZER":
        if value.lower() == "off":
            options["max_evals"] = 0
            return
        if value.lower() not in _METHODS:
            raise SdInputError(f"{where}: :OPTIMIZER={value} is not supported; use Powell, "
                               "DE or LS.")
        options["method"] = _METHODS[value.lower()]
        return
    count = {"SEED": "seed", "MAX_ITERATIONS": "max_evals", "RESTART_MAX": "starts"}.get(key)
    if count is None:
        return
    amount = number(value, f"{where}: :{key}", strings=True)
    if count == "seed":
        options["seed"] = seed(amount, f"{where}: :SEED")
    elif count == "max_evals":
        options["max_evals"] = whole(amount, f"{where}: :MAX_ITERATIONS", 0, run_limit())
    else:
        options["starts"] = whole(amount, f"{where}: :RESTART_MAX", 0, 10**4 - 1) + 1


def read_vpd(path: str | Path, data_file: str | Path) -> tuple[Target, ...]:
    """Point targets from a calibration payoff definition and its data CSV."""
    path, data_file = Path(path), Path(data_file)
    elements, kind = [], None
    for line_no, line in enumerate(read_text(path, "Payoff definition file", latin1=True)
                                   .splitlines(), start=1):
        text, where = line.strip(), f"{path}:{line_no}"
        if not text or text[0] in ";#":
            continue
        if text.startswith("*"):
            kind = text[1:2].upper()
            if kind != "C":
                raise SdInputError(f"{where}: only calibration payoffs (*C) are supported, "
                                   f"not {text!r}.")
            continue
        var, bar, rest = text.partition("|")
        data_var, slash, weight = rest.rpartition("/")
        if not bar or not slash:
            raise SdInputError(f"{where}: expected 'Model Variable|Data Variable/weight', "
                               f"got {text!r}.")
        w = number(weight.strip(), f"{where}: weight", strings=True)
        if not w > 0 or not math.isfinite(1.0 / w):
            raise SdInputError(f"{where}: weight {weight.strip()} must be positive and not so "
                               "small that sigma = 1/weight overflows (it is 1/sigma).")
        elements.append((var.strip(), data_var.strip(), w, where))
    if not elements:
        raise SdInputError(f"{path}: no payoff elements ('Variable|Data/weight').")
    data = _read_data(data_file)
    targets = []
    for var, data_var, w, where in elements:
        if data_var not in data:
            raise SdInputError(f"{where}: data variable {data_var!r} is not in {data_file}."
                               + suggest(data_var, data))
        for t, v, line in data[data_var]:
            targets.append(Target(variable=var, kind="point", time=t, value=v, sigma=1.0 / w,
                                  source=f"{data_file.name} via {path.name}",
                                  note="Vensim payoff element", where=f"{line} ({where})"))
    check_duplicates(targets)
    return tuple(targets)


def _read_data(path: Path) -> dict[str, list[tuple[float, float, str]]]:
    """``{data variable: [(time, value, "file:line"), ...]}`` from either layout.

    Times down (a ``time`` column, one column per variable) or times across
    (Vensim's export: a header of times, whose first cell may be ``Time``, and
    one row per variable); comma- or tab-separated (Vensim's ``.tab``).
    """
    if not path.is_file():
        raise SdInputError(f"Payoff data file not found: {path}.")
    text = read_text(path, "Payoff data file")
    first = text.lstrip().split("\n", 1)[0]
    delimiter = "\t" if path.suffix.lower() == ".tab" or ("\t" in first and "," not in first) \
        else ","
    rows = [(line, r) for line, r in enumerate(csv.reader(io.StringIO(text, newline=""),
                                                          delimiter=delimiter), start=1)
            if r and any(c.strip() for c in r)]
    if len(rows) < 2:
        raise SdInputError(f"{path}: expected a header and data rows.")
    head_line, head = rows[0]
    if head[0].strip().lower() == "time" and not _all_numbers(head[1:]):
        names = [c.strip() for c in head[1:]]
        _unique(names, f"{path}:{head_line}", "column")
        series = {n: [] for n in names}
        for line, row in rows[1:]:
            where = f"{path}:{line}"
            t = _num(row[0], where)
            for n, cell in zip(names, row[1:]):
                if cell.strip():
                    series[n].append((t, _num(cell, where), where))
        return series
    times = [_num(c, f"{path}:{head_line}") for c in head[1:] if c.strip()]
    series = {}
    for line, row in rows[1:]:
        where = f"{path}:{line}"
        name = row[0].strip()
        if name in series:
            raise SdInputError(f"{where}: data variable {name!r} appears twice.")
        if any(c.strip() for c in row[1 + len(times):]):
            raise SdInputError(f"{where}: {len(row) - 1} values but {len(times)} times in the "
                               "header.")
        series[name] = [(t, _num(c, where), where) for t, c in zip(times, row[1:])
                        if c.strip()]
    return series


def _all_numbers(cells) -> bool:
    try:
        [float(c) for c in cells if c.strip()]
    except ValueError:
        return False
    return True


def _unique(names, where: str, what: str) -> None:
    for i, n in enumerate(names):
        if n in names[:i]:
            raise SdInputError(f"{where}: {what} {n!r} appears twice.")


def _num(text: str, where: str) -> float:
    return number(text, where, strings=True)
