"""Errors that `sd` reports to the user without a traceback.

Every error raised for bad *input* (a file, a name, a value the user gave) is a
:class:`SdInputError`; the CLI turns it into a one-paragraph message and exit
status 2. Anything else is a bug or an environment failure (exit status 1).
"""
from __future__ import annotations

import difflib
from typing import Iterable


class SdInputError(Exception):
    """Bad input: names the input, says what was expected and how to fix it."""


class SdRuntimeError(Exception):
    """A failure that is not the user's input (e.g. a simulation that diverged)."""


def suggest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Return ``" Did you mean 'a', 'b'?"`` for the closest choices, or ``""``.

    Matching is case- and separator-insensitive, as Vensim names are.
    """
    choices = list(choices)
    canon = {_canon(c): c for c in choices}
    hits = difflib.get_close_matches(_canon(name), list(canon), n=n, cutoff=0.6)
    if not hits:
        return ""
    return " Did you mean " + ", ".join(repr(canon[h]) for h in hits) + "?"


def _canon(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


def number(value, where: str, *, strings: bool = False) -> float:
    """``value`` as a finite float, or :class:`SdInputError` naming ``where``.

    Numbers (not booleans) are accepted; text such as ``"3.5"`` only with
    ``strings=True`` (values read from ``.cin``, CSV or ``--set``, not TOML).
    """
    import math

    ok_types = (int, float, str) if strings else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types):
        raise SdInputError(f"{where}: expected a number, got {value!r}.")
    try:
        result = float(value)
    except ValueError:
        raise SdInputError(f"{where}: expected a number, got {value!r}.") from None
    if not math.isfinite(result):
        raise SdInputError(f"{where}: expected a finite number, got {value!r}.")
    return result
