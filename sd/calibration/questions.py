"""The questions a set-valued calibration answers: the spec's ``[explain]`` table.

Keys (paths relative to the spec):

``variable``, ``window``
    The outcome the questions are about: the mean of ``variable`` over
    ``window`` (e.g. the late propane share, 1996-2000).
``scenarios``
    Scenario file the names below come from.
``counterfactuals = [...]``
    Each a question "does this counterfactual change the outcome?".
``causes = [...]``
    Candidate causes, each a scenario that *removes* one cause. They are
    compared with a full factorial design (every subset removed together, so
    ``2^k`` cells) and an order-independent attribution: the Shapley value of
    each cause's removal on the outcome, per member of the set.
``prevents = 0.5`` | ``threshold = 0.15`` | ``effect = 0.05``
    What "it changes the outcome" means (one of them; default
    ``prevents = 0.5``): the counterfactual removes at least this fraction of
    the member's own fall from its peak (before the window) to the window; or
    keeps the outcome at or above ``threshold``; or moves it by at least
    ``effect`` (signed).
``[[explain.mediator]]`` ``variable = "Cooperation"``, ``cause = "no_fuel_shock"``
    A mediator question: does removing the cause still change the outcome
    when ``variable`` is held on the member's reference path (its run with the
    cause present)? Held so, only the cause's direct route is left open.
``observe = [...]``
    Variables whose observation could settle the questions (default: the
    stocks and the variables of the documented outcomes); see :mod:`.data_value`.
``extra``
    ``[explain.extra.NAME]`` tables of constants, as further counterfactuals.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from .._common import known_keys, number, time_text
from ..errors import SdInputError
from .counterfactuals import cases

KEYS = ("variable", "window", "scenarios", "counterfactuals", "causes", "prevents", "threshold",
        "effect", "mediator", "observe", "extra")
#: At most this many causes in the factorial design (2^k cells per member).
MAX_CAUSES = 6


@dataclass(frozen=True)
class Cell:
    """One counterfactual run per member."""

    name: str
    constants: dict
    description: str = ""
    causes: tuple = ()         # the causes removed (factorial cells)
    forced: str = ""           # variable held on the member's reference path


@dataclass(frozen=True)
class Questions:
    """The checked ``[explain]`` table.

    Attributes
    ----------
    variable : str
    window : (float, float)
    rule : str
        ``"prevents"``, ``"threshold"`` or ``"effect"``.
    value : float
        The rule's number.
    counterfactuals : tuple of str
        Names of the cells asked about one by one.
    causes : tuple of str
    cells : tuple of Cell
        Every distinct run per member (factorial cells included).
    mediators : tuple of (str, str)
        (variable held, cause).
    observe : tuple of str
    """

    variable: str
    window: tuple
    rule: str
    value: float
    counterfactuals: tuple
    causes: tuple
    cells: tuple
    mediators: tuple = ()
    observe: tuple = field(default_factory=tuple)

    @property
    def direction(self) -> float:
        """+1 when the questions look for a higher outcome, -1 for a lower one."""
        return -1.0 if self.rule == "effect" and self.value < 0 else 1.0

    def cell(self, name: str) -> Cell:
        return next(c for c in self.cells if c.name == name)

    def statement(self, name: str) -> str:
        """The question asked of cell ``name``, in words."""
        w = f"{time_text(self.window[0])}-{time_text(self.window[1])}"
        c = self.cell(name)
        what = name if not c.forced else f"{c.causes[0]} with {c.forced} held on its reference path"
        if self.rule == "threshold":
            return f"{what} keeps {self.variable} at or above {self.value:g} over {w}"
        if self.rule == "effect":
            how = "raises" if self.value > 0 else "lowers"
            return f"{what} {how} {self.variable} over {w} by at least {abs(self.value):g}"
        return (f"{what} prevents the fall of {self.variable}: removes at least "
                f"{self.value:.0%} of its fall from the peak to {w}")


def check(model, cfg: dict, spec_path: Path, targets) -> Questions | None:
    """Check a spec's ``[explain]`` table against ``model``; None when absent."""
    if not cfg:
        return None
    where = f"{spec_path}: [explain]"
    known_keys(cfg, KEYS, where)
    variable = model.variable(str(cfg.get("variable", "")), what="variable",
                              where=f" ([explain] variable in {spec_path.name})").name
    window = _window(cfg.get("window"), where)
    from ..model.timing import settings

    s = settings(model)
    if window[0] < s.initial_time - 1e-9 or window[1] > s.final_time + 1e-9:
        raise SdInputError(f"{where} window [{window[0]:g}, {window[1]:g}] is outside the run "
                           f"({s.initial_time:g}-{s.final_time:g}).")
    rule, value = _rule(cfg, where)
    listed = cases(model, cfg, spec_path)
    causes = cases(model, cfg, spec_path, key="causes")
    if len(causes) > MAX_CAUSES:
        raise SdInputError(f"{where} causes: {len(causes)} causes make {2 ** len(causes)} runs "
                           f"per member; compare at most {MAX_CAUSES}.")
    cells = {c["name"]: Cell(c["name"], c["constants"], c["description"], (c["name"],))
             for c in listed}
    for k in range(1, len(causes) + 1):
        for combo in combinations(causes, k):
            cell = _merge(combo, where)
            if cell.name not in cells or k == 1:
                cells[cell.name] = cell
    mediators = []
    for i, m in enumerate(_mediator_tables(cfg, where)):
        held = model.variable(str(m.get("variable", "")), what="variable",
                              kinds=("stock", "flow", "auxiliary"),
                              where=f" ([[explain.mediator]] {i + 1} in {spec_path.name})").name
        if model.variables[held].subscripts:
            raise SdInputError(f"{where} mediator {i + 1}: {held!r} is subscripted; only a "
                               "variable without subscripts can be held on its path.")
        cause = str(m.get("cause", ""))
        if cause not in cells:
            raise SdInputError(f"{where} mediator {i + 1}: cause {cause!r} is not one of the "
                               f"counterfactuals or causes ({', '.join(cells)}).")
        base = cells[cause]
        name = f"{cause} | {held} held"
        cells[name] = Cell(name, base.constants, base.description, (cause,), forced=held)
        mediators.append((held, cause))
    observe = tuple(model.variable(str(v), what="variable", kinds=("stock", "flow", "auxiliary"),
                                   where=f" ([explain] observe in {spec_path.name})").name
                    for v in _list(cfg.get("observe", []), f"{where} observe"))
    for name in (variable, *observe):
        if model.variables[name].subscripts:
            raise SdInputError(f"{where}: {name!r} is subscripted; questions and candidate "
                               "observations need variables without subscripts.")
    if not observe:
        observe = tuple(dict.fromkeys([variable] + [t.variable for t in targets] + [
            v.name for v in model.variables.values()
            if v.kind == "stock" and not v.subscripts]))
    return Questions(variable, window, rule, value, tuple(c["name"] for c in listed),
                     tuple(c["name"] for c in causes), tuple(cells.values()), tuple(mediators),
                     observe)


