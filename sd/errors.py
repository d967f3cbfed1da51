"""Errors that `sd` reports to the user without a traceback, and name matching.

Every error raised for bad *input* (a file, a name, a value the user gave) is a
:class:`SdInputError`; the CLI turns it into a one-paragraph message and exit
status 2. A simulation that fails (NaN, infinity, a division by zero) is a
:class:`SdRuntimeError` (exit status 1). Anything else is a bug.

Names are matched as Vensim matches them (:func:`canon`), here because the
same rule decides both "is this the variable?" and "which name was meant?"
(:func:`suggest`).
"""
from __future__ import annotations

import difflib
import unicodedata
from typing import Iterable


class SdInputError(Exception):
    """Bad input: names the input, says what was expected and how to fix it."""


class SdRuntimeError(Exception):
    """A failure that is not the user's input (e.g. a simulation that diverged)."""


def canon(name: str) -> str:
    """A name as Vensim compares names: case, repeated blanks and ``_`` ignored."""
    return " ".join(str(name).replace("_", " ").lower().split())


def suggest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Return ``" Did you mean 'a', 'b'?"`` for the closest choices, or ``""``."""
    by_canon = {canon(c): c for c in choices}
    hits = difflib.get_close_matches(canon(name), list(by_canon), n=n, cutoff=0.6)
    if not hits:
        return ""
    return " Did you mean " + ", ".join(repr(by_canon[h]) for h in hits) + "?"


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: names read from files reach
    messages and progress lines, and a control character in one (ESC starts a
    terminal command, NUL, U+2028, a bidi override) is shown escaped, as
    ``repr`` shows it, instead of acting on the terminal. Newlines and tabs
    stay."""
    return "".join(c if c in "\n\t" or unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp")
                   else repr(c)[1:-1] for c in str(text))
