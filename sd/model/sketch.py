"""Parse and check the sketch (diagram) section of Vensim ``.mdl`` files.

The sketch section of a Vensim model sits after the equations, between
``\\\\\\---/// Sketch information`` and ``///---\\\\\\``.  Each view starts with a
line ``*View name`` followed by a defaults line (``$192-192-192,...``) and then
one comma-separated line per object:

* ``10,id,name,x,y,w,h,shape,bits,...`` -- a variable (shape 3 = stock,
  8 = auxiliary, 40 = flow attached to a valve); ``bits == 2`` marks a shadow
  (grey) variable,
* ``11,id,0,x,y,w,h,34,...`` -- a valve,
* ``12,id,48,x,y,...`` -- a cloud (other type-12 objects are comments),
* ``1,id,from,to,head,...,22 or 0,...`` -- a connector; field 7 equal to 22
  marks a flow pipe, anything else an information arrow.

:func:`parse_sketch` turns that into frozen dataclasses and
:func:`check_sketch` compares the diagram with the equations, whose
dependencies come from PySD's own Vensim parser.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from .._common import TIME_KEYS
from ..errors import canon
from .equations import norm as _norm
from .reality_syntax import reality_names

__all__ = [
    "SketchVariable",
    "Valve",
    "Cloud",
    "Connector",
    "View",
    "Sketch",
    "parse_sketch",
    "model_dependencies",
    "check_sketch",
]

_SKETCH_START = "\\\\\\---/// Sketch information"
_SKETCH_END = "///---\\\\\\"
_CONTROL = set(TIME_KEYS)
_STOCK_SHAPE = 3
_FLOW_SHAPE = 40


@dataclass(frozen=True)
class SketchVariable:
    """A variable placed in a view.

    Attributes
    ----------
    name : str
        Vensim name as written in the sketch.
    id : int
        Object id, unique within the view.
    x, y : int
        Centre of the object.
    w, h : int
        Half-width and half-height of the object (its label box).
    shape : int
        Vensim shape code: 3 stock, 8 auxiliary/constant, 40 flow label.
    is_shadow : bool
        True for a shadow (grey) copy of a variable defined elsewhere.
    """

    name: str
    id: int
    x: int
    y: int
    w: int
    h: int
    shape: int
    is_shadow: bool


@dataclass(frozen=True)
class Valve:
    """A valve (type 11) through which a flow pipe passes.

    Attributes
    ----------
    id : int
        Object id; the flow variable attached to it has id ``id + 1``.
    x, y : int
        Position of the valve.
    """

    id: int
    x: int
    y: int


@dataclass(frozen=True)
class Cloud:
    """A cloud (type 12, field 48): source or sink of a flow.

    Attributes
    ----------
    id : int
        Object id.
    x, y : int
        Position of the cloud.
    """

    id: int
    x: int
    y: int


@dataclass(frozen=True)
class Connector:
    """A connector (type 1): an information arrow or a piece of flow pipe.

    Attributes
    ----------
    id : int
        Object id.
    from_id, to_id : int
        Ids of the objects it joins (for pipes, ``from_id`` is the valve).
    is_pipe : bool
        True for a flow pipe (field 7 equal to 22).
    head : int
        Field 4: 4 for the arrowhead end of a pipe, 100 for its tail.
    points : tuple of (int, int)
        The points after the last field: for an information arrow its
        curvature handle (the arc passes through it; ``(0, 0)`` means none),
        for a pipe the bends and the point where it meets the stock or cloud.
    polarity : str
        The sign drawn at the arrowhead (field 6 as a character: ``+``,
        ``-``, ...), "" when none.
    """

    id: int
    from_id: int
    to_id: int
    is_pipe: bool = False
    head: int = 0
    points: tuple[tuple[int, int], ...] = ()
    polarity: str = ""


@dataclass(frozen=True)
class View:
    """One view of the sketch.

    Attributes
    ----------
    name : str
        View name (the text after ``*``).
    variables, valves, clouds, connectors : tuple
        Objects of the view, in file order.
    font : str
        Default font of the view (from its ``$`` line), e.g. ``Times New Roman``.
    font_size : int
        Default font size of the view.
    arrow_color : tuple of int
        Default RGB colour of information arrows.
    """

    name: str
    variables: tuple[SketchVariable, ...] = ()
    valves: tuple[Valve, ...] = ()
    clouds: tuple[Cloud, ...] = ()
    connectors: tuple[Connector, ...] = ()
    font: str = "Times New Roman"
    font_size: int = 12
    arrow_color: tuple[int, int, int] = (0, 0, 255)

    def by_id(self) -> dict[int, object]:
        """Return every object of the view keyed by id.

        Returns
        -------
        dict of int to object
            Variables, valves, clouds and connectors by their id.
        """
        out: dict[int, object] = {}
        for group in (self.connectors, self.clouds, self.valves, self.variables):
            for obj in group:
                out[obj.id] = obj
        return out


@dataclass(frozen=True)
class Sketch:
    """All views of a model's sketch.

    Attributes
    ----------
    views : tuple of View
        Views in file order.
    """

    views: tuple[View, ...] = field(default_factory=tuple)

    def placements(self, name: str) -> list[tuple[View, SketchVariable]]:
        """Return every placement (real or shadow) of a variable.

        Parameters
        ----------
        name : str
            Vensim name, compared after normalisation (case, spaces, underscores).

        Returns
        -------
        list of (View, SketchVariable)
        """
        key = _norm(name)
        return [(v, s) for v in self.views for s in v.variables if _norm(s.name) == key]



def _int(text: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        return 0


_POINT = re.compile(r"\((-?\d+),(-?\d+)\)")
_COLOR = re.compile(r"^(\d+)-(\d+)-(\d+)$")


def _points(line: str) -> tuple[tuple[int, int], ...]:
    """The ``n|(x,y)|...`` tail of a connector line."""
    tail = line[line.rfind(",") + 1:] if "|(" not in line else line[line.find("|(") - 1:]
    return tuple((int(x), int(y)) for x, y in _POINT.findall(tail))


def _view_style(line: str) -> dict:
    """Font and arrow colour from a view's ``$`` defaults line."""
    parts = line[1:].split("|")
    style: dict = {}
    head = parts[0].split(",")
    if len(head) >= 3 and head[2].strip():
        style["font"] = head[2].strip()
    if len(parts) > 1 and parts[1].strip().isdigit():
        style["font_size"] = int(parts[1])
    if len(parts) > 5:
        match = _COLOR.match(parts[5].strip())
        if match:
            style["arrow_color"] = tuple(int(c) for c in match.groups())
    return style


