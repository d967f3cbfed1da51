"""Model checks a modeler runs before trusting a model: a list of findings.

Each finding is one line a modeler can act on. The checks read the ``.mdl``
(equations, units and comments through :mod:`sd.model.equations`, parsed once;
units through :mod:`sd.model.unit_check`; diagram through :mod:`sd.model.sketch`),
never a second copy of the model, and never a translation to Python.
"""
from __future__ import annotations

import re

from dataclasses import dataclass
from pathlib import Path

from .equations import Equations, read_equations
from .sketch import check_sketch
from .source import XMILE_SUFFIXES
from .unit_check import check_units

#: What a comment must contain to count as sourced: a reference or "assumption".
_SOURCED = re.compile(r"\b(S16|BB96|BB98|B00|BS05|B05|AP 1995|Blackman|Samford|Verschoor|"
                      r"CASES\.md|assumption|source)", re.I)


@dataclass(frozen=True)
class Finding:
    """One thing a modeler should fix (``error``) or look at (``warning``).

    Attributes
    ----------
    check : str
        ``units``, ``documentation`` or ``diagram``.
    message : str
        The finding, naming the variable.
    severity : str
        ``error`` fails ``sd check``; ``warning`` does not.
    """

    check: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.check}: {self.message}"


def check_model(path, *, sources: bool = True,
                equations: Equations | None = None) -> list[Finding]:
    """Return findings on units, documentation and the diagram of a model.

    Only PySD's parser is used: a model that PySD cannot build (yet) is still
    checked.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.mdl`` file.
    sources : bool
        Also require every constant's comment to cite a source or say
        "assumption" (the project's rule for its own models).
    equations : Equations, optional
        The model's parsed equations (parsed here when omitted).

    Returns
    -------
    list of Finding
        Units findings first (Vensim's Units Check), then documentation, then
        the diagram.
    """
    eqs = equations if equations is not None else read_equations(path)
    findings = [Finding("units", str(f), f.severity) for f in check_units(eqs)]
    for el in eqs.elements.values():
        if not el.units:
            findings.append(Finding("documentation", f"'{el.name}' has no units"))
        if el.kind != "control" and not el.comment:
            findings.append(Finding("documentation", f"'{el.name}' has no comment (meaning and source)"))
        elif sources and el.kind == "constant" and not _SOURCED.search(el.comment):
            findings.append(Finding("documentation", f"constant '{el.name}': the comment cites no "
                                    "source and does not say 'assumption'"))
    if Path(eqs.path).suffix.lower() in XMILE_SUFFIXES:
        # the diagram checks read Vensim's sketch; an XMILE view is not read
        findings.append(Finding("diagram", "not checked: the diagram checks read Vensim "
                                "sketches, and this is an XMILE file", "warning"))
    else:
        findings += [Finding("diagram", f) for f in check_sketch(eqs.path, eqs)]
    return findings
