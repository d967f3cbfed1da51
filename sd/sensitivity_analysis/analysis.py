"""Monte Carlo ensembles and global sensitivity analysis (Sobol, Morris).

:func:`sensitivity` reads as the pipeline it runs::

    spec, model = load_spec(path)                      # names checked up front
    ensemble    = Monte Carlo design -> chunks -> ensemble.nc + metrics
    sobol       = SALib Sobol design -> metrics -> Sobol indices
    morris      = SALib Morris design -> metrics -> Morris indices
    report      = plots + tables + report.md (sd.report.sensitivity)

Spec (TOML; paths relative to the spec file)::

    model = "../models/juarez_brick_kilns.mdl"
    scenario = "baseline"          # optional: name in the scenarios TOML beside
                                   # the model, or a calibrated .cin file
    [sampling]
    method = "lhs"                 # lhs | sobol | random
    n = 500
    seed = 20240501
    chunk_size = 250
    [output]
    variables = ["Propane Share", "Emissions Index"]   # kept in ensemble.nc
    every = 0.5                    # keep every 0.5 time units (default: all saved)
    dtype = "float64"              # or float32
    bands = ["Propane Share"]      # confidence-band plots (default: variables)
    [parameters]
    "Contact Rate" = { distribution = "uniform", low = 0.1, high = 0.6 }
    [metrics]
    peak_share = { variable = "Propane Share", kind = "max" }
    [sobol]                        # optional: n = 0 skips it
    n = 64                         # base N; runs = n (2D + 2), or n (D + 2)
    second_order = true
    [morris]                       # optional: trajectories = 0 skips it
    trajectories = 10
    levels = 4

Distributions: :mod:`sd.sensitivity_analysis.distributions`; metric kinds: :mod:`sd.outcomes.metrics`.
"""
from __future__ import annotations

import hashlib
import shutil
import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from . import distributions as dist_mod
from ..outcomes import metrics as metrics_mod
from ..errors import SdInputError, suggest
from .._common import read_toml
from ..model.model import Model

_TOP = ("model", "scenario", "sampling", "output", "parameters", "metrics", "sobol", "morris")
_SECTIONS = {
    "sampling": ("method", "n", "seed", "chunk_size"),
    "output": ("variables", "every", "dtype", "bands"),
    "sobol": ("n", "second_order"),
    "morris": ("trajectories", "levels"),
}


@dataclass(frozen=True)
class SensitivitySpec:
    """A checked sensitivity spec (see the module docstring for the TOML).

    Attributes
    ----------
    path, model_path : Path
    sha256 : str
        Hash of the spec file, for provenance.
    scenario : str or None
        Base scenario name or ``.cin`` path.
    parameters : tuple of Distribution
    metrics : tuple of Metric
    method : str
    n, seed, chunk_size : int
    variables : tuple of str
        Stored in ``ensemble.nc``.
    every : float or None
        Spacing of stored times (None: every saved time).
    dtype : str
    bands : tuple of str
    sobol_n : int
    sobol_second_order : bool
    morris_trajectories, morris_levels : int
    """

    path: Path
    model_path: Path
    sha256: str
    scenario: str | None
    parameters: tuple
    metrics: tuple
    method: str = "lhs"
    n: int = 500
    seed: int = 0
    chunk_size: int = 500
    variables: tuple[str, ...] = ()
    every: float | None = None
    dtype: str = "float64"
    bands: tuple[str, ...] = ()
    sobol_n: int = 0
    sobol_second_order: bool = True
    morris_trajectories: int = 0
    morris_levels: int = 4

    @property
    def names(self) -> list[str]:
        """Vensim names of the sampled parameters, in spec order."""
        return [d.name for d in self.parameters]

    def sobol_runs(self) -> int:
        d = len(self.parameters)
        return self.sobol_n * (2 * d + 2 if self.sobol_second_order else d + 2)

    def morris_runs(self) -> int:
        return self.morris_trajectories * (len(self.parameters) + 1)


