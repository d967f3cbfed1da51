"""Step 2 of loading: model text -> PySD's abstract model (parsing only).

PySD's Vensim parser (``VensimFile(...).parse().get_abstract_model()``) builds
the abstract model without generating or importing code, with one exception
closed here: its visitors call Python's ``eval`` on pieces of the model text
(numbers, quoted strings, lookup points and the ``[(x0,y0)-(x1,y1)]`` limits
of a lookup, which its grammar lets hold almost anything), so a crafted
lookup ran code at parse time. This module replaces that ``eval`` with
:func:`ast.literal_eval` (literals only: numbers, strings, tuples) in PySD's
parser modules for the life of the process.

The text is first passed through :mod:`sd.model.prepass` (Vensim syntax
PySD's grammar lacks, rewritten line for line); a DELAY MATERIAL with a
constant delay time becomes the DELAY FIXED it equals (:mod:`sd.model.material`),
and ``:AND:`` binds tighter than ``:OR:`` (:mod:`sd.model.precedence`).
Errors become
:class:`SdInputError` naming the file, the line and, when it can be found,
the variable.
"""
from __future__ import annotations

import ast
import re
import shutil
import tempfile
import threading
import warnings
from pathlib import Path

from .._common import deep_recursion
from ..errors import SdInputError
from . import material, precedence, prepass
from .source import Source

_LOCK = threading.Lock()


def _literal(text, *_ignored):
    """PySD's parser calls ``eval`` on literals only; anything else is refused.

    Literals are Python literals, or arithmetic on numbers (``41+1``, ``0+0``,
    ``-2*3``: XMILE and Vensim files hold such points and array values) with
    ``+ - * /`` only (no power: ``9**9**9`` would never finish)."""
    if not isinstance(text, str):
        raise ValueError("expected the text of a literal")
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    try:
        return _arithmetic(ast.parse(text.strip(), mode="eval").body)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError,
            ZeroDivisionError, OverflowError):
        raise ValueError(f"not a number, string or list of points: {text.strip()[:60]!r}") \
            from None


_OPERATORS = {ast.Add: float.__add__, ast.Sub: float.__sub__, ast.Mult: float.__mul__,
              ast.Div: float.__truediv__}


