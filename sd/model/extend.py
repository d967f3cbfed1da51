"""Vensim that PySD's builder lacks, added by ``sd`` to the copy it builds from.

:func:`adapt` changes the abstract model handed to PySD's ``ModelBuilder``
(a deep copy; the model's own parse is never changed), before the generated
code is verified (:mod:`sd.model.verify`). Every change adds only structures
PySD's builder already knows, so the code it emits has the shapes the
verifier accepts:

* the control variables inside a macro: Vensim macros may use ``TIME STEP``
  (noise and delay formulations: ``SQRT(TIME STEP$ / correlation time)``),
  ``INITIAL TIME``, ``FINAL TIME`` and ``SAVEPER``; PySD's macro module does
  not define them (``KeyError: 'time_step'``; DELAY FIXED needs TIME STEP
  too). The main model's control elements are copied into every macro, where
  each is built as
  ``__data["time"].time_step()`` on the clock the macro shares with its
  caller.
"""
from __future__ import annotations

import copy

#: PySD's clean names of the control variables.
_CONTROLS = ("initial_time", "final_time", "time_step", "saveper")


def adapt(abstract) -> None:
    """Apply the changes of the module docstring to ``abstract`` in place."""
    _controls_in_macros(abstract)


def _clean(name: str) -> str:
    return name.lower().replace(" ", "_")


def _controls_in_macros(abstract) -> None:
    main = abstract.sections[0]
    controls = {_clean(el.name): el for el in main.elements if _clean(el.name) in _CONTROLS}
    for section in abstract.sections[1:]:
        own = {_clean(el.name) for el in section.elements} | {_clean(p) for p in section.params}
        for name in _CONTROLS:
            if name not in own and name in controls:
                section.elements.append(copy.deepcopy(controls[name]))