# -- reading the spec -------------------------------------------------------------
def load_spec(path: str | Path) -> tuple[SensitivitySpec, Model]:
    """Read a sensitivity spec and check every name and value against its model.

    Returns
    -------
    (SensitivitySpec, Model)

    Raises
    ------
    SdInputError
        Naming the spec file and key: unknown keys, parameters or variables
        (with suggestions), impossible distributions, N < 1, unknown metric
        kinds or sampling methods.
    """
    from ..model.model import load

    path = Path(path)
    data = read_toml(path, "Sensitivity spec")
    _known_keys(data, _TOP, str(path))
    if "model" not in data:
        raise SdInputError(f"{path}: missing 'model' (path of the .mdl, relative to the spec).")
    model = load(path.parent / str(data["model"]))
    sampling = _section(data, "sampling", path)
    output = _section(data, "output", path)
    params = _parameters(data, path, model)
    metrics = _metrics(data, path, model)
    variables = _variables(output.get("variables"), f"{path} [output] variables", model) or \
        tuple(dict.fromkeys(m.variable for m in metrics))
    bands = _variables(output.get("bands"), f"{path} [output] bands", model) or variables
    sobol, morris = _section(data, "sobol", path), _section(data, "morris", path)
    spec = SensitivitySpec(
        path=path, model_path=model.path, sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        scenario=_scenario_ref(data.get("scenario"), path),
        parameters=params, metrics=metrics,
        method=str(sampling.get("method", "lhs")),
        n=_int(sampling.get("n", 500), f"{path} [sampling] n", 1),
        seed=_int(sampling.get("seed", 0), f"{path} [sampling] seed", 0),
        chunk_size=_int(sampling.get("chunk_size", 500), f"{path} [sampling] chunk_size", 1),
        variables=variables, bands=tuple(dict.fromkeys(bands + ())),
        every=_positive(output.get("every"), f"{path} [output] every"),
        dtype=_dtype(output.get("dtype", "float64"), path),
        sobol_n=_int(sobol.get("n", 0), f"{path} [sobol] n", 0),
        sobol_second_order=bool(sobol.get("second_order", True)),
        morris_trajectories=_int(morris.get("trajectories", 0), f"{path} [morris] trajectories", 0),
        morris_levels=_int(morris.get("levels", 4), f"{path} [morris] levels", 2),
    )
    if spec.method not in dist_mod.METHODS:
        raise SdInputError(f"{path} [sampling] method: unknown {spec.method!r}; expected one of "
                           f"{', '.join(dist_mod.METHODS)}." + suggest(spec.method, dist_mod.METHODS))
    return spec, model


def _known_keys(table: dict, allowed, where: str) -> None:
    for key in table:
        if key not in allowed:
            raise SdInputError(f"{where}: unknown key {key!r}; expected one of "
                               f"{', '.join(allowed)}." + suggest(key, allowed))


def _section(data: dict, name: str, path: Path) -> dict:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise SdInputError(f"{path}: '{name}' must be a table [{name}].")
    _known_keys(table, _SECTIONS[name], f"{path} [{name}]")
    return table


def _parameters(data: dict, path: Path, model: Model) -> tuple:
    table = data.get("parameters")
    if not isinstance(table, dict) or not table:
        raise SdInputError(f"{path}: [parameters] must name at least one constant with its "
                           "distribution, e.g. \"Contact Rate\" = { distribution = \"uniform\", "
                           "low = 0.1, high = 0.6 }.")
    out = []
    for name, entry in table.items():
        where = f"{path} [parameters] {name!r}"
        var = model.variable(name, kinds=("constant",), what="constant", where=f" (in {where})")
        out.append(dist_mod.make(var.name, entry, where))
    if len({d.name for d in out}) != len(out):
        raise SdInputError(f"{path} [parameters]: a constant is listed twice.")
    return tuple(out)


def _metrics(data: dict, path: Path, model: Model) -> tuple:
    table = data.get("metrics")
    if not isinstance(table, dict) or not table:
        raise SdInputError(f"{path}: [metrics] must define at least one outcome metric, e.g. "
                           "peak_share = { variable = \"Propane Share\", kind = \"max\" }.")
    return tuple(metrics_mod.make(name, entry, model, f"{path} [metrics] {name!r}")
                 for name, entry in table.items())


def _variables(value, where: str, model: Model) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SdInputError(f"{where}: expected a list of Vensim names.")
    return tuple(model.variable(v, where=f" (in {where})").name for v in value)


def _scenario_ref(value, path: Path) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise SdInputError(f"{path} scenario: expected a scenario name or a .cin path.")
    return str(path.parent / value) if value.lower().endswith(".cin") else value