def _arithmetic(node):
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        value = _arithmetic(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        value = _OPERATORS[type(node.op)](float(_arithmetic(node.left)),
                                          float(_arithmetic(node.right)))
        return int(value) if value.is_integer() and abs(value) < 2 ** 53 else value
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_arithmetic(e) for e in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    raise ValueError("not a literal")


def _install_literal_eval() -> None:
    """Shadow the builtin ``eval`` in PySD's parser modules (module globals
    are looked up before builtins); and split files at every macro."""
    from pysd.translators.vensim import vensim_element
    from pysd.translators.xmile import xmile_element

    for module in (vensim_element, xmile_element):
        module.eval = _literal
    _bounded_numeric_ranges(vensim_element.ElementsComponentVisitor)
    _split_at_every_macro()
    from .extend import install

    install()       # the Vensim functions sd adds to PySD's builder


def _bounded_numeric_ranges(visitor) -> None:
    """A numeric subscript range ``(a1-a100000000)`` is counted before PySD
    lists its elements: nine characters asked for 10^8 names (gigabytes;
    ``sd info`` never finished). Beyond the model's cell limit it is refused."""
    original = visitor.visit_subscript_range
    if getattr(original, "_sd_bounded", False):
        return

    def visit(self, n, vc):
        from .structure import cell_limit

        first, last = re.findall(r"\d+", vc[2].strip()), re.findall(r"\d+", vc[6].strip())
        if first and last and int(last[-1]) - int(first[-1]) + 1 > cell_limit():
            raise ValueError(f"the subscript range ({vc[2].strip()} - {vc[6].strip()}) has "
                             f"{int(last[-1]) - int(first[-1]) + 1:,} elements, more than the "
                             f"limit of {cell_limit():,} array values (SD_CELL_LIMIT)")
        return original(self, n, vc)

    visit._sd_bounded = True
    visitor.visit_subscript_range = visit


#: PySD's file grammar takes the model text before a macro greedily, up to the
#: *last* ``:MACRO:``: with equations (or a group) before two macros, the first
#: macro lands in the main section and the file does not parse. Non-greedy, it
#: stops at the first; the rest of the grammar is PySD's.
_GREEDY_MAIN = 'main_part = !":MACRO:" ~r".+(?=:MACRO:)"'


def _split_at_every_macro() -> None:
    import parsimonious
    from pysd.translators.vensim import vensim_utils as vu

    if getattr(vu.Grammar, "_sd_macro_fix", False):
        return
    text = vu.Grammar._read_grammar("file_sections")
    if _GREEDY_MAIN in text:       # a PySD that fixed it needs nothing
        vu.Grammar._grammar["file_sections"] = parsimonious.Grammar(
            text.replace(_GREEDY_MAIN, _GREEDY_MAIN.replace(".+(", ".+?(")))
    vu.Grammar._sd_macro_fix = True


def parse(source: Source):
    """Parse ``source`` into PySD's :class:`AbstractModel`.

    Raises
    ------
    SdInputError
        The text is not Vensim PySD can parse: the message gives the file,
        the line and the variable.
    """
    from .cache import writable

    if source.kind == "xmile":
        return _nesting(_parse_xmile(source), source)
    tmp = None
    try:
        with writable(Path(tempfile.gettempdir()), "the temporary folder",
                      "Free some space, or set TMPDIR to a writable folder."):
            tmp = tempfile.mkdtemp(prefix="sd-parse-")
            mdl = Path(tmp) / "model.mdl"
            mdl.write_text(prepass.rewrite(source.text), encoding="utf-8")
        return _nesting(_parse_file(source, mdl), source)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


#: Deepest expression one equation may nest (calls, operators, parentheses).
#: Every later step walks expressions recursively (the sanitiser's copy, the
#: checks, both builders, Python's parser of the generated code, which stops
#: at 200 nested parentheses); 150 levels already exhausted Python's stack, so
#: a deeper equation is refused here, once, with its line. Written equations
#: rarely nest beyond 20.
MAX_NESTING = 100


def _nesting(abstract, source: Source):
    """``abstract``, when no equation nests deeper than :data:`MAX_NESTING`."""
    from .structure import children, line_of_definition

    for section in abstract.sections:
        for el in section.elements:
            for comp in el.components:
                depth, stack = 0, [(comp.ast, 0)]
                while stack and depth <= MAX_NESTING:      # iterative: no recursion here
                    node, d = stack.pop()
                    if hasattr(node, "__dataclass_fields__"):
                        d += 1
                        depth = max(depth, d)
                    if isinstance(node, (list, tuple)) or hasattr(node, "__dataclass_fields__"):
                        stack.extend((c, d) for c in children(node))
                if depth > MAX_NESTING:
                    line = line_of_definition(source.text, el.name)
                    raise SdInputError(
                        f"{source.path}{f':{line}' if line else ''}: the equation of "
                        f"{el.name!r} nests functions and operators more than {MAX_NESTING} "
                        "levels deep; split it into intermediate variables.")
    return abstract


def _parse_file(source: Source, mdl: Path):
    from pysd.translators.vensim.vensim_file import VensimFile

    with _LOCK, deep_recursion():
        _install_literal_eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                vf = VensimFile(mdl, encoding="utf-8")
                _parse_entries(vf)
                abstract = vf.get_abstract_model()
                material.fix(abstract)
                precedence.group(abstract)
                return abstract
            except RecursionError:
                raise SdInputError(f"{source.path}: an equation is nested too deeply to "
                                   "parse.") from None
            except Exception as exc:  # parsimonious, PySD and Python errors alike
                raise SdInputError(_message(source, exc, vf if "vf" in locals() else None)) \
                    from None


def _parse_entries(vf) -> None:
    """``vf.parse()``, reusing the entries this process parsed before
    (:mod:`sd.model.reparse`); PySD's own parse, with its errors, whenever
    that does not go through."""
    from .reparse import parse_sections

    vf.parse(parse_all=False)
    try:
        done = parse_sections(vf)
    except Exception:  # noqa: BLE001 - PySD's parse below reports the error
        done = False
    if not done:
        vf.parse()


def _parse_xmile(source: Source):
    """PySD's XMILE parser on the snapshot's bytes (already checked by
    :func:`sd.model.source.decode_xmile`), read by a parser that resolves no
    entity, loads no DTD and reaches no network."""
    from lxml import etree
    from pysd.translators.xmile.xmile_file import XmileFile

    class _Snapshot(XmileFile):
        def _get_root(self):
            parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                     huge_tree=False, recover=True, encoding="utf-8")
            root = etree.fromstring(source.data, parser=parser)
            if root is None or not str(root.tag).endswith("xmile"):
                raise SdInputError(f"{source.path}: not an XMILE model (the XML root is not "
                                   "<xmile>).")
            _xmile_structure(source, root)
            return root

    with _LOCK, deep_recursion():
        _install_literal_eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                xf = _Snapshot(source.path)
                xf.parse()
                return xf.get_abstract_model()
            except RecursionError:
                raise SdInputError(f"{source.path}: an equation is nested too deeply to "
                                   "parse.") from None
            except SdInputError:
                raise
            except Exception as exc:  # noqa: BLE001 - lxml, parsimonious and PySD errors
                raise SdInputError(_xmile_message(source, exc)) from None


