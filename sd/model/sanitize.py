"""Step 3 of loading: make every text of the abstract model safe to generate code from.

PySD's builder writes some texts of the model into the generated module with
``repr`` (variable names, units) and others between bare quotes: subscript
and macro names, the file, sheet and cell arguments of GET XLS/DIRECT
functions, the names of data variables, keywords, and the documentation (in
a docstring). A quote, a backslash or a line break in one of those closes
the literal and the rest of the text becomes code. So before anything is
built, every text of the model is one of:

* documentation and units: *made harmless* in the copy handed to the builder
  (quotes, backslashes, control, format and line-separator characters
  replaced), while the variable table keeps the original text;
* a variable name: any printable text (the builder only ever writes it with
  ``repr``, and turns it into an ASCII identifier);
* a file argument of GET XLS/DIRECT: resolved beside the ``.mdl``, required
  to exist, hashed (it is part of the cache key) and replaced by a fixed name
  (``ext/<hash><suffix>``) under which a copy sits beside the translation;
* anything else: *plain* (no quote, backslash, control, format or separator
  character), or the model is refused naming the variable.

Numbers must be finite (``1e400`` is refused; ``:NA:`` stays NaN).
The input abstract model is not modified: :func:`prepare` returns a copy.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SdInputError
from .source import Source
from .structure import line_of_definition

#: Unicode categories never allowed in a text that reaches generated code:
#: controls (NUL, newline...), format characters (bidi overrides...),
#: surrogates, private use, unassigned, line and paragraph separators.
_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
#: The builder writes these texts between single quotes (``'%s'``, ``r'%s'``):
#: a single quote or a backslash would end or escape the literal; a double
#: quote cannot.
_QUOTES = "'\\"
#: File suffixes kept on the stored copy of an external file (PySD picks the
#: reader by suffix).
_SUFFIX_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789")


@dataclass(frozen=True)
class External:
    """One external data file a model reads (GET XLS/DIRECT ...).

    Attributes
    ----------
    arg : str
        The file argument as written in the model.
    path : Path
        Where it was found (relative arguments resolve beside the ``.mdl``).
    sha256 : str
        Hash of its bytes when the model was loaded.
    stored : str
        Its name in the translation (``ext/<hash><suffix>``).
    """

    arg: str
    path: Path
    sha256: str
    stored: str


@dataclass(frozen=True)
class Prepared:
    """The abstract model the builder may see, and the files it reads."""

    abstract: object
    externals: tuple


def unsafe_char(text: str, *, quotes: bool = True) -> str | None:
    """Describe the first character of ``text`` not allowed in a plain text
    (with ``quotes=False``, quotes and backslashes are allowed), or ``None``."""
    for ch in text:
        if (quotes and ch in _QUOTES) or unicodedata.category(ch) in _UNSAFE_CATEGORIES:
            return repr(ch) if ch in _QUOTES else f"{ch!r} (U+{ord(ch):04X})"
    return None


def harmless(text: str) -> str:
    """Documentation text that cannot end a string literal or docstring:
    double quotes become single quotes, backslashes slashes, unsafe
    characters blanks, and blanks are collapsed."""
    out = []
    for ch in text:
        if ch == '"':
            out.append("'")
        elif ch == "\\":
            out.append("/")
        elif unicodedata.category(ch) in _UNSAFE_CATEGORIES:
            out.append(" ")
        else:
            out.append(ch)
    return " ".join("".join(out).split())


def prepare(abstract, source: Source) -> Prepared:
    """Check every text of ``abstract`` and return the copy to build from.

    Raises
    ------
    SdInputError
        A text that would reach generated code unescaped holds a quote,
        backslash or control character; a number is infinite; an external
        file is missing. The message names the file and the variable.
    """
    work = copy.deepcopy(abstract)
    files = _Files(source)
    for section in work.sections:
        where = f"{source.path}: macro {section.name!r}" if section.type != "main" else \
            str(source.path)
        if section.type != "main":
            _plain(section.name, where, "the macro name")
            for p in list(section.params) + list(section.returns):
                _plain(p, where, "a macro argument")
        known = {_clean(el.name) for el in section.elements}
        for rng in section.subscripts:
            w = f"{where}: subscript range {rng.name!r}"
            _plain(rng.name, w, "the range name")
            if isinstance(rng.subscripts, dict):
                rng.subscripts = dict(rng.subscripts)
                rng.subscripts["file"] = files.store(rng.subscripts.get("file"), w)
                _walk({k: v for k, v in rng.subscripts.items() if k != "file"}, w)
            else:
                _walk(rng.subscripts, w)
            _walk(rng.mapping, w)
            known.add(_clean(rng.name))
        for el in section.elements:
            at = _Deferred(_located, where, source.text, el.name) if section.type == "main" \
                else where
            _element(el, at, known, files)
        # reality checks and test inputs are never built; keep them out of reach
        section.constraints = []
        section.test_inputs = []
    return Prepared(abstract=work, externals=tuple(files.found.values()))


class _Deferred:
    """A text for error messages, made only when a message is written: finding
    the line of a definition searches the whole file (0.7 s for World3's 315
    variables when done for every one of them up front)."""

    __slots__ = ("_make", "_args", "_text")

    def __init__(self, make, *args):
        self._make, self._args, self._text = make, args, None

    def __str__(self) -> str:
        if self._text is None:
            self._text = self._make(*self._args)
        return self._text

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def _located(where: str, text: str, name: str) -> str:
    line = line_of_definition(text, name)
    return f"{where}:{line}" if line else where


def _element(el, where: str, known: set, files: "_Files") -> None:
    from pysd.translators.structures.abstract_model import AbstractData

    w = _Deferred(lambda: f"{where}: variable {el.name!r}")
    bad = unsafe_char(el.name, quotes=False)
    if bad:
        raise SdInputError(f"{w}: the name holds the character {bad}; variable names are "
                           "printable text on one line.")
    if any(isinstance(c, AbstractData) for c in el.components):
        _plain(el.name, w, "the name of a data variable")
    el.units = harmless(el.units or "")
    el.documentation = harmless(el.documentation or "")
    if el.limits is not None:
        for v in el.limits:
            if v is not None and not isinstance(v, float):
                raise SdInputError(f"{w}: the range in the units field must hold numbers.")
    for comp in el.components:
        for field in dataclasses.fields(comp):
            value = getattr(comp, field.name)
            if field.name == "ast":
                setattr(comp, field.name, _ast(value, w, known, files))
            else:
                _walk(value, w)


def _ast(node, where: str, known: set, files: "_Files"):
    """Check (and return, with file arguments replaced) one expression tree."""
    from pysd.translators.structures import abstract_expressions as ae

    if isinstance(node, (ae.GetDataStructure, ae.GetLookupsStructure, ae.GetConstantsStructure)):
        node = dataclasses.replace(node, file=files.store(node.file, where))
    if isinstance(node, ae.ReferenceStructure):
        # a variable's own name may hold quotes: the builder turns it into an
        # ASCII identifier; anything else named here must be plain
        if node.reference not in known:
            _plain(node.reference, where, "the name")
        _walk(node.subscripts, where)
        return node
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        for field in dataclasses.fields(node):
            if isinstance(node, (ae.GetDataStructure, ae.GetLookupsStructure,
                                 ae.GetConstantsStructure)) and field.name == "file":
                continue
            value = getattr(node, field.name)
            new = _ast_value(value, where, known, files)
            if new is not value:
                object.__setattr__(node, field.name, new)
        return node
    return _ast_value(node, where, known, files)


def _ast_value(value, where, known, files):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _ast(value, where, known, files)
    if isinstance(value, (list, tuple)):
        items = [_ast_value(v, where, known, files) for v in value]
        return type(value)(items) if isinstance(value, list) else tuple(items)
    _walk(value, where)
    return value


def _walk(value, where: str) -> None:
    """Every leaf must be a plain text, a finite number (or NaN), or None."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        _plain(value, where, "the name or argument")
        return
    if isinstance(value, (int, float, np.number)):
        if np.isinf(value):
            raise SdInputError(f"{where}: a number is out of range (infinite); the largest "
                               "finite value is about 1.8e308.")
        return
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "fiub":
            raise SdInputError(f"{where}: an array of {value.dtype} is not a Vensim value.")
        if np.isinf(value.astype(float)).any():
            raise SdInputError(f"{where}: a number is out of range (infinite); the largest "
                               "finite value is about 1.8e308.")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            _walk(k, where)
            _walk(v, where)
        return
    if isinstance(value, (list, tuple, set)):
        for v in value:
            _walk(v, where)
        return
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            _walk(getattr(value, field.name), where)
        return
    raise SdInputError(f"{where}: unexpected {type(value).__name__} in the parsed model.")