def _sketch_lines(path: str | Path) -> list[str]:
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    start = text.find(_SKETCH_START)
    if start < 0:
        return []
    end = text.rfind(_SKETCH_END)
    body = text[start:end if end > start else len(text)]
    return body.splitlines()


def parse_sketch(path: str | Path) -> Sketch:
    """Parse the sketch section of a Vensim ``.mdl`` file.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.mdl`` file.

    Returns
    -------
    Sketch
        The views with their variables, valves, clouds and connectors.  A model
        without a sketch gives a ``Sketch`` with no views.
    """
    views: list[View] = []
    current: dict | None = None

    def close() -> None:
        if current is not None:
            views.append(View(current["name"], tuple(current["variables"]),
                              tuple(current["valves"]), tuple(current["clouds"]),
                              tuple(current["connectors"]), **current["style"]))

    for line in _sketch_lines(path):
        if line.startswith("*"):
            close()
            current = {"name": line[1:].strip(), "variables": [], "valves": [],
                       "clouds": [], "connectors": [], "style": {}}
            continue
        if current is not None and line.startswith("$"):
            current["style"] = _view_style(line)
            continue
        if current is None or not re.match(r"^(1|10|11|12),\d+,", line):
            continue
        fields = next(csv.reader([line], skipinitialspace=False))
        kind, oid = fields[0], _int(fields[1])
        if kind == "10" and len(fields) >= 9:
            current["variables"].append(SketchVariable(
                name=fields[2].strip().strip('"'), id=oid, x=_int(fields[3]), y=_int(fields[4]),
                w=_int(fields[5]), h=_int(fields[6]), shape=_int(fields[7]),
                is_shadow=_int(fields[8]) == 2))
        elif kind == "11" and len(fields) >= 5:
            current["valves"].append(Valve(oid, _int(fields[3]), _int(fields[4])))
        elif kind == "12" and len(fields) >= 5 and fields[2] == "48":
            current["clouds"].append(Cloud(oid, _int(fields[3]), _int(fields[4])))
        elif kind == "1" and len(fields) >= 8:
            code = _int(fields[6])
            current["connectors"].append(Connector(
                oid, _int(fields[2]), _int(fields[3]), is_pipe=fields[7] == "22",
                head=_int(fields[4]), points=_points(line),
                polarity=chr(code) if 32 < code < 127 else ""))
    close()
    return Sketch(tuple(views))