#: XMILE variable elements PySD reads from ``<model><variables>``.
_XMILE_VARIABLES = ("aux", "flow", "stock", "gf")


def _local(tag) -> str:
    return str(tag).rsplit("}", 1)[-1]


def _xmile_structure(source: Source, root) -> None:
    """What PySD's XMILE reader would silently skip, refused or brought into
    the shape it reads: variables written directly in ``<model>`` (Stella 10
    files) are moved into a ``<variables>`` element; several models (modules)
    and macros are refused by name; an equation ``???`` (what xmutil writes for
    what it could not translate) is refused naming the variable and line."""
    from lxml import etree

    models = [el for el in root if _local(el.tag) == "model"]
    if len(models) > 1:
        names = [m.get("name") or "(unnamed)" for m in models]
        raise SdInputError(f"{source.path}: the file has {len(models)} models ({', '.join(names)}): "
                           "XMILE modules are not supported (PySD reads one model); flatten "
                           "the modules into one model.")
    for el in root.iter():
        if _local(el.tag) == "macro":
            raise SdInputError(
                f"{source.path}:{el.sourceline}: XMILE macro {el.get('name')!r}: macros in XMILE "
                "files are not supported (PySD does not read them); save the model with the "
                "macro expanded, or use the Vensim .mdl, where macros are supported.")
    _apply_to_all(root)
    for model in models:
        loose = [el for el in model if _local(el.tag) in _XMILE_VARIABLES]
        if loose:
            variables = next((el for el in model if _local(el.tag) == "variables"), None)
            if variables is None:
                variables = etree.SubElement(model, f"{{{root.nsmap.get(None, '')}}}variables"
                                             if root.nsmap.get(None) else "variables")
            for el in loose:
                variables.append(el)
        for el in model.iter():
            if _local(el.tag) == "eqn" and (el.text or "").strip() == "???":
                owner = el.getparent()
                while owner is not None and owner.get("name") is None:
                    owner = owner.getparent()
                owner = owner if owner is not None else el
                raise SdInputError(
                    f"{source.path}:{el.sourceline}: the equation of {owner.get('name')!r} is "
                    "'???', a placeholder for an equation the exporting tool could not "
                    "translate; the model is incomplete (it would not run in Stella either).")


_WILDCARD = re.compile(r"([A-Za-z_][\w.$]*)\s*\[([^\[\]]*\*[^\[\]]*)\]")


