"""What every part of the engine shares: the refusal and the name keys (a leaf module)."""
from __future__ import annotations

from .._common import TIME_KEYS


class UnsupportedModel(Exception):
    """The fast engine cannot run this model; callers fall back to PySD.

    The message names the Vensim construct and the variable that uses it.
    """


#: Vensim control variables, by the clean name PySD uses in ASTs -> their
#: index in the engine's control vector.
CONTROL = {key: i for i, key in enumerate(TIME_KEYS)}


def clean(name: str) -> str:
    """PySD's case/space-insensitive key for a Vensim name (ASTs use it)."""
    return name.lower().replace(" ", "_")