def model_dependencies(path: str | Path, equations=None
                       ) -> tuple[dict[str, str], dict[str, set[str]], dict[str, set[str]]]:
    """Read the equations of a Vensim model with PySD's parser.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.mdl`` file (read only; nothing is written next to it).
    equations : sd.model.equations.Equations, optional
        The model already parsed (parsed here when omitted).

    Returns
    -------
    names : dict of str to str
        Normalised name to Vensim name of every model variable (control
        variables excluded; ``time`` maps to ``Time``).
    deps : dict of str to set of str
        Normalised name to the normalised names its equation uses.  For a
        stock, only the names used outside its flows (e.g. in the initial
        value): flows are drawn as pipes, not arrows.
    flows : dict of str to set of str
        Normalised stock name to the normalised names of its flows.
    """
    from pysd.translators.structures import abstract_expressions as ae

    from .equations import read_equations, references

    eqs = equations if equations is not None else read_equations(path)
    names: dict[str, str] = {"time": "Time"}
    deps: dict[str, set[str]] = {}
    for key, el in eqs.elements.items():
        if key in _CONTROL:
            continue
        names[key] = el.name
        refs: set[str] = set()
        for ast in el.asts:
            refs |= references(ast.initial if isinstance(ast, ae.IntegStructure) else ast)
        deps[key] = refs
    for key in deps:
        deps[key] = {r for r in deps[key] if r in names and r not in _CONTROL}
    flows = {stock: {f for f, _ in pairs if f in names} for stock, pairs in eqs.flows.items()}
    return names, deps, flows


def _overlap(a: SketchVariable, b: SketchVariable) -> bool:
    return (abs(a.x - b.x) < a.w + b.w) and (abs(a.y - b.y) < a.h + b.h)


def _label(view: "View", obj_id: int) -> str:
    obj = view.by_id().get(obj_id)
    return obj.name if isinstance(obj, SketchVariable) else str(obj_id)


