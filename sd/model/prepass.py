"""Vensim text PySD's grammar does not accept, rewritten before parsing.

Each rewrite removes, renames or rearranges the model's own text (the one
addition, equations for a macro's extra outputs, is made of the call's own
text and goes after the last equation), keeps every line where it was (so
messages still name the right line of the ``.mdl``) and leaves quoted
names, quoted strings, units, comments and the sketch alone; the result is
parsed and checked like any model text:

* inline comments inside an equation: Vensim accepts ``{...}`` anywhere in an
  expression (``RANDOM NORMAL(-6, 6, 0, 1, seed){RANDOM NORMAL()}``,
  ``STP+SNE {Note: ...}``); PySD's expression grammar stops at the brace. The
  comment, with any comments nested in it, is blanked (newlines kept).
* data variables with no equation at all (``Sales Data ~ units ~ |``: Vensim
  reads them from the data sources given at simulation time, interpolating
  between points): PySD's grammar needs a keyword, so ``:INTERPOLATE:`` (what
  Vensim does) is written after the name.
* lookups written DYNAMO-style, all x values then all y values
  (``TEUPPS(0,0.2,0.4,0,0.4,0.7)``, as translated by Vensim's dyn2ven): the
  values are written as the ``(x,y)`` pairs PySD's grammar reads.
* a macro with extra outputs called with them (``r = SSTATS(data, sim : R2 x,
  MAE x)``): Vensim makes each output a model variable. The call keeps its
  arguments and gains an output selector (``SSTATS(data, sim, 0)``), and
  each output gets an equation of its own, appended after the last equation
  (``R2 x = SSTATS(data, sim, 1)``), which :mod:`sd.model.macros` expands.
* Vensim's keywords written in small letters (``:and:``, ``:na:``,
  ``:except:``): Vensim's names and keywords ignore case; PySD's grammar
  reads capitals only. They are written in capitals.
* ``Time$``, ``TIME STEP$``, ``INITIAL TIME$``, ``FINAL TIME$``, ``SAVEPER$``:
  Vensim's forms of the control variables written so that their units do
  not enter unit checks; the value is the same. PySD's builder fails on them
  (``KeyError: 'time_step$'``), so the ``$`` is dropped.
* line continuations followed by spaces (``a +\\`` then ``  b``, as typed by
  hand): PySD joins a ``\\`` line to the next only when a tab follows the
  line break, as Vensim writes it; the blanks become that tab.
* ``SINTEG(rate, initial, min, max, quant, spec, thresh)``, Vensim's integral
  that never leaves ``[min, max]`` and returns ``spec`` when within ``thresh``
  of it (the last five numbers or ``:NA:``): PySD lacks it. It is written as
  the INTEG whose Euler step lands on the restricted value,
  ``INTEG((R(x + rate * TIME STEP) - x) / TIME STEP, R(initial))``. A
  ``quant`` other than ``:NA:`` is left as written and refused by name.
* ``NPV(stream, discount rate, init val, factor)``, which PySD lacks: Vensim
  defines it by three equations (a discount factor stock, an accumulation
  stock and the reported value); when a model calls NPV and defines no macro
  of that name, those equations are appended as a macro :data:`NPV_MACRO`,
  which :mod:`sd.model.macros` and the fast engine expand per call.
"""
from __future__ import annotations

import re

#: Where the equations end and the sketch begins.
_SKETCH = "\\\\\\---///"
#: Vensim's definition of NPV (Reference Guide, "NPV"), as a macro.
NPV_MACRO = ("\n:MACRO: NPV(stream, discount rate, init val, factor)\n"
             "NPV = (sd NPV accum + stream * TIME STEP * sd NPV df) * factor ~~|\n"
             "sd NPV accum = INTEG(stream * sd NPV df, init val) ~~|\n"
             "sd NPV df = INTEG(-sd NPV df * discount rate / (1 + discount rate * TIME STEP), 1)"
             " ~~|\n:END OF MACRO:\n")
_NPV_CALL = re.compile(r'(?i)(?<![\w"$])NPV[ \t]*\(')
_NPV_DEFINED = re.compile(r"(?i):MACRO:[ \t]*NPV[ \t]*\(|(?:\A|[|}])\s*NPV\s*[(\[=:]")
#: Vensim's keywords, in any case (Vensim ignores it; PySD's grammar reads capitals).
_KEYWORD = re.compile(r"(?i):(?:and|or|not|na|except|interpolate|raw|hold[ \t]+backward|"
                      r"look[ \t]+forward|implies|test[ \t]+input|the[ \t]+condition):")