def _merge(combo, where: str) -> Cell:
    """The factorial cell removing every cause of ``combo`` together."""
    constants: dict = {}
    for c in combo:
        for k, v in c["constants"].items():
            if k in constants and constants[k] != v:
                raise SdInputError(f"{where} causes: {combo[0]['name']!r} and {c['name']!r} set "
                                   f"{k!r} to different values; causes must remove different "
                                   "mechanisms.")
            constants[k] = v
    name = " + ".join(c["name"] for c in combo)
    return Cell(name, constants, "; ".join(c["description"] for c in combo if c["description"]),
                tuple(c["name"] for c in combo))


def _window(value, where: str) -> tuple:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise SdInputError(f"{where} window must be [start, end], e.g. [1996, 2000].")
    lo, hi = (number(v, f"{where} window") for v in value)
    if lo > hi:
        raise SdInputError(f"{where} window must be [start, end], e.g. [1996, 2000].")
    return lo, hi


def _rule(cfg: dict, where: str) -> tuple[str, float]:
    given = [k for k in ("prevents", "threshold", "effect") if k in cfg]
    if len(given) > 1:
        raise SdInputError(f"{where}: give one of prevents, threshold, effect (not "
                           f"{' and '.join(given)}).")
    rule = given[0] if given else "prevents"
    value = number(cfg.get(rule, 0.5), f"{where} {rule}")
    if rule == "prevents" and not 0 < value <= 1:
        raise SdInputError(f"{where} prevents = {value:g} must be a fraction of the fall in "
                           "(0, 1].")
    if rule == "effect" and value == 0:
        raise SdInputError(f"{where} effect must not be 0 (the smallest change that counts).")
    return rule, value


def _mediator_tables(cfg: dict, where: str) -> list:
    raw = cfg.get("mediator", [])
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(m, dict) for m in raw):
        raise SdInputError(f"{where} mediator must be tables [[explain.mediator]] with "
                           "variable and cause.")
    for i, m in enumerate(raw):
        known_keys(m, ("variable", "cause"), f"{where} mediator {i + 1}")
    return raw


def _list(value, where: str) -> list:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise SdInputError(f"{where} must be a list of names.")
    return list(value)
