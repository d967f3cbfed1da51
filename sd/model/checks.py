"""Model checks a modeler runs before trusting a model: a list of findings.

Each finding is one line a modeler can act on. The checks read the ``.mdl``
(diagram through :mod:`sd.model.sketch`, variable table through :mod:`sd.model`),
never a second copy of the model.
"""
from __future__ import annotations

import re

from .model import Model
from .sketch import check_sketch

#: What a comment must contain to count as sourced: a reference or "assumption".
_SOURCED = re.compile(r"\b(S16|BB96|BB98|B00|BS05|B05|AP 1995|Blackman|Samford|Verschoor|"
                      r"CASES\.md|assumption|source)", re.I)


def check_model(model: Model, *, sources: bool = True) -> list[str]:
    """Return findings on documentation, units and the diagram of ``model``.

    Parameters
    ----------
    model : Model
        From :func:`sd.model.load`.
    sources : bool
        Also require every constant's comment to cite a source or say
        "assumption" (the project's rule for its own models).
    """
    findings = []
    for var in model.variables.values():
        if not var.units:
            findings.append(f"'{var.name}' has no units")
        if var.kind != "control" and not var.comment:
            findings.append(f"'{var.name}' has no comment (meaning and source)")
        elif sources and var.kind == "constant" and not _SOURCED.search(var.comment):
            findings.append(f"constant '{var.name}': the comment cites no source and does not say 'assumption'")
    findings += [f"diagram: {f}" for f in check_sketch(model.path)]
    return findings