def _xmile_key(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


def _apply_to_all(root) -> None:
    """XMILE's wildcard ``x[*]`` (every element of that dimension: ``SUM(x[*])``)
    written as PySD's XMILE grammar reads it, ``x[Dim!]``, from the variable's
    own ``<dimensions>``; a wildcard whose dimension is not known is left for
    PySD to report."""
    dims: dict = {}
    for el in root.iter():
        if _local(el.tag) in _XMILE_VARIABLES and el.get("name"):
            found = [d.get("name") for d in el.iter() if _local(d.tag) == "dim" and d.get("name")]
            if found:       # (a view's element of the same name has none)
                dims[_xmile_key(el.get("name"))] = found

    def replace(m):
        names = dims.get(_xmile_key(m.group(1)))
        parts = [p.strip() for p in m.group(2).split(",")]
        if not names or len(names) != len(parts):
            return m.group(0)
        return m.group(1) + "[" + ", ".join(f"{d}!" if p == "*" else p
                                             for p, d in zip(parts, names)) + "]"

    for el in root.iter():
        if _local(el.tag) == "eqn" and el.text and "*" in el.text:
            el.text = _WILDCARD.sub(replace, el.text)


def _xmile_message(source: Source, exc: Exception) -> str:
    text, pos = getattr(exc, "text", None), getattr(exc, "pos", None)
    near = ""
    if isinstance(text, str) and isinstance(pos, int):
        near = f" near {text[max(0, pos - 30):pos + 30].strip()!r}"
        found = source.text.find(text.strip()[:60]) if text.strip() else -1
        if found >= 0:
            return (f"{source.path}:{source.text.count(chr(10), 0, found) + 1}: an equation "
                    f"PySD cannot parse{near} ({type(exc).__name__}: {_short(exc)}).")
    return (f"{source.path}: PySD could not read the XMILE model{near} "
            f"({type(exc).__name__}: {_short(exc)}).")


#: A call with extra outputs, ``SSTATS(data, sim : r2, mae, ...)`` (Vensim macros).
_OUTPUT_CALL = re.compile(r"([A-Za-z_][\w ]*)\((?:[^()]|\([^()]*\))*?:(?:[^()]|\([^()]*\))*\)")


def _message(source: Source, exc: Exception, vf) -> str:
    path = source.path
    text, pos = getattr(exc, "text", None), getattr(exc, "pos", None)
    if isinstance(text, str) and isinstance(pos, int):
        line = line_of(source.text, text, pos)
        where = f"{path}:{line}" if line else str(path)
        snippet = text[max(0, pos - 30):pos + 30].replace("\n", " ").strip()
        outputs = _OUTPUT_CALL.search(text)
        if outputs:
            name = outputs.group(1).strip()
            calls = [m for m in re.finditer(re.escape(name) + r"\s*\(", source.text)
                     if not source.text[:m.start()].rstrip().endswith(":MACRO:")]
            if calls:
                where = f"{path}:{source.text.count(chr(10), 0, calls[0].start()) + 1}"
            return (f"{where}: {name}(... : ...) calls a macro with extra "
                    "outputs (the names after ':'), which neither PySD nor sd supports; give "
                    "each output its own macro, or compute it in the model.")
        return (f"{where}: Vensim syntax PySD cannot parse near {snippet!r} "
                f"({type(exc).__name__}: {_short(exc)}). Check the equation's parentheses, "
                "operators and the ~ and | separators.")
    culprit = _failing_element(vf)
    if culprit is not None:
        line = line_of(source.text, culprit, 0)
        where = f"{path}:{line}" if line else str(path)
        name = re.split(r"[=(:\[]", culprit, maxsplit=1)[0].strip()
        return (f"{where}: cannot read the equation of {name!r} ({type(exc).__name__}: "
                f"{_short(exc)}).")
    return f"{path}: PySD could not parse the model ({type(exc).__name__}: {_short(exc)})."


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split()).split(" Parse tree:")[0]
    return text if len(text) <= 200 else text[:197] + "..."


def _failing_element(vf) -> str | None:
    """The equation text of the first element that fails to parse, if the
    failure was inside one element."""
    for section in getattr(vf, "sections", None) or []:
        try:
            section.parse(parse_all=False)
        except Exception:  # noqa: BLE001 - the section itself is broken
            return None
        for element in section.elements:
            try:
                component = element.parse()
                if hasattr(component, "parse"):
                    component.parse()
            except Exception:  # noqa: BLE001 - this is the one
                return element.equation
    return None


def line_of(source: str, text: str, pos: int) -> int | None:
    """Line in ``source`` where character ``pos`` of the element ``text`` lies.

    PySD hands the parser an element with its whitespace normalised, so the
    element is found again by its tokens, whatever blanks separate them.
    """
    tokens = text.split()
    if not tokens:
        return None
    found = re.search(r"\s*".join(map(re.escape, tokens)), source)
    if found is None:
        return None
    # Count the tokens before ``pos`` to land on the offending line.
    before = len(text[:pos].split())
    inner = re.match(r"\s*".join(map(re.escape, tokens[:before])) or "", source[found.start():])
    offset = found.start() + (inner.end() if inner else 0)
    return source.count("\n", 0, offset) + 1
