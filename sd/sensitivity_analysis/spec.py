"""A sensitivity spec (TOML), every name and value checked against its model.

Spec (paths relative to the spec file)::

    model = "../models/juarez_brick_kilns.mdl"
    scenario = "baseline"          # optional: name in the scenarios TOML beside
                                   # the model, NAME@FILE.toml, or a .cin file
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

Distributions: :mod:`.distributions`; metric kinds: :mod:`sd.outcomes.metrics`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from .._common import (distinct_names, file_sha256, flag, input_file, known_keys,
                       power_of_two, read_toml, run_limit, seed, table, whole)
from ..errors import SdInputError, suggest
from ..model import Model, load
from ..outcomes import metrics as metrics_mod
from ..scenarios import Scenario, resolve, validate
from . import distributions as dist_mod

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
def load_spec(path: str | Path, samples: int | None = None) -> tuple[SensitivitySpec, Model]:
    """Read a sensitivity spec and check every name and value against its model.

    Returns
    -------
    (SensitivitySpec, Model)

    Raises
    ------
    SdInputError
        Naming the spec file and key: unknown keys, parameters or variables
        (with suggestions), impossible distributions, N < 1, non-finite or
        out-of-range numbers, designs beyond :func:`run_limit`, unknown metric
        kinds or sampling methods, two metrics or bands written to one file.

    ``samples`` (``--samples``) replaces ``[sampling] n``.
    """
    path = Path(path)
    data = read_toml(path, "Sensitivity spec")
    known_keys(data, _TOP, str(path))
    if "model" not in data:
        raise SdInputError(f"{path}: missing 'model' (path of the .mdl, relative to the spec).")
    model = load(input_file(path.parent, data["model"], f"{path}: model"))
    sampling = _section(data, "sampling", path)
    output = _section(data, "output", path)
    params = _parameters(data, path, model)
    metrics = _metrics(data, path, model)
    variables = _variables(output.get("variables"), f"{path} [output] variables", model) or \
        tuple(dict.fromkeys(m.variable for m in metrics))
    bands = _variables(output.get("bands"), f"{path} [output] bands", model) or variables
    sobol, morris = _section(data, "sobol", path), _section(data, "morris", path)
    spec = SensitivitySpec(
        path=path, model_path=model.path, sha256=file_sha256(path),
        scenario=_scenario_ref(data.get("scenario"), path),
        parameters=params, metrics=metrics,
        method=str(sampling.get("method", "lhs")),
        n=whole(sampling.get("n", 500), f"{path} [sampling] n", 1),
        seed=seed(sampling.get("seed", 0), f"{path} [sampling] seed"),
        chunk_size=whole(sampling.get("chunk_size", 500), f"{path} [sampling] chunk_size", 1),
        variables=variables, bands=tuple(dict.fromkeys(bands + ())),
        every=_positive(output.get("every"), f"{path} [output] every"),
        dtype=_dtype(output.get("dtype", "float64"), path),
        sobol_n=power_of_two(whole(sobol.get("n", 0), f"{path} [sobol] n", 0),
                             f"{path} [sobol] n"),
        sobol_second_order=flag(sobol.get("second_order", True), f"{path} [sobol] second_order"),
        morris_trajectories=whole(morris.get("trajectories", 0), f"{path} [morris] trajectories", 0),
        morris_levels=whole(morris.get("levels", 4), f"{path} [morris] levels", 2, 1000),
    )
    if samples is not None:
        spec = replace(spec, n=whole(samples, "--samples", 1))
    if spec.morris_levels % 2:
        raise SdInputError(f"{path} [morris] levels = {spec.morris_levels} must be even (Morris' "
                           "jump of levels/2 steps is then equally likely from every level); the "
                           f"nearest are {spec.morris_levels - 1} and {spec.morris_levels + 1}.")
    _check_outputs(spec, path)
    if spec.method not in dist_mod.METHODS:
        raise SdInputError(f"{path} [sampling] method: unknown {spec.method!r}; expected one of "
                           f"{', '.join(dist_mod.METHODS)}." + suggest(spec.method, dist_mod.METHODS))
    return spec, model


def _check_outputs(spec: SensitivitySpec, path: Path) -> None:
    """Refuse, before any run, a design too large to draw and two names that
    would be written to one file (the report's hist_/bands_ plots)."""
    limit = run_limit()
    for where, runs in ((f"{path} [sampling] n", spec.n), (f"{path} [sobol]", spec.sobol_runs()),
                        (f"{path} [morris]", spec.morris_runs())):
        if runs > limit:
            raise SdInputError(f"{where}: {runs} runs, beyond the limit of {limit} (the whole "
                               "design is drawn before the first run). Use fewer, or raise the "
                               f"limit with the environment variable SD_RUN_LIMIT={runs}.")
    distinct_names([m.name for m in spec.metrics], "hist_{}.png", f"{path} [metrics]")
    distinct_names(spec.bands, "bands_{}.png", f"{path} [output] bands")


def _section(data: dict, name: str, path: Path) -> dict:
    return table(data, name, str(path), _SECTIONS[name])


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
    names = [d.name for d in out]
    twice = [n for n in dict.fromkeys(names) if names.count(n) > 1]
    if twice:
        raise SdInputError(f"{path} [parameters]: the constant {twice[0]!r} is listed twice (Vensim "
                           "names ignore case, blanks and underscores).")
    return tuple(out)


def _metrics(data: dict, path: Path, model: Model) -> tuple:
    table = data.get("metrics")
    if not isinstance(table, dict) or not table:
        raise SdInputError(f"{path}: [metrics] must define at least one outcome metric, e.g. "
                           "peak_share = { variable = \"Propane Share\", kind = \"max\" }.")
    for name in table:
        if not name.strip() or not name.isprintable():
            raise SdInputError(f"{path} [metrics] {name!r}: a metric name must be printable text "
                               "(it labels tables, plots and file names).")
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


def _positive(value, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or not math.isfinite(value):
        raise SdInputError(f"{where}: expected a positive (finite) number, got {value!r}.")
    return float(value)


def _dtype(value, path: Path) -> str:
    if value not in ("float64", "float32"):
        raise SdInputError(f"{path} [output] dtype: expected float64 or float32, got {value!r}.")
    return value


def base_scenario(spec: SensitivitySpec, model: Model):
    """The validated scenario every run starts from (sampled constants override it)."""
    if spec.scenario is None:
        return Scenario(name="model as written")
    try:
        scenario = resolve(spec.scenario, model.path)
    except SdInputError as exc:
        raise SdInputError(f"{spec.path} scenario: {exc}") from None
    return validate(scenario, model)
