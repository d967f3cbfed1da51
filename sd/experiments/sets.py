"""Each case's behaviour-consistent set: a finished calibration reused, or run now.

A calibration output folder (``sd calibrate SPEC --out DIR``) is reused only
when it was made from the same files: its ``fit.json`` records the hashes of
the spec, model, data and scenario files, which must equal those of the
case's calibration spec today (the spec's hash covers its seed and
settings). Otherwise the calibration runs, and the caller may keep its
output for the next experiment. Either way the experiment says which.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..calibration import AcceptedSet, accepted_set, calibrate
from ..calibration.spec import Spec as CalibrationSpec
from .._common import read_json
from ..errors import SdInputError


@dataclass(frozen=True)
class SetSource:
    """Where a case's set came from.

    Attributes
    ----------
    case : str
    how : str
        ``"reused"`` (a matching output folder) or ``"ran"``.
    folder : str
        The folder reused, or where the new calibration was written ("" if not kept).
    reason : str
        Why a calibration ran (no folder, or which files differ).
    members, groups : int
        Members of the set and independent chains behind them (before any
        sub-sampling by ``max_members``).
    used : int
        Members the experiment runs.
    prior_mass, prior_mass_se : float
        The set's share of the prior, with its standard error.
    """

    case: str
    how: str
    folder: str
    reason: str
    members: int
    groups: int
    used: int
    prior_mass: float
    prior_mass_se: float


def obtain(case: str, spec: CalibrationSpec, folders, on_calibrated=None):
    """The accepted set of ``spec``: from the first matching folder, else calibrated.

    Parameters
    ----------
    case : str
    spec : sd.calibration.spec.Spec
    folders : sequence of Path
        Candidate output folders, in order of preference.
    on_calibrated : callable, optional
        ``on_calibrated(case, result) -> folder`` keeps a new calibration
        (the CLI writes it under the experiment's output folder).

    Returns
    -------
    (AcceptedSet, SetSource)
    """
    reasons = []
    for folder in folders:
        why = mismatch(Path(folder), spec)
        if why is None:
            acc = replace(accepted_set(folder), model=Path(spec.model))
            info = read_json(Path(folder) / "fit.json")["set"]
            return acc, SetSource(case, "reused", str(folder), "", len(acc),
                                  len(np.unique(acc.groups)), len(acc),
                                  float(info.get("prior_mass") or 0.0),
                                  float(info.get("prior_mass_se") or 0.0))
        reasons.append(f"{folder}: {why}")
    result = calibrate(spec.path, progress=False)
    kept = on_calibrated(case, result) if on_calibrated else None
    acc = accepted_set(result)
    return acc, SetSource(case, "ran", str(kept or ""), "; ".join(reasons) or "no folder given",
                          len(acc), len(np.unique(acc.groups)) if len(acc) else 0, len(acc),
                          float(result.mass.share), float(result.mass.se))


def mismatch(folder: Path, spec: CalibrationSpec) -> str | None:
    """None when ``folder`` holds a finished set-valued calibration of ``spec``'s
    files as they are now; else why not."""
    fit = folder / "fit.json"
    if not fit.is_file() or not (folder / "accepted.csv").is_file():
        return "no finished calibration (fit.json, accepted.csv)"
    try:
        info = read_json(fit)
        done = info["provenance"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return "fit.json is not the record of a set-valued calibration"
    if info.get("approach") != "set":
        return "a point fit, not a set-valued calibration"
    now = dict(spec.sha256)
    if sorted(done.values()) == sorted(now.values()):
        return None
    changed = [Path(p).name for p, h in now.items() if h not in set(done.values())]
    return "made from other files (" + (", ".join(changed) or "a file set that differs") + \
        " changed since)"


def subsample(acc: AcceptedSet, n: int, rng: np.random.Generator) -> AcceptedSet:
    """At most ``n`` members, as whole chains (so standard errors stay valid); all if n = 0."""
    if not n or len(acc) <= n:
        return acc
    labels = np.unique(acc.groups)
    size = len(acc) / len(labels)
    keep = rng.permutation(labels)[:max(2, int(n // size))]
    rows = np.isin(acc.groups, keep)
    return replace(acc, values=acc.values[rows].reset_index(drop=True), groups=acc.groups[rows])


def prior(acc: AcceptedSet, n: int, rng: np.random.Generator) -> AcceptedSet:
    """``n`` independent draws from the prior the set was cut from (uniform on each
    input's range), as an AcceptedSet of one-member groups."""
    if not acc.ranges:
        raise SdInputError(f"{acc.source}: the calibration does not record its inputs' ranges; "
                           "set prior_draws = 0 or calibrate again.")
    names = list(acc.values.columns)
    missing = [c for c in names if c not in acc.ranges]
    if missing:
        raise SdInputError(f"{acc.source}: no prior range recorded for {', '.join(missing)}.")
    low = np.array([acc.ranges[c][0] for c in names])
    high = np.array([acc.ranges[c][1] for c in names])
    values = pd.DataFrame(low + rng.random((n, len(names))) * (high - low), columns=names)
    return replace(acc, values=values, groups=np.arange(n), source=f"prior of {acc.source}")