def check_sketch(path: str | Path, equations=None) -> list[str]:
    """Check that a model's diagram matches its equations and is readable.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.mdl`` file.
    equations : sd.model.equations.Equations, optional
        The model already parsed (parsed here when omitted).

    Returns
    -------
    list of str
        Human-readable findings, empty when the sketch is clean.  Reported:
        a variable of the equations not placed as a real (non-shadow) variable
        in any view, or placed as real more than once; a flow (a rate of an
        INTEG) not attached to a valve; a valve whose pipe does not reach a
        stock or cloud at both ends, or reaches a stock that does not use the
        flow; a connector to an unknown object; a dependency with no arrow from
        the source (or its shadow) to the target in the target's view; an
        arrow with no matching dependency; overlapping label boxes in a view.
    """
    sketch = parse_sketch(path)
    names, deps, flows = model_dependencies(path, equations)
    # Vensim's Reality Check equations are variables of Vensim's model too: placed
    # (often on a view of their own) with arrows from what they test, never required
    checks = reality_names(path)
    flow_names = set().union(*flows.values()) if flows else set()
    findings: list[str] = []

    # placements
    real: dict[str, list[tuple[View, SketchVariable]]] = {}
    for view in sketch.views:
        for var in view.variables:
            key = _norm(var.name)
            if key not in names and canon(var.name) in checks:
                continue
            if key not in names:
                findings.append(f"view '{view.name}': '{var.name}' is not a variable of the equations")
                continue
            if not var.is_shadow:
                real.setdefault(key, []).append((view, var))
    for key, vname in sorted(names.items()):
        if key == "time":
            continue
        places = real.get(key, [])
        if not places:
            findings.append(f"variable '{vname}' is not placed as a real variable in any view")
        elif len(places) > 1:
            where = ", ".join(f"'{v.name}'" for v, _ in places)
            findings.append(f"variable '{vname}' is placed as a real variable more than once ({where})")

    # valves, flows and pipes
    for view in sketch.views:
        objs = view.by_id()
        stock_ids = {v.id: _norm(v.name) for v in view.variables if v.shape == _STOCK_SHAPE}
        cloud_ids = {c.id for c in view.clouds}
        valve_ids = {v.id for v in view.valves}
        for var in view.variables:
            key = _norm(var.name)
            if key in flow_names and not var.is_shadow and (var.id - 1) not in valve_ids:
                findings.append(f"view '{view.name}': flow '{var.name}' is not attached to a valve")
        for valve in view.valves:
            flow_var = objs.get(valve.id + 1)
            flow_key = _norm(flow_var.name) if isinstance(flow_var, SketchVariable) else None
            label = flow_var.name if flow_key else f"valve {valve.id}"
            pipes = [c for c in view.connectors if c.is_pipe and c.from_id == valve.id]
            ends = [c.to_id for c in pipes if c.to_id in stock_ids or c.to_id in cloud_ids]
            if len(ends) != 2:
                findings.append(f"view '{view.name}': pipe of '{label}' does not connect a stock or cloud at both ends")
            for end in ends:
                if end in stock_ids and flow_key and flow_key not in flows.get(stock_ids[end], set()):
                    findings.append(f"view '{view.name}': pipe of '{label}' reaches stock "
                                    f"'{names.get(stock_ids[end], stock_ids[end])}', whose equation does not use it")
        for conn in view.connectors:
            for end in (conn.from_id, conn.to_id):
                if end not in objs:
                    findings.append(f"view '{view.name}': connector {conn.id} refers to unknown object {end}")

    # arrows versus dependencies
    def endpoint_names(view: View) -> dict[int, tuple[str, bool]]:
        out: dict[int, tuple[str, bool]] = {}
        for var in view.variables:
            out[var.id] = (_norm(var.name), var.is_shadow)
        for valve in view.valves:
            var = next((v for v in view.variables if v.id == valve.id + 1), None)
            if var is not None:
                out[valve.id] = (_norm(var.name), False)
        return out

    arrows: dict[str, set[tuple[str, str]]] = {}
    for view in sketch.views:
        ends = endpoint_names(view)
        found = set()
        for conn in view.connectors:
            if conn.is_pipe or conn.from_id not in ends or conn.to_id not in ends:
                continue
            src, _ = ends[conn.from_id]
            dst, dst_shadow = ends[conn.to_id]
            found.add((src, dst))
            check = checks.get(canon(_label(view, conn.to_id)))
            if dst not in names and check is not None:
                if canon(_label(view, conn.from_id)) not in check:
                    findings.append(f"view '{view.name}': arrow from "
                                    f"'{_label(view, conn.from_id)}' to the reality check "
                                    f"'{_label(view, conn.to_id)}', which does not mention it")
                continue
            if src not in names or dst not in names:
                continue
            if dst_shadow:
                findings.append(f"view '{view.name}': arrow from '{names[src]}' points to the shadow of '{names[dst]}'")
            elif src not in deps.get(dst, set()):
                findings.append(f"view '{view.name}': arrow from '{names[src]}' to '{names[dst]}' "
                                f"has no matching dependency")
        arrows[view.name] = found
    for dst, srcs in sorted(deps.items()):
        for view, _ in real.get(dst, [])[:1]:
            for src in sorted(srcs):
                if (src, dst) not in arrows[view.name]:
                    findings.append(f"view '{view.name}': no arrow from '{names[src]}' to '{names[dst]}' "
                                    f"(dependency in its equation)")

    # overlapping labels
    for view in sketch.views:
        vs = view.variables
        for i, a in enumerate(vs):
            for b in vs[i + 1:]:
                if _overlap(a, b):
                    findings.append(f"view '{view.name}': labels of '{a.name}' and '{b.name}' overlap")
    return findings
