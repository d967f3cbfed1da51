"""Vensim that PySD's builder lacks, added by ``sd`` to the copy it builds from.

:func:`adapt` changes the abstract model handed to PySD's ``ModelBuilder``
(a deep copy; the model's own parse is never changed), before the generated
code is verified (:mod:`sd.model.verify`). Every change adds only structures
PySD's builder already knows, so the code it emits has the shapes the
verifier accepts:

* macros: every call expanded into copies of the macro's variables
  (:mod:`sd.model.macros`), as Vensim does; PySD's own macro objects fail
  on calls in subscripted equations, on macros named like Python built-ins
  (``ROUND``) and on macros that use ``TIME STEP`` or DELAY FIXED.
* ``DT`` in XMILE equations (Stella's name for the time step) where the
  model has no variable ``DT``: a reference to ``TIME STEP``.
* ``VECTOR LOOKUP(vec[e], x, xmin, xmax, mode)`` and ``VECTOR ELM MAP(vec[e],
  offset)``: the vector argument names one element ``e``, which PySD would
  reduce to a number; it is rewritten to the whole range with PySD's ``!``
  (``vec[Range!]``, as in ``SUM``) and the position of ``e`` is passed along,
  so PySD builds a call of :mod:`sd.model.pysd_functions` with the vector's
  dimension as its axis. :func:`install` registers the two functions with
  PySD's builder (``functionspace``) and its functions module, once per
  process.
"""
from __future__ import annotations

import dataclasses

from ..errors import SdInputError
from . import macros
from .structure import walk

#: Functions sd adds: PySD name -> (builder template, sd runtime function).
FUNCTIONS = {
    "vector_lookup": ("sd_vector_lookup(%(0)s, %(1)s, %(2)s, %(3)s, %(4)s, %(5)s, "
                      "dim=%(axis)s)", "sd_vector_lookup"),
    "vector_elm_map": ("sd_vector_elm_map(%(0)s, %(1)s, %(2)s, dim=%(axis)s)",
                       "sd_vector_elm_map"),
}
#: VECTOR LOOKUP modes implemented (0: a normal lookup; 3: extrapolating).
LOOKUP_MODES = (0, 3)


#: Lower-case names PySD's builder writes at a generated module's top level
#: that its namer does not reserve: a variable called ``Component`` became
#: the function ``component``, replacing the builder's decorator object, and
#: the translation could not be imported.
MODULE_NAMES = ("component",)


def reserve_names():
    """PySD's namer with :data:`MODULE_NAMES` reserved: every user of its Python
    names (the builder, the variable table) must call this, never import it
    itself. Imported only when needed: its module imports scipy (~0.5 s),
    which a load that reuses the previous description never pays."""
    from pysd.builders.python.namespace import NamespaceManager

    NamespaceManager._reserved_words.update(MODULE_NAMES)
    return NamespaceManager


def install() -> None:
    """Register :data:`FUNCTIONS` with PySD's builder and functions module."""
    from pysd.builders.python import python_functions
    from pysd.py_backend import functions

    from .pysd_functions import RUNTIME

    for name, (template, runtime) in FUNCTIONS.items():
        python_functions.functionspace.setdefault(
            name, (template, (("functions", runtime),)))
        if getattr(functions, runtime, None) is not RUNTIME[runtime]:
            setattr(functions, runtime, RUNTIME[runtime])


def adapt(abstract, where: str = "") -> None:
    """Apply the changes of the module docstring to ``abstract`` in place.

    Raises :class:`SdInputError` (naming ``where`` and the variable) for a
    vector function whose first argument is not one element of a range."""
    macros.inline(abstract, where)
    for section in abstract.sections:
        _dt(section)
        _vector_functions(section, where)


def _clean(name: str) -> str:
    return name.lower().replace(" ", "_")


