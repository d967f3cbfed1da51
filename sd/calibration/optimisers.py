"""Optimiser drivers over an :class:`sd.calibration.objective.Objective`, with checkpoints.

All drivers search the unit cube (see :mod:`sd.calibration.objective`):

``differential_evolution``
    scipy's global optimiser; the whole population goes through one batch
    call (``vectorized=True, updating='deferred'``). Optionally polished by a
    bounded ``least_squares`` from the best member.
``least_squares``
    bounded trust-region least squares from the spec's ``init`` and from
    Latin-hypercube starts (``scipy.stats.qmc``). The Jacobian is a forward
    difference with step :data:`JAC_STEP` of each range, evaluated as one
    batch; the step is large because switch times (programme start, shock
    year) move outputs only when they cross a TIME STEP.
``powell``
    Powell's derivative-free method (Vensim's optimiser), same starts.

A checkpoint JSON (written atomically) records finished starts and the best
point, sealed with an HMAC under the per-user secret of the sd cache;
``resume`` skips finished starts, or continues the evolution from its last generation.
A checkpoint is validated before use: it must be JSON written by sd for the
same spec, data and model files and method, unchanged since (its seal), with
the values it should hold; anything else is refused with a message naming
the file, never silently replaced or trusted.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import optimize
from scipy.stats import qmc

from .._common import atomic_write_text, read_json
from ..errors import SdInputError
from .spec import spec_digest

_PURPOSE = "sd point-fit checkpoint"

#: Forward-difference step of the least-squares Jacobian, in unit coordinates.
JAC_STEP = 0.02


@dataclass(frozen=True)
class Run:
    """Outcome of an optimiser: best unit vector and status."""

    u: np.ndarray
    success: bool
    message: str
    interrupted: bool = False
    resumed: bool = False


def optimise(objective, spec, checkpoint: Path | None = None, resume: bool = False) -> Run:
    """Run the spec's method; on Ctrl-C return the best point seen so far."""
    book = _Checkpoint(checkpoint, spec_digest(spec), spec.method, resume)
    if book.best_u is not None:
        if len(book.best_u) != len(spec.parameters):
            raise book._refuse(f"holds {len(book.best_u)} parameters, the spec "
                               f"{len(spec.parameters)}")
        # the payoff it claims is checked against the model before it is used
        payoff = float(objective.payoff(book.best_u[None, :])[0])
        if not np.isclose(payoff, book.best_payoff, rtol=1e-6, atol=1e-9):
            raise book._refuse(f"says the best payoff is {book.best_payoff:.6g}, but the model "
                               f"gives {payoff:.6g} at its best point")
        objective.best_u, objective.best_payoff = book.best_u, book.best_payoff
    if book.done and book.best_u is not None:
        return Run(book.best_u, True, f"resumed a finished {spec.method} checkpoint",
                   resumed=True)
    driver = {"differential_evolution": _evolve, "least_squares": _least_squares,
              "powell": _powell}[spec.method]
    try:
        run = driver(objective, spec, book)
    except KeyboardInterrupt:
        if objective.best_u is None:
            raise
        book.save(objective)
        return Run(objective.best_u, False, "interrupted (Ctrl-C): best fit so far",
                   interrupted=True)
    book.save(objective, done=True)
    return Run(run.u, run.success, run.message, run.interrupted, resumed=book.resumed)


def starts(spec, n: int) -> np.ndarray:
    """The spec's ``init`` followed by ``n - 1`` Latin-hypercube points (unit cube)."""
    init = np.array([p.to_unit(p.init) for p in spec.parameters])
    if n <= 1:
        return init[None, :]
    lhs = qmc.LatinHypercube(d=len(init), seed=spec.seed).random(n - 1)
    return np.vstack([init, lhs])


