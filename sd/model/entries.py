"""A model's equations as entries, found the way PySD's grammar finds them.

PySD splits the text of a model section into *entries* (``equation ~ units ~
comment |``) and group headers (``***...*** ~ text |``) with a parsing
expression grammar (``section_elements.peg``)::

    entry   = element "~" element "~" doc ("~" element)? "|"
    section = element "~" element "|"
    element = (escape_group / [^~|])*          escape_group = '"' ('\\"' / [^"])* '"'
    doc     = [^~|]*

:func:`split` applies these rules as a PEG does -- each choice committed,
no repetition giving back what it consumed, an unclosed quote an ordinary
character -- in time linear in the text, without PySD
(``tests/test_startup.py`` checks it against PySD's own split of every test
model). Two uses:

* :mod:`sd.model.reparse` parses each entry separately, so a process that
  loads a model again after an edit parses only the entries that changed;
* :mod:`sd.model.stored` recognises an edit that changed only the number of
  a literal constant (``Name = 0.25``), which needs no parse at all.

Nothing here imports PySD.
"""
from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass

#: What PySD cuts off before parsing: the sketch follows this marker.
SKETCH_MARK = "\\\\\\---///"

_PLAIN = re.compile(r'[^~|"]*+')
_DOC = re.compile(r"[^~|]*+")
#: A quote that no backslash escapes: where an escape group may close.
_UNESCAPED = re.compile(r'(?<!\\)"')
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
    scan = _Scanner(content)
    out: list[Entry] = []
    pos, n = 0, len(content)
    while pos < n:
        found = scan.entry(pos)
        if found is None:
            break
        out.append(found[0])
        pos = found[1]
    return out or None


class _Scanner:
    """The grammar's rules on one text, in time linear in its length.

    An escape group that starts at a quote ends at the first quote after it
    that no backslash precedes (``\\"`` is consumed whole, so a quote after a
    backslash never closes one), or fails if there is none, and the quote is
    then an ordinary character: so one sorted list of the unescaped quotes
    answers every attempt (a regular expression retrying the scan from every
    quote is quadratic on a hostile text of unclosed quotes)."""

    def __init__(self, text: str):
        self.text, self.n = text, len(text)
        self.closes = [m.start() for m in _UNESCAPED.finditer(text)]

    def _close(self, start: int) -> int | None:
        """Where an escape group whose quote is at ``start - 1`` ends."""
        if start < self.n and self.text[start] == '"':
            return start
        i = bisect.bisect_right(self.closes, start)
        return self.closes[i] if i < len(self.closes) else None

    def element(self, pos: int) -> int:
        text = self.text
        while True:
            pos = _PLAIN.match(text, pos).end()
            if pos >= self.n or text[pos] != '"':
                return pos
            close = self._close(pos + 1)
            pos = pos + 1 if close is None else close + 1

    def _at(self, pos: int, ch: str) -> bool:
        return pos < self.n and self.text[pos] == ch

    def entry(self, pos: int):
        """(Entry, end) of the entry or group header at ``pos``, or None."""
        text = self.text
        a = self.element(pos)
        if not self._at(a, "~"):
            return None
        b = self.element(a + 1)
        if self._at(b, "~"):
            c = _DOC.match(text, b + 1).end()
            end = self.element(c + 1) if self._at(c, "~") else c
            if self._at(end, "|"):
                return Entry(text[pos:end + 1], text[pos:a].strip(), text[a + 1:b].strip(),
                             text[b + 1:c].strip()), end + 1
            # not an entry: perhaps a group header, which needs "|" right here
        if self._at(b, "|"):
            return Entry(text[pos:b + 1], header=True), b + 1
        return None


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
