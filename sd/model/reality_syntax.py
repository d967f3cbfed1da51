"""Vensim's Reality Check equations, read from a ``.mdl`` as data.

Vensim writes two kinds of reality-check equation among the model's own::

    TI no workforce :TEST INPUT: Workforce = RC STEP(Workforce, 0)
    no capital no production :THE CONDITION: Capital = 0 :IMPLIES: production = 0
    rc example :THE CONDITION: TI no workforce :AND: Time > 5
        :IMPLIES: Production <= RC STEP CHECK(0.5, Production, 0.0001)

(``name[range]`` subscripts either name; Vensim saves the keywords glued to the
name, ``no_workers_no_output:THE CONDITION:``). A condition or consequence is a
logical expression: comparisons (``=``, ``<>``, ``<``, ``<=``, ``>``, ``>=``) of
arithmetic on variables, numbers and functions, test-input names, ``:AND:``,
``:OR:``, ``:NOT:`` and parentheses. A test input is ``variable = expression``
(several joined by ``:AND:``).

The text is tokenised and parsed here into tuples; nothing is ever evaluated as
code, and names are kept as written (resolved against the model by
:mod:`sd.vensim_checks`). PySD parses these equations and never builds them, so
``sd run`` and both engines ignore them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .._common import nesting_depth
from ..errors import SdInputError, canon
from .entries import SKETCH_MARK, clean

__all__ = ["Setting", "TestInput", "Constraint", "RealityDefinitions", "read_reality_checks",
           "reality_names"]

_KEYWORD = re.compile(r":\s*(THE\s+CONDITION|TEST\s+INPUT)\s*:", re.I)
_IMPLIES = re.compile(r":\s*IMPLIES\s*:", re.I)
_MAX_DEPTH = 100  # the parser recurses once per parenthesis


@dataclass(frozen=True)
class Setting:
    """``target = value`` of a test input (or an equality forced by a condition)."""

    target: tuple      # ("ref", name, subscripts)
    value: tuple       # an arithmetic tree
    text: str


@dataclass(frozen=True)
class TestInput:
    """``name :TEST INPUT: settings``."""

    name: str
    subscripts: tuple[str, ...]
    settings: tuple[Setting, ...]
    line: int
    text: str


@dataclass(frozen=True)
class Constraint:
    """``name :THE CONDITION: condition :IMPLIES: consequence``."""

    name: str
    subscripts: tuple[str, ...]
    condition: tuple
    consequence: tuple
    line: int
    text: str


@dataclass(frozen=True)
class RealityDefinitions:
    """The reality-check equations of one model file, in file order."""

    path: str
    test_inputs: tuple[TestInput, ...]
    constraints: tuple[Constraint, ...]

    def __bool__(self) -> bool:
        return bool(self.test_inputs or self.constraints)


# -- finding the equations ------------------------------------------------------------
def _entries(text: str):
    """``(line, equation text)`` of each ``equation ~ units ~ comment |`` entry
    (the equation is everything before the first ``~`` outside quotes)."""
    body = text.split(SKETCH_MARK, 1)[0]
    for m in re.finditer(r'(?:"(?:[^"\\]|\\.)*"|[^|"])*\|', body, re.S):
        chunk = m.group(0)
        eq = re.match(r'(?:"(?:[^"\\]|\\.)*"|[^~"])*', chunk, re.S).group(0)
        header = re.match(r"\s*(?:\{[^}]*\})?\s*", eq).end()  # {UTF-8} before the first entry
        if _KEYWORD.search(eq):
            yield body.count("\n", 0, m.start() + header) + 1, clean(eq[header:]).strip()


def _raw_definitions(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as exc:
        raise SdInputError(f"cannot read {path}: {exc.strerror}.") from None
    if not _KEYWORD.search(text.split(SKETCH_MARK, 1)[0]):
        return []
    out = []
    for line, eq in _entries(text):
        m = _KEYWORD.search(eq)
        head, body = eq[:m.start()].strip(), eq[m.end():].strip()
        kind = "test" if "TEST" in m.group(1).upper() else "constraint"
        out.append((line, kind, head, body, eq))
    return out


def reality_names(path) -> dict[str, set[str]]:
    """Canonical reality-check name -> canonical names its text mentions
    (leniently: for the diagram check, which must not fail on a malformed check)."""
    out = {}
    for _line, _kind, head, body, _eq in _raw_definitions(path):
        name = head.split("[", 1)[0].strip().strip('"')
        words = set()
        for tok in _tokens(body, "", lenient=True):
            if tok[0] in ("name", "qname"):
                words.add(canon(tok[1]))
        out[canon(name)] = words
    return out


def read_reality_checks(path) -> RealityDefinitions:
    """Parse the test inputs and constraints of a ``.mdl``.

    Raises
    ------
    SdInputError
        A malformed reality-check equation (the message names file and line).
    """
    tests, constraints = [], []
    for line, kind, head, body, eq in _raw_definitions(path):
        where = f"{path}:{line}"
        name, subs = _head(head, where)
        if kind == "test":
            parts = _split_and(body, where)
            settings = tuple(_setting(p, where) for p in parts)
            tests.append(TestInput(name, subs, settings, line, eq))
            continue
        halves = _IMPLIES.split(body)
        if len(halves) != 2 or not halves[0].strip() or not halves[1].strip():
            raise SdInputError(f"{where}: constraint {name!r} must read 'condition :IMPLIES: "
                               "consequence' with one :IMPLIES:.")
        cond = _Parser(halves[0], where).logic_all()
        cons = _Parser(halves[1], where).logic_all()
        constraints.append(Constraint(name, subs, cond, cons, line, eq))
    return RealityDefinitions(str(path), tuple(tests), tuple(constraints))


def _head(head: str, where: str) -> tuple[str, tuple]:
    m = re.fullmatch(r'\s*("(?:[^"\\]|\\.)*"|[^\[\]"]+?)\s*(?:\[([^\]]*)\])?\s*', head)
    if not m or not m.group(1).strip('" '):
        raise SdInputError(f"{where}: cannot read the reality check's name {head[:60]!r}.")
    subs = tuple(s.strip() for s in m.group(2).split(",")) if m.group(2) else ()
    return m.group(1).strip('"').strip(), subs


def _split_and(body: str, where: str) -> list[str]:
    parts = re.split(r":\s*AND\s*:", body, flags=re.I)
    if any(not p.strip() for p in parts):
        raise SdInputError(f"{where}: empty test-input setting in {body[:60]!r}.")
    return parts


def _setting(text: str, where: str) -> Setting:
    p = _Parser(text, where)
    target = p.arith()
    if target[0] != "ref" or not p.take("cmp", "="):
        raise SdInputError(f"{where}: a test input sets a variable: expected "
                           f"'variable = expression', got {text.strip()[:60]!r}.")
    value = p.arith()
    p.end()
    return Setting(target, value, text.strip())


# -- tokens and trees -------------------------------------------------------------------
_TOKEN = re.compile(r"""\s*(?:
    (?P<kw>:\s*(?:AND|OR|NOT|IMPLIES|CROSSING|AT\s+LEAST\s+ONCE)\s*:)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | "(?P<qname>(?:[^"\\]|\\.)*)"
  | (?P<cmp><=|>=|<>|=|<|>)
  | (?P<op>[-+*/^(),\[\]])
  | (?P<name>[A-Za-z_$][\w $'&%.]*)
)""", re.X | re.I)


def _tokens(text: str, where: str, lenient: bool = False) -> list[tuple[str, str]]:
    out, pos = [], 0
    while text[pos:].strip():
        m = _TOKEN.match(text, pos)
        if not m:
            if lenient:
                pos += 1
                continue
            raise SdInputError(f"{where}: cannot read {text[pos:].strip()[:40]!r} in the reality "
                               "check; expected names, numbers, + - * / ^, comparisons, "
                               ":AND:, :OR:, :NOT:.")
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "kw":
            value = re.sub(r"[\s:]+", " ", value).strip().upper()
        elif kind == "name":
            value = " ".join(value.split())
        out.append((kind, value))
        pos = m.end()
    return out


class _Parser:
    """Recursive descent over the tokens; trees are tuples:
    ``("num", x)``, ``("ref", name, subscripts)``, ``("call", NAME, args)``,
    ``("neg", a)``, ``(op, a, b)`` for ``+ - * / ^``; logic ``("cmp", op, a, b)``,
    ``("and"|"or", a, b)``, ``("not", a)``, ``("test", name, subscripts)`` (a
    test input named in a condition), ``("unsupported", keyword)``."""

    def __init__(self, text: str, where: str):
        if nesting_depth(text) > _MAX_DEPTH:
            raise SdInputError(f"{where}: the reality check nests parentheses too deeply "
                               f"(at most {_MAX_DEPTH}).")
        self.toks, self.pos, self.where, self.text = _tokens(text, where), 0, where, text.strip()

    # token helpers
    def peek(self, k: int = 0):
        i = self.pos + k
        return self.toks[i] if i < len(self.toks) else ("end", "")

    def take(self, kind: str, value: str | None = None) -> bool:
        tok = self.peek()
        if tok[0] == kind and (value is None or tok[1] == value):
            self.pos += 1
            return True
        return False

    def fail(self, what: str):
        tok = self.peek()
        got = "the end" if tok[0] == "end" else repr(tok[1])
        raise SdInputError(f"{self.where}: expected {what} but found {got} in {self.text[:80]!r}.")

    def end(self):
        if self.peek()[0] != "end":
            self.fail("the end of the expression")

    # logic
    def logic_all(self) -> tuple:
        tree = self.logic()
        self.end()
        return tree

    def logic(self) -> tuple:
        left = self.conj()
        while self.take("kw", "OR"):
            left = ("or", left, self.conj())
        return left

    def conj(self) -> tuple:
        left = self.neg()
        while self.take("kw", "AND"):
            left = ("and", left, self.neg())
        return left

    def neg(self) -> tuple:
        if self.take("kw", "NOT"):
            return ("not", self.neg())
        return self.primary()

    def primary(self) -> tuple:
        start = self.pos
        if self.peek() == ("op", "("):
            # a parenthesised logical expression, unless it is arithmetic compared after
            try:
                self.pos += 1
                inner = self.logic()
                if self.take("op", ")") and self.peek()[0] not in ("cmp", "op"):
                    return inner
            except SdInputError:
                pass
            self.pos = start
        left = self.arith()
        tok = self.peek()
        if tok[0] != "cmp":
            if left[0] == "ref":
                return ("test", left[1], left[2])
            self.fail("a comparison (=, <>, <, <=, >, >=)")
        self.pos += 1
        if self.peek()[0] == "kw" and tok[1] != "=" and self.peek()[1] in ("CROSSING",
                                                                          "AT LEAST ONCE"):
            kw = self.peek()[1]
            while self.take("kw", kw):
                pass
            self.arith()
            return ("unsupported", f":{kw}:")
        return ("cmp", tok[1], left, self.arith())

    # arithmetic
    def arith(self) -> tuple:
        left = self.term()
        while self.peek() in (("op", "+"), ("op", "-")):
            op = self.peek()[1]
            self.pos += 1
            left = (op, left, self.term())
        return left

    def term(self) -> tuple:
        left = self.unary()
        while self.peek() in (("op", "*"), ("op", "/")):
            op = self.peek()[1]
            self.pos += 1
            left = (op, left, self.unary())
        return left

    def unary(self) -> tuple:
        if self.take("op", "-"):
            return ("neg", self.unary())
        if self.take("op", "+"):
            return self.unary()
        base = self.atom()
        if self.take("op", "^"):
            return ("^", base, self.unary())
        return base

    def atom(self) -> tuple:
        kind, value = self.peek()
        if kind == "num":
            self.pos += 1
            return ("num", float(value))
        if kind in ("name", "qname"):
            self.pos += 1
            if kind == "name" and self.take("op", "("):
                return ("call", " ".join(value.replace("_", " ").upper().split()), self.args())
            return ("ref", value, self.subscripts())
        if self.take("op", "("):
            inner = self.arith()
            if not self.take("op", ")"):
                self.fail("')'")
            return inner
        self.fail("a number, a variable or '('")

    def args(self) -> tuple:
        out = []
        if self.take("op", ")"):
            return ()
        while True:
            out.append(self.arith())
            if self.take("op", ")"):
                return tuple(out)
            if not self.take("op", ","):
                self.fail("',' or ')'")

    def subscripts(self) -> tuple:
        if not self.take("op", "["):
            return ()
        out = []
        while True:
            kind, value = self.peek()
            if kind not in ("name", "qname"):
                self.fail("a subscript range or element")
            self.pos += 1
            out.append(value.strip())
            if self.take("op", "]"):
                return tuple(out)
            if not self.take("op", ","):
                self.fail("',' or ']'")