_CONTINUATION = re.compile(r"\\[ \t]*\n[ \t]*(?=\S)")
_DOLLAR = re.compile(r"(?i)\b(time|time[ _]+step|initial[ _]+time|final[ _]+time|saveper)[ \t]*\$")


def rewrite(text: str) -> str:
    """``text`` with the rewrites of the module docstring applied."""
    end = text.find(_SKETCH)
    head, tail = (text, "") if end < 0 else (text[:end], text[end:])
    head = _CONTINUATION.sub("\\\\\n\t", head)
    extra: list = []
    body = _equations(head, _output_macros(head), extra)
    if _NPV_CALL.search(body) and not _NPV_DEFINED.search(body):
        extra.append(NPV_MACRO)
    return body + "".join(extra) + tail


def _closing_brace(text: str, start: int) -> int:
    """Index of the ``}`` closing the ``{`` at ``start`` (comments nest:
    ``{ ... 8784 {leap year} ... }``), or -1."""
    depth = 0
    for k in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[k], 0)
        if depth == 0:
            return k
    return -1


def _equations(text: str, macros: dict, extra: list) -> str:
    """In the equation part of each element (up to its first ``~``; quotes
    skipped), blank ``{...}`` and drop the control variables' ``$``; units
    and comments (up to the element's ``|``) are copied as they are."""
    out = []
    i, n = 0, len(text)
    header = re.match(r"\s*\{[^}]*\}", text)   # {UTF-8}: PySD's own
    if header:
        out.append(header.group())
        i = header.end()
    while i < n:
        j, equation = i, []
        while j < n and text[j] not in "~|":
            c = text[j]
            if c in "\"'{":
                k = _closing_brace(text, j) if c == "{" else text.find(c, j + 1)
                k = n - 1 if k < 0 else k
                piece = text[j:k + 1]
                equation.append(re.sub(r"[^\n]", " ", piece) if c == "{" else piece)
                j = k + 1
                continue
            equation.append(c)
            j += 1
        out.append(_element("".join(equation), macros, extra))
        if j >= n:
            break
        k = text.find("|", j) if text[j] == "~" else j
        k = n if k < 0 else k + 1
        out.append(text[j:k])
        i = k
    return "".join(out)


_NAME = r'(?:"[^"]*"|[^\W\d][\w \t$.&%\']*?)'     # a name; unquoted: no operators
_SUBS = r"(?:\s*\[[^\]]*\])?"
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_EMPTY_DATA = re.compile(rf"\A(\s*{_NAME}{_SUBS})(\s*)\Z")
_WS = r"[\s\\]*"          # blanks and Vensim's line continuations
_FLAT_LOOKUP = re.compile(
    rf"\A(\s*{_NAME}{_SUBS}\s*)\({_WS}((?:{_NUMBER}{_WS},{_WS})+{_NUMBER}){_WS}\){_WS}\Z")


def _element(equation: str, macros: dict, extra: list) -> str:
    """One element's equation part, rewritten (see the module docstring)."""
    if macros and ":" in equation:
        equation = _output_calls(equation, macros, extra)
    stripped = equation.strip()
    if not stripped or stripped.startswith((":", "*")):   # macro markers, groups
        return _dollar(equation)
    m = _EMPTY_DATA.match(equation)
    if m:
        return m.group(1) + " :INTERPOLATE:" + m.group(2)
    m = _SINTEG.match(equation)
    if m:
        equation = _sinteg(equation, m)
    m = _FLAT_LOOKUP.match(equation)
    if m:
        values = [v.strip(" \t\n\\") for v in m.group(2).split(",")]
        if len(values) % 2 == 0:
            half = len(values) // 2
            pairs = ",".join(f"({x},{y})" for x, y in zip(values[:half], values[half:]))
            lines = equation.count("\n") - m.group(1).count("\n")
            return f"{m.group(1)}({pairs})" + "\n" * lines
    return _dollar(equation)


_SINTEG = re.compile(rf"\A(\s*({_NAME}{_SUBS})\s*=\s*)SINTEG\s*\(", re.I)
_NA = re.compile(r"\A:NA:\Z", re.I)