def _plain(text, where: str, what: str) -> None:
    if not isinstance(text, str):
        return _walk(text, where)
    bad = unsafe_char(text)
    if bad:
        raise SdInputError(
            f"{where}: {what} {text!r} holds the character {bad}; names of subscripts, "
            "macros and data variables and the text arguments of GET XLS/DIRECT functions "
            "may not hold single quotes, backslashes or control characters. Rename it in "
            "Vensim.")


def _clean(name: str) -> str:
    return name.lower().replace(" ", "_")


class _Files:
    """External files: resolved beside the model, hashed, given a stored name."""

    def __init__(self, source: Source):
        self.source = source
        self.found: dict[str, External] = {}
        self.aliases = aliases(source.text)

    def store(self, arg, where: str) -> str:
        if not isinstance(arg, str) or not arg.strip():
            raise SdInputError(f"{where}: a GET XLS/DIRECT function has no file name.")
        if arg.startswith("?"):
            alias = self.aliases.get(arg[1:].strip().lower())
            if alias is None:
                raise SdInputError(
                    f"{where}: the file reference {arg!r} names a Vensim data alias that the "
                    "model's settings do not define (Vensim keeps them as '30:?name=file' "
                    "lines after the sketch); write the file's name instead.")
            arg = alias
        bad = unsafe_char(arg, quotes=False) or (unsafe_char(arg.replace("\\", "/")))
        if bad:
            raise SdInputError(f"{where}: the file name {arg!r} holds the character {bad}.")
        rel = Path(arg.replace("\\", "/"))
        path = (rel if rel.is_absolute() else self.source.path.parent / rel).resolve()
        if not path.is_file():
            what = ("is a folder" if path.is_dir() else
                    "is not a regular file (a pipe, device or socket)" if path.exists() else
                    "does not exist")
            raise SdInputError(f"{where}: reads the file {arg!r}, which {what} "
                               f"(looked for {path}).")
        key = str(path)
        if key not in self.found:
            digest = _sha256(path)
            suffix = path.suffix.lower()
            if not suffix[1:] or set(suffix[1:]) - _SUFFIX_CHARS or len(suffix) > 9:
                suffix = ""
            self.found[key] = External(arg=arg, path=path, sha256=digest,
                                       stored=f"ext/{digest[:24]}{suffix}")
        return self.found[key].stored


def aliases(text: str) -> dict[str, str]:
    """Vensim's data aliases: ``?name`` in a GET XLS/DIRECT function stands for
    the file given by a ``30:?name=file`` line of the settings after the
    sketch (lower-case name -> file)."""
    settings = text.rsplit("///---\\\\\\", 1)[-1] if "///---\\\\\\" in text else ""
    out = {}
    for line in settings.splitlines():
        if line.startswith("30:?") and "=" in line:
            name, _, file = line[4:].partition("=")
            out[name.strip().lower()] = file.strip()
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