def _references(section):
    """Every ReferenceStructure of a section (calls' function names included)."""
    from pysd.translators.structures import abstract_expressions as ae

    for el in section.elements:
        for comp in el.components:
            for node in walk(comp.ast):
                if isinstance(node, ae.ReferenceStructure):
                    yield node


def _dt(section) -> None:
    if "dt" in {_clean(el.name) for el in section.elements} | \
            {_clean(p) for p in section.params}:
        return
    for node in _references(section):
        if node.reference == "dt":
            object.__setattr__(node, "reference", "time_step")


# -- VECTOR LOOKUP, VECTOR ELM MAP -----------------------------------------------------
def _ranges(section) -> dict:
    """Range name (clean) -> (name as written, element list), copies resolved."""
    raw = {_clean(r.name): r for r in section.subscripts}
    out = {}
    for key, r in raw.items():
        elements, seen = r.subscripts, {key}
        while isinstance(elements, str) and _clean(elements) in raw and \
                _clean(elements) not in seen:
            seen.add(_clean(elements))
            elements = raw[_clean(elements)].subscripts
        if isinstance(elements, list):
            out[key] = (r.name, list(elements))
    return out


def _vector_range(section, ranges, variable: str, position: int, element: str):
    """The range a vector argument runs along: the one the variable is
    defined over at ``position``, else the largest range holding ``element``."""
    for el in section.elements:
        if _clean(el.name) != _clean(variable):
            continue
        for comp in el.components:
            subs = comp.subscripts[0] if comp.subscripts else []
            if len(subs) > position and _clean(subs[position]) in ranges:
                name, elements = ranges[_clean(subs[position])]
                if element in elements or _clean(element) == _clean(name):
                    return name, elements
    holding = [(len(els), name, els) for name, els in ranges.values() if element in els]
    if not holding:
        return None
    _, name, elements = max(holding)
    return name, elements


def _vector_functions(section, where: str) -> None:
    from pysd.translators.structures import abstract_expressions as ae

    ranges = _ranges(section)
    done: set = set()       # a structure may hold one call twice (SMOOTH's input and init)
    for el in section.elements:
        for comp in el.components:
            for node in walk(comp.ast):
                if not isinstance(node, ae.CallStructure) or \
                        node.function.reference not in FUNCTIONS or id(node) in done:
                    continue
                done.add(id(node))
                fname = node.function.reference.upper().replace("_", " ")
                args = list(node.arguments)
                vec = args[0] if args else None
                subs = list(vec.subscripts.subscripts) if isinstance(vec, ae.ReferenceStructure) \
                    and vec.subscripts is not None else []
                found = _vector_range(section, ranges, vec.reference, len(subs) - 1, subs[-1]) \
                    if subs else None
                if found is None:
                    raise SdInputError(
                        f"{where}: variable {el.name!r}: the first argument of {fname} must be "
                        "a subscripted variable written with one element of its vector range "
                        "(as in VECTOR LOOKUP(table[first], ...)).")
                name, elements = found
                base = elements.index(subs[-1]) if subs[-1] in elements else 0
                whole = dataclasses.replace(
                    vec, subscripts=ae.SubscriptsReferenceStructure(list(subs[:-1]) + [name + "!"]))
                if node.function.reference == "vector_lookup":
                    literal = len(args) == 5 and isinstance(args[4], (int, float))
                    if len(args) != 5 or (literal and args[4] not in LOOKUP_MODES):
                        raise SdInputError(
                            f"{where}: variable {el.name!r}: VECTOR LOOKUP with mode "
                            f"{args[4] if literal else '?'}: modes 0 (a lookup) and 3 "
                            "(extrapolating) are supported.")
                    new = [whole, *args[1:5], base]
                else:
                    if len(args) != 2:
                        raise SdInputError(f"{where}: variable {el.name!r}: VECTOR ELM MAP takes "
                                           "two arguments (vector element, offset).")
                    new = [whole, args[1], base]
                object.__setattr__(node, "arguments", tuple(new))