def _sinteg(equation: str, m) -> str:
    """``x = SINTEG(...)`` as an INTEG (module docstring); as written when its
    arguments are not Vensim's (two expressions, five numbers or ``:NA:``)."""
    start = m.end()
    depth, end = 1, start
    while end < len(equation) and depth:
        depth += {"(": 1, ")": -1}.get(equation[end], 0)
        end += 1
    if depth or equation[end:].strip(" \t\n\\"):
        return equation
    args = [a.replace("\\\n", " ").strip(" \t\n\\") for a in _split_top(equation[start:end - 1])]
    if len(args) != 7:
        return equation
    limits = [None if _NA.match(a) else a for a in args[2:]]
    if any(a is not None and not re.fullmatch(_NUMBER, a) for a in limits) or limits[2]:
        return equation
    low, high, _, spec, thresh = limits

    def restrict(v: str) -> str:
        if spec is not None and thresh is not None:
            v = f"IF THEN ELSE(ABS({v} - ({spec})) < {thresh}, {spec}, {v})"
        if low is not None:
            v = f"MAX({low}, {v})"
        if high is not None:
            v = f"MIN({high}, {v})"
        return v

    x = m.group(2).strip()
    rate, initial = args[0], args[1]
    new = (f"{m.group(1)}INTEG(({restrict(f'{x} + ({rate}) * TIME STEP')} - {x}) / TIME STEP, "
           f"{restrict(f'({initial})')})")
    return new + "\n" * (equation.count("\n") - new.count("\n"))


_MACRO_HEADER = re.compile(r":MACRO:\s*([^(\n]+?)\s*\(([^()]*)\)", re.S)


def _key(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


def _output_macros(text: str) -> dict:
    """{name: number of extra outputs} of the macros that have some."""
    out = {}
    for m in _MACRO_HEADER.finditer(text):
        params, _, returns = m.group(2).partition(":")
        if returns.strip():
            out[_key(m.group(1))] = len(_split_top(returns.replace("\\\n", " ")))
    return out


def _split_top(text: str, sep: str = ",") -> list[str]:
    """``text`` split at ``sep`` outside brackets, parentheses and quotes."""
    parts, depth, quote, start = [], 0, None, 0
    for i, c in enumerate(text):
        if quote:
            quote = None if c == quote else quote
        elif c in "\"'":
            quote = c
        elif c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _output_calls(equation: str, macros: dict, extra: list) -> str:
    """Calls with extra outputs rewritten (module docstring); the removed text's
    line breaks are kept inside the call."""
    if equation.lstrip().startswith(":MACRO:"):
        return equation
    owner = equation.split("=", 1)[0].strip() if "=" in equation else ""
    pos = 0
    while True:
        m = re.compile(r"(?<![\w\"])([A-Za-z][\w ]*?)\s*\(").search(equation, pos)
        if m is None:
            return equation
        name, start = m.group(1).strip(), m.end()
        depth, end = 1, start
        while end < len(equation) and depth:
            depth += {"(": 1, ")": -1}.get(equation[end], 0)
            end += 1
        inner = equation[start:end - 1]
        head = _split_top(inner, ":")
        if _key(name) not in macros or len(head) != 2:
            pos = start
            continue
        args, outputs = head
        clean = " ".join(args.replace("\\\n", " ").split())
        for k, out in enumerate(_split_top(outputs.replace("\\\n", " ")), start=1):
            extra.append(f"\n{' '.join(out.split())} = {name}({clean}, {k})\n\t~\t\n\t~\t"
                         f"Output {k} of the {name} call in {owner}.\n\t|\n")
        kept = args.rstrip(" \t\n\\")
        new = f"{name}({kept}, 0" + "\n" * (inner.count("\n") - kept.count("\n")) + ")"
        equation = equation[:m.start(1)] + new + equation[end:]
        pos = m.start(1) + len(new)


def _dollar(equation: str) -> str:
    """Drop the ``$`` of ``TIME STEP$`` and friends, and write Vensim's keywords in
    capitals, outside quoted names."""
    parts = re.split(r'("[^"]*")', equation)
    return "".join(p if p.startswith('"') else
                   _KEYWORD.sub(lambda m: m.group().upper(),
                                _DOLLAR.sub(lambda m: m.group(1), p))
                   for p in parts)
