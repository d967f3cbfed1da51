"""A model's equations as entries, found the way PySD's grammar finds them.

PySD splits the text of a model section into *entries* (``equation ~ units ~
comment |``) and group headers (``***...*** ~ text |``) with a parsing
expression grammar (``section_elements.peg``)::

    entry   = element "~" element "~" doc ("~" element)? "|"
    section = element "~" element "|"
    element = (escape_group / [^~|])*          escape_group = '"' ('\\"' / [^"])* '"'
    doc     = [^~|]*

Python's regular expressions with possessive quantifiers (``*+``, ``?+``)
match exactly what this grammar matches: a PEG commits to the first
alternative that succeeds and never gives back what a repetition consumed,
which is what a possessive quantifier does (an unclosed quote is then an
ordinary character, as in the grammar). So one compiled pattern finds the
entries without PySD (``tests/test_startup.py`` checks it against PySD's own
split of every test model). Two uses:

* :mod:`sd.model.reparse` parses each entry separately, so a process that
  loads a model again after an edit parses only the entries that changed;
* :mod:`sd.model.stored` recognises an edit that changed only the number of
  a literal constant (``Name = 0.25``), which needs no parse at all.

Nothing here imports PySD.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

#: What PySD cuts off before parsing: the sketch follows this marker.
SKETCH_MARK = "\\\\\\---///"

_ELEMENT = r'(?:"(?:\\"|[^"])*+"|[^~|])*+'
_ENTRY = re.compile(rf"({_ELEMENT})~({_ELEMENT})~([^~|]*+)(?:~{_ELEMENT})?+\|")
_SECTION = re.compile(rf"{_ELEMENT}~{_ELEMENT}\|")
#: PySD's whitespace normalisation of the model text (VensimFile._clean).
_CONTINUATION = re.compile(r"\\\n\t")
_BLANKS = re.compile(r"[\n\t\s]+")
#: ``Name = number`` (PySD's raw_number, optionally signed) and nothing else.
_NUMBER = r"[+-]?[ ]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)"
_LITERAL = re.compile(rf"\A(?P<lhs>[^=:\[\]()~|\"]+?)[ ]?=[ ]?(?P<num>{_NUMBER})\Z")


@dataclass(frozen=True)
class Entry:
    """One ``equation ~ units ~ comment |`` entry (a group header has
    ``header=True`` and no meaning for the model)."""

    text: str
    equation: str = ""
    units: str = ""
    documentation: str = ""
    header: bool = False


def equations_text(text: str) -> str:
    """The part of a model file PySD parses: everything before the sketch."""
    return text.split(SKETCH_MARK, 1)[0]


def clean(text: str) -> str:
    """PySD's normalisation: line continuations and runs of blanks become one space."""
    return _BLANKS.sub(" ", _CONTINUATION.sub(" ", text))


def split(content: str) -> list[Entry] | None:
    """The entries of one section's (cleaned) text, in order, as PySD's
    grammar splits it; ``None`` when the grammar would find none (PySD then
    reports the error). Text after the last entry is ignored, as PySD ignores it."""
    out: list[Entry] = []
    pos, n = 0, len(content)
    while pos < n:
        m = _ENTRY.match(content, pos)
        if m is not None:
            out.append(Entry(m.group(0), m.group(1).strip(), m.group(2).strip(),
                             m.group(3).strip()))
        else:
            m = _SECTION.match(content, pos)
            if m is None:
                break
            out.append(Entry(m.group(0), header=True))
        pos = m.end()
    return out or None


def literal(entry: Entry) -> tuple[str, float] | None:
    """``(name, value)`` when the entry defines a scalar constant by a bare
    number (``Name = 0.25``), else ``None``."""
    if entry.header:
        return None
    m = _LITERAL.match(entry.equation)
    if m is None:
        return None
    return m.group("lhs").strip(), float(m.group("num").replace(" ", ""))


def template(entry: Entry) -> str:
    """A digest of the entry with the number of a literal constant left
    out: two entries with the same template differ at most in that number."""
    m = _LITERAL.match(entry.equation) if not entry.header else None
    body = f"{m.group('lhs').strip()} = #" if m else entry.equation
    return digest("\0".join((body, entry.units, entry.documentation, str(entry.header))))


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