def _int(value, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SdInputError(f"{where}: expected an integer >= {minimum}, got {value!r}.")
    return value


def _positive(value, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise SdInputError(f"{where}: expected a positive number, got {value!r}.")
    return float(value)


def _dtype(value, path: Path) -> str:
    if value not in ("float64", "float32"):
        raise SdInputError(f"{path} [output] dtype: expected float64 or float32, got {value!r}.")
    return value


# -- designs ------------------------------------------------------------------------
def base_scenario(spec: SensitivitySpec, model: Model):
    """The validated scenario every run starts from (sampled constants override it)."""
    from ..scenarios import Scenario, resolve, validate

    if spec.scenario is None:
        return Scenario(name="model as written")
    try:
        scenario = resolve(spec.scenario, model.path)
    except SdInputError as exc:
        raise SdInputError(f"{spec.path} scenario: {exc}") from None
    return validate(scenario, model)


def monte_carlo_design(spec: SensitivitySpec, n: int | None = None) -> pd.DataFrame:
    """The Monte Carlo sample: ``n`` rows (default ``spec.n``), one column per parameter."""
    unit = dist_mod.unit_design(spec.method, n or spec.n, len(spec.parameters), spec.seed)
    return dist_mod.to_values(unit, list(spec.parameters))


def _problem(spec: SensitivitySpec) -> dict:
    # SALib works on the unit cube; the distributions' ppf maps it to values,
    # so the indices refer to the spec's distributions, not to uniform ranges.
    d = len(spec.parameters)
    return {"num_vars": d, "names": spec.names, "bounds": [[0.0, 1.0]] * d}


def sobol_design(spec: SensitivitySpec) -> np.ndarray:
    """SALib's Sobol (Saltelli) design on the unit cube: ``spec.sobol_runs()`` rows."""
    from SALib.sample import sobol

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SALib warns when n is not a power of 2
        return sobol.sample(_problem(spec), spec.sobol_n,
                            calc_second_order=spec.sobol_second_order, seed=spec.seed)


def morris_design(spec: SensitivitySpec) -> np.ndarray:
    """SALib's Morris trajectories on the unit cube: ``spec.morris_runs()`` rows."""
    from SALib.sample import morris

    return morris.sample(_problem(spec), spec.morris_trajectories,
                         num_levels=spec.morris_levels, seed=spec.seed)


# -- indices ---------------------------------------------------------------------------
def sobol_indices(spec: SensitivitySpec, table: pd.DataFrame) -> pd.DataFrame:
    """First-order and total Sobol indices with 95 % bootstrap intervals.

    ``table`` holds one column per metric, one row per run of :func:`sobol_design`.
    Rows: (metric, parameter); columns S1, S1_conf, ST, ST_conf.
    """
    from SALib.analyze import sobol

    rows = []
    for m in spec.metrics:
        y = table[m.name].to_numpy(dtype=float)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # a metric that never varies gives 0/0
            res = sobol.analyze(_problem(spec), y, calc_second_order=spec.sobol_second_order,
                                seed=spec.seed)
        for j, name in enumerate(spec.names):
            rows.append({"metric": m.name, "parameter": name,
                         **{k: float(res[k][j]) for k in ("S1", "S1_conf", "ST", "ST_conf")}})
    return pd.DataFrame(rows).set_index(["metric", "parameter"])


def morris_indices(spec: SensitivitySpec, x: np.ndarray, table: pd.DataFrame) -> pd.DataFrame:
    """Morris elementary-effect statistics: mu, mu_star (95 % interval), sigma.

    Effects are per unit of quantile (moving a parameter from its 0.1 % to
    its 99.9 % quantile counts as 1), so parameters are comparable.
    """
    from SALib.analyze import morris

    rows = []
    for m in spec.metrics:
        y = table[m.name].to_numpy(dtype=float)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            res = morris.analyze(_problem(spec), x, y, num_levels=spec.morris_levels,
                                 seed=spec.seed)
        for j, name in enumerate(spec.names):
            rows.append({"metric": m.name, "parameter": name,
                         **{k: float(res[k][j]) for k in ("mu", "mu_star", "mu_star_conf", "sigma")}})
    return pd.DataFrame(rows).set_index(["metric", "parameter"])


# -- orchestration ---------------------------------------------------------------------
@dataclass(frozen=True)
class SensitivityResult:
    """What :func:`sensitivity` computed and where it wrote it.

    Attributes
    ----------
    spec : SensitivitySpec
    out : Path
    samples : pandas.DataFrame
        The Monte Carlo design (values).
    metrics : pandas.DataFrame
        One row per Monte Carlo run, one column per metric.
    sobol, morris : pandas.DataFrame or None
    files : tuple of Path
    seconds : float
    """

    spec: SensitivitySpec
    out: Path
    samples: pd.DataFrame
    metrics: pd.DataFrame
    sobol: pd.DataFrame | None
    morris: pd.DataFrame | None
    files: tuple = ()
    seconds: float = 0.0


def sensitivity(spec_path: str | Path, out: str | Path | None = None, *,
                samples: int | None = None, dask: str | None = None,
                progress: bool = True) -> SensitivityResult:
    """Run the Monte Carlo ensemble, Sobol and Morris analyses of a spec.

    Parameters
    ----------
    spec_path : str or Path
        Sensitivity spec (TOML).
    out : str or Path, optional
        Output folder (default ``results/sensitivity-<spec stem>``). Every file
        is written to a scratch folder and moved in at the end, so a failed or
        interrupted run leaves no partial output.
    samples : int, optional
        Monte Carlo size, overriding ``[sampling] n``.
    dask : str, optional
        ``tcp://host:8786`` (an existing scheduler) or ``"local"`` (a 2-worker
        LocalCluster); default: run in this process.
    progress : bool
        tqdm progress bars on stderr.

    Returns
    -------
    SensitivityResult
    """
    import time as _time

    from ..simulation.chunks import dask_client

    started = _time.perf_counter()
    spec, model = load_spec(spec_path)
    if samples is not None:
        spec = replace(spec, n=_int(samples, "--samples", 1))
    base = base_scenario(spec, model)
    out = Path(out) if out else Path("results") / f"sensitivity-{spec.path.stem}"
    # Connect first: an unreachable scheduler must not leave even an empty folder.
    with dask_client(dask) as client:
        out.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".sd-sensitivity-", dir=out))
        return _analyse(spec, model, base, client, out, scratch, dask, progress, started)