# -- drivers -------------------------------------------------------------------
def _evolve(objective, spec, book) -> Run:
    """Differential evolution, checkpointed at every generation: the population (in
    the solver's own unit coordinates, exactly) and the state of its random
    generator, so a resumed run continues the same evolution and ends exactly where
    the uninterrupted run would.

    scipy's solver object is used (rather than ``differential_evolution``) because
    a population passed back through ``init`` is rescaled, which changes its last
    bits and, through them, the rest of the evolution; and because the solver keeps
    one more piece of state between generations, the permutation it shuffles in
    place to pick donors (``_random_population_index``), saved here too.
    """
    from scipy.optimize._differentialevolution import DifferentialEvolutionSolver

    p = len(spec.parameters)
    popsize = max(spec.popsize, 1)
    maxiter = max(0, min(spec.maxiter, spec.max_evals // max(popsize * p, 5) - 1))
    rng = np.random.default_rng(spec.seed)
    state = book.evolution
    done = 0 if state is None else int(state["generation"])
    solver = None

    def payoff(U):  # scipy passes (p, S); we batch the S members
        return objective.payoff(np.asarray(U).T)

    def callback(intermediate_result):
        book.evolution = {"population": solver.population.tolist(),
                          "index": solver._random_population_index.tolist(),
                          "rng": rng.bit_generator.state,
                          "generation": done + int(intermediate_result.nit)}
        book.save(objective)

    solver = DifferentialEvolutionSolver(
        payoff, [(0.0, 1.0)] * p, popsize=popsize, maxiter=max(maxiter - done, 0), rng=rng,
        polish=False, vectorized=True, updating="deferred", tol=1e-8, callback=callback,
        init="latinhypercube", x0=None if state is not None else starts(spec, 1)[0])
    if state is not None:
        if state["population"].shape != solver.population.shape:
            raise book._refuse(f"holds a population of shape {state['population'].shape}, "
                               f"this spec's is {solver.population.shape}")
        if sorted(state["index"]) != list(range(len(solver.population))):
            raise book._refuse("holds a donor permutation that is not one")
        solver.population = state["population"].copy()
        solver.population_energies = np.full(len(solver.population), np.inf)
        solver._random_population_index = np.array(state["index"], dtype=int)
        rng.bit_generator.state = state["rng"]
    with solver:
        res = solver.solve()
    u, message = np.asarray(res.x), f"differential_evolution: {res.message}"
    if spec.polish and objective.best_payoff > 0:
        u = _ls_from(objective, objective.best_u, max_nfev=20)
        message += "; polished by least_squares"
    return Run(objective.best_u if objective.best_u is not None else u, True, message)


def _least_squares(objective, spec, book) -> Run:
    messages = []
    for k, u0 in enumerate(starts(spec, spec.starts)):
        if str(k) in book.finished:
            continue
        _ls_from(objective, u0, max_nfev=max(10, spec.max_evals // (spec.starts * (len(u0) + 1))))
        messages.append(f"start {k}: payoff {objective.best_payoff:.4g}")
        book.finish(k, objective)
    return Run(objective.best_u, True, f"least_squares from {spec.starts} starts; best payoff "
               f"{objective.best_payoff:.6g}")


def _ls_from(objective, u0, max_nfev: int) -> np.ndarray:
    cache: dict[bytes, np.ndarray] = {}

    def fun(u):
        key = np.asarray(u, dtype=float).tobytes()
        if key not in cache:
            cache[key] = objective.residuals(u[None, :])[0]
        return cache[key]

    def jac(u):
        f0 = fun(u)
        # Step inward at the upper bound so every probe stays in the cube.
        h = np.where(u + JAC_STEP <= 1.0, JAC_STEP, -JAC_STEP)
        probes = u[None, :] + np.diag(h)
        return ((objective.residuals(probes) - f0[None, :]) / h[:, None]).T

    res = optimize.least_squares(fun, np.clip(u0, 0, 1), jac=jac, bounds=(0.0, 1.0),
                                 max_nfev=max_nfev, x_scale=1.0)
    return np.asarray(res.x)


def _powell(objective, spec, book) -> Run:
    for k, u0 in enumerate(starts(spec, spec.starts)):
        if str(k) in book.finished:
            continue
        optimize.minimize(lambda u: float(objective.payoff(u[None, :])[0]), np.clip(u0, 0, 1),
                          method="Powell", bounds=[(0.0, 1.0)] * len(u0),
                          options={"maxfev": max(20, spec.max_evals // spec.starts),
                                   "xtol": 1e-3, "ftol": 1e-6})
        book.finish(k, objective)
    return Run(objective.best_u, True, f"Powell from {spec.starts} starts; best payoff "
               f"{objective.best_payoff:.6g}")


# -- checkpoints -----------------------------------------------------------------
class _Checkpoint:
    """Finished starts and the best point, in a JSON file (or nowhere)."""

    def __init__(self, path: Path | None, digest: str, method: str, resume: bool):
        self.path, self.digest, self.method = path, digest, method
        self.finished: dict[str, float] = {}
        self.done = False
        self.resumed = False
        self.evolution = None     # differential evolution: population, generator, generation
        self.best_u, self.best_payoff = None, np.inf
        if path is not None and (Path(path).is_symlink() or Path(path).exists()) \
                and not Path(path).is_file():
            # a folder, pipe or link to a device where the checkpoint goes: neither
            # read (no end) nor replaced (a folder cannot be)
            raise self._refuse("is not a file (a folder, pipe or device)")
        if resume and path is not None and Path(path).is_file():
            self._load()

    def _load(self) -> None:
        from ..model.cache import seal_bytes

        import hmac

        try:
            raw = read_json(self.path)
            body, mac = raw["body"], raw["mac"]
            ok = isinstance(body, dict) and isinstance(mac, str)
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise self._refuse("is not an sd point-fit checkpoint (expected JSON with 'body' "
                               "and 'mac')")
        text = json.dumps(body, sort_keys=True).encode()
        if not hmac.compare_digest(mac, seal_bytes(text, _PURPOSE)):
            raise self._refuse("fails its integrity check: it was changed or replaced after "
                               "sd wrote it")
        if body.get("spec_digest") != self.digest:
            raise self._refuse("was written for another spec, data or model (their hashes "
                               "differ)")
        if body.get("method") != self.method:
            raise self._refuse(f"was written by the method {body.get('method')!r}, not "
                               f"{self.method!r}")
        try:
            self.finished = {str(k): float(v) for k, v in dict(body.get("finished", {})).items()}
            self.done = bool(body.get("done"))
            if body.get("best_u") is not None:
                u = np.asarray(body["best_u"], dtype=float)
                if u.ndim != 1 or not np.all((u >= 0) & (u <= 1)):
                    raise ValueError("best_u outside the unit cube")
                self.best_u, self.best_payoff = u, float(body["best_payoff"])
            if body.get("evolution") is not None:
                self.evolution = _evolution(body["evolution"])
        except (TypeError, ValueError, KeyError) as exc:
            raise self._refuse(f"holds malformed values ({exc})") from None
        self.resumed = True

    def _refuse(self, why: str) -> SdInputError:
        return SdInputError(f"cannot resume: {self.path} {why}. Remove it (or run without "
                            "--resume) to start afresh.")

    def finish(self, k: int, objective) -> None:
        self.finished[str(k)] = float(objective.best_payoff)
        self.save(objective)

    def save(self, objective, done: bool = False) -> None:
        if self.path is None or objective.best_u is None:
            return
        from ..model.cache import seal_bytes

        body = {"spec_digest": self.digest, "method": self.method, "done": done,
                "finished": self.finished, "evolution": self.evolution,
                "best_u": [float(v) for v in objective.best_u],
                "best_payoff": float(objective.best_payoff), "nfev": objective.nfev,
                "best": dict(zip(objective.spec.names,
                                 map(float, objective.to_x(objective.best_u)[0])))}
        mac = seal_bytes(json.dumps(body, sort_keys=True).encode(), _PURPOSE)
        atomic_write_text(self.path, json.dumps({"body": body, "mac": mac}, indent=2) + "\n")


def _evolution(raw) -> dict:
    """A saved evolution, checked: a population in the unit cube and a PCG64 state."""
    pop = np.asarray(raw["population"], dtype=float)
    if pop.ndim != 2 or not np.all((pop >= 0) & (pop <= 1)):
        raise ValueError("the population is not a table of points in the unit cube")
    np.random.default_rng().bit_generator.state = raw["rng"]     # raises if malformed
    generation = int(raw["generation"])
    if generation < 0:
        raise ValueError("negative generation")
    index = [int(i) for i in raw["index"]]
    return {"population": pop, "index": index, "rng": raw["rng"], "generation": generation}
