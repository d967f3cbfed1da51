"""Vensim units of measure: parse them, multiply them, compare them.

Vensim compares units by name (``Person`` and ``People`` differ) unless the
model declares them synonyms. Synonyms live in the settings block Vensim
writes after the sketch, one group per ``22:`` line (``22:Year,Years``). A
model without such lines gets the groups Vensim puts into every new model.
``Dmnl`` (any case), ``dimensionless``, ``fraction``, ``unitless`` and ``1``
mean "no units". Exponents (``m^2``, ``Year^-1``) and parentheses follow
Vensim's syntax (``USD/(firing*kiln)``); numeric factors other than an
exponent (``1/Year``, ``1000*Widget``) carry no dimension.

A :class:`Unit` is a product of named base units with rational exponents;
two units are equal when their canonical (synonym-resolved) products are.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

__all__ = ["Unit", "UnitSystem", "UnitSyntaxError", "DEFAULT_SYNONYMS", "DIMENSIONLESS_NAMES",
           "model_synonyms"]

#: The synonym groups Vensim writes into every new model (Model > Settings > Units Equiv).
DEFAULT_SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("$", "Dollar", "Dollars", "$s"), ("Hour", "Hours"), ("Month", "Months"),
    ("Person", "People", "Persons"), ("Unit", "Units"), ("Week", "Weeks"),
    ("Year", "Years"), ("Day", "Days"),
)

#: Names Vensim reads as "dimensionless" (compared without case).
DIMENSIONLESS_NAMES = frozenset({"dmnl", "dimensionless", "fraction", "unitless", "1"})

_SETTINGS_START = "///---\\\\\\"
_TOKEN = re.compile(r"\s*(?:(?P<op>[*/^()])|(?P<num>[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?(?![\w$%]))"
                    r"|(?P<name>[^*/^()]+?)(?=\s*(?:[*/^()]|$)))")


class UnitSyntaxError(ValueError):
    """A units field that is not Vensim unit syntax."""


@dataclass(frozen=True)
class Unit:
    """A product of base units with rational exponents (empty: dimensionless).

    Attributes
    ----------
    powers : tuple of (str, Fraction)
        Canonical base-unit names with non-zero exponents, sorted by name.
    """

    powers: tuple[tuple[str, Fraction], ...] = ()

    @staticmethod
    def of(mapping: dict[str, Fraction]) -> "Unit":
        return Unit(tuple(sorted((k, Fraction(v)) for k, v in mapping.items() if v != 0)))

    def __mul__(self, other: "Unit") -> "Unit":
        out = dict(self.powers)
        for name, exp in other.powers:
            out[name] = out.get(name, Fraction(0)) + exp
        return Unit.of(out)

    def __truediv__(self, other: "Unit") -> "Unit":
        return self * other ** -1

    def __pow__(self, exponent) -> "Unit":
        exp = Fraction(exponent).limit_denominator(1000)
        return Unit.of({name: e * exp for name, e in self.powers})

    @property
    def dimensionless(self) -> bool:
        return not self.powers


DMNL = Unit()


class UnitSystem:
    """Parses units fields and prints units, with a model's synonym groups.

    Parameters
    ----------
    synonyms : iterable of tuple of str
        Groups of names that mean the same unit; the first name of a group
        is the one printed.
    """

    def __init__(self, synonyms=DEFAULT_SYNONYMS):
        self._canon: dict[str, str] = {}
        self._spelling: dict[str, str] = {}
        for group in synonyms:
            names = [n.strip() for n in group if n.strip()]
            if not names:
                continue
            head = _key(names[0])
            for name in names:
                self._canon.setdefault(_key(name), head)
            self._spelling.setdefault(head, names[0])

    def canonical(self, name: str) -> str:
        key = _key(name)
        return self._canon.get(key, key)

    def parse(self, text: str) -> Unit:
        """Parse a Vensim units field (without its ``[min,max]`` range).

        Raises
        ------
        UnitSyntaxError
            When ``text`` is not Vensim unit syntax.
        """
        tokens = _tokenize(text)
        unit, pos = self._product(tokens, 0)
        if pos != len(tokens):
            raise UnitSyntaxError(f"unexpected {tokens[pos][1]!r} in units {text!r}")
        return unit

    def _product(self, tokens, pos):
        unit, pos = self._power(tokens, pos)
        while pos < len(tokens) and tokens[pos] in (("op", "*"), ("op", "/")):
            op = tokens[pos][1]
            right, pos = self._power(tokens, pos + 1)
            unit = unit * right if op == "*" else unit / right
        return unit, pos

    def _power(self, tokens, pos):
        unit, pos = self._atom(tokens, pos)
        if pos < len(tokens) and tokens[pos] == ("op", "^"):
            if pos + 1 >= len(tokens) or tokens[pos + 1][0] != "num":
                raise UnitSyntaxError("an exponent must be a number")
            unit = unit ** Fraction(tokens[pos + 1][1])
            pos += 2
        return unit, pos

    def _atom(self, tokens, pos):
        if pos >= len(tokens):
            raise UnitSyntaxError("units end too early")
        kind, value = tokens[pos]
        if (kind, value) == ("op", "("):
            unit, pos = self._product(tokens, pos + 1)
            if pos >= len(tokens) or tokens[pos] != ("op", ")"):
                raise UnitSyntaxError("unbalanced parenthesis in units")
            return unit, pos + 1
        if kind == "num":
            return DMNL, pos + 1  # a numeric factor carries no dimension
        if kind == "name":
            canon = self.canonical(value)
            if _key(value) in DIMENSIONLESS_NAMES or canon in DIMENSIONLESS_NAMES:
                return DMNL, pos + 1      # also a unit the model declares equivalent to Dmnl
            self._spelling.setdefault(canon, " ".join(value.split()))
            return Unit(((canon, Fraction(1)),)), pos + 1
        raise UnitSyntaxError(f"unexpected {value!r} in units")

    def format(self, unit: Unit) -> str:
        """Print ``unit`` the way Vensim users write units (``kiln/Year``)."""
        if unit.dimensionless:
            return "Dmnl"
        num = [self._term(n, e) for n, e in unit.powers if e > 0]
        den = [self._term(n, -e) for n, e in unit.powers if e < 0]
        top = "*".join(num) if num else "1"
        if not den:
            return top
        bottom = den[0] if len(den) == 1 else "(" + "*".join(den) + ")"
        return f"{top}/{bottom}"

    def _term(self, name: str, exp: Fraction) -> str:
        text = self._spelling.get(name, name)
        return text if exp == 1 else f"{text}^{exp}"


def _key(name: str) -> str:
    return " ".join(name.split()).lower()


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos, text = [], 0, text.strip()
    if not text:
        raise UnitSyntaxError("empty units")
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise UnitSyntaxError(f"cannot read units {text!r} at {text[pos:]!r}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind).strip()))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tokens


def model_synonyms(path: str | Path) -> tuple[tuple[str, ...], ...]:
    """Synonym groups of a ``.mdl``: its ``22:`` settings lines, else Vensim's defaults.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.mdl`` file.

    Returns
    -------
    tuple of tuple of str
    """
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    start = text.rfind(_SETTINGS_START)
    groups = []
    if start >= 0:
        for line in text[start:].splitlines():
            if line.startswith("22:"):
                names = tuple(n.strip() for n in line[3:].split(",") if n.strip())
                if names:
                    groups.append(names)
    return tuple(groups) if groups else DEFAULT_SYNONYMS