def _analyse(spec, model, base, client, out, scratch, dask, progress, started):
    """Run the three designs into ``scratch``, then move the files into ``out``."""
    import time as _time

    from ..report.sensitivity import write_outputs

    try:
        runs = _Runner(spec, model, base, client, progress)
        design, table = runs.ensemble(scratch / "ensemble.nc")
        sobol = sobol_indices(spec, runs.metrics(sobol_design(spec), "sobol")) \
            if spec.sobol_n else None
        x_morris = morris_design(spec) if spec.morris_trajectories else None
        morris = morris_indices(spec, x_morris, runs.metrics(x_morris, "morris")) \
            if x_morris is not None else None
        result = SensitivityResult(spec, out, design, table, sobol, morris,
                                   seconds=_time.perf_counter() - started)
        names = write_outputs(result, model, base, scratch, dask=dask)
        for name in names:
            (scratch / name).replace(out / name)
        return replace(result, files=tuple(out / n for n in names))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class _Runner:
    """Runs designs of one spec in chunks (here or on Dask) and collects metrics."""

    def __init__(self, spec, model, base, client, progress):
        self.spec, self.model, self.base = spec, model, base
        self.client, self.progress = client, progress
        self.variables = tuple(dict.fromkeys(
            [m.variable for m in spec.metrics] + list(spec.variables) + list(spec.bands)))

    def job(self, values: pd.DataFrame):
        from ..simulation.chunks import Job

        # The base scenario's constants go in as columns: every run carries
        # its complete set of overrides, and sampled values win.
        fixed = {k: v for k, v in self.base.constants.items() if k not in values.columns}
        full = values.assign(**fixed) if fixed else values
        return Job(self.model, full, self.variables, dict(self.base.lookups),
                   dict(self.base.time), self.spec.chunk_size)

    def ensemble(self, path: Path):
        from ..simulation.chunks import write_ensemble

        design = monte_carlo_design(self.spec)
        parts = []
        job = self.job(design)
        times = self._stored_times(job)
        write_ensemble(job, path, store_variables=self.spec.variables, store_times=times,
                       parameters=self.spec.names, client=self.client, progress=self.progress,
                       dtype=self.spec.dtype, label="monte carlo",
                       on_chunk=lambda a, ds: parts.append(
                           metrics_mod.compute(ds, list(self.spec.metrics)).to_dataframe()),
                       attrs={"spec": str(self.spec.path), "spec_sha256": self.spec.sha256,
                              "model_sha256": self.model.sha256, "seed": self.spec.seed,
                              "method": self.spec.method})
        return design, _frame(parts, self.spec)

    def metrics(self, unit: np.ndarray, label: str) -> pd.DataFrame:
        from ..simulation.chunks import iter_chunks

        values = dist_mod.to_values(unit, list(self.spec.parameters))
        parts = [metrics_mod.compute(ds, list(self.spec.metrics)).to_dataframe()
                 for _, ds in iter_chunks(self.job(values), client=self.client,
                                          progress=self.progress, label=label)]
        return _frame(parts, self.spec)

    def _stored_times(self, job) -> np.ndarray:
        from ..simulation.chunks import run_many

        # One probe run tells the saved times of this model and scenario.
        probe = run_many(self.model, job.chunk(0, 1), variables=job.variables[:1],
                         lookups=job.lookups, time=job.time)
        times = probe["time"].values
        if self.spec.every is None:
            return times
        keep = np.arange(times[0], times[-1] + self.spec.every / 2, self.spec.every)
        return np.unique(times[np.abs(times[:, None] - keep[None, :]).argmin(axis=0)])


def _frame(parts: list[pd.DataFrame], spec: SensitivitySpec) -> pd.DataFrame:
    table = pd.concat(parts)
    table.index.name = "run"
    return table[[m.name for m in spec.metrics]]
