"""Step 1 of loading: the bytes of a ``.mdl`` -> one text in one known encoding.

Vensim writes UTF-8 (recent versions put ``{UTF-8}`` on the first line) and,
in older versions without that header, the Windows Latin-1 code page. This
module decides the encoding once, for every later step (parser, variable
table, translation, engine): a UTF-8 byte-order mark is dropped, ``{UTF-8}``
means strict UTF-8, no header means UTF-8 if the bytes are valid UTF-8 and
Latin-1 (Windows-1252) otherwise, and any other declared encoding (``{UTF-7}``,
``{UTF-16}``, ...) is refused: an encoding with escape sequences could hide
text (``+ACIAIgAi-`` is ``\"\"\"`` in UTF-7) from every check made on the decoded
text's neighbours, and Vensim never writes one.

XMILE files (``.xmile``, ``.stmx``, ``.itmx``: Stella, iThink, Simlin) are XML
in UTF-8. They are checked before anything parses them for real: no document
type declaration at all (so no entity, internal or external, and no entity
expansion bomb), well-formed XML (:func:`decode_xmile`).

The result is a :class:`Source`: a snapshot of the file as it was read, which
every later use of the model (every engine, every run) works from, whatever
happens to the file afterwards.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from .._common import latin1_text
from ..errors import SdInputError

#: First-line encoding declarations Vensim writes, and what they mean here.
_UTF8_NAMES = {"utf-8", "utf8"}
_LATIN1_NAMES = {"latin-1", "latin1", "iso-8859-1", "iso8859-1", "cp1252", "windows-1252"}
_HEADER = re.compile(r"\A[ \t]*\{([^}\r\n]{0,40})\}")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Source:
    """A model file's content as read once.

    Attributes
    ----------
    path : Path
        The file (absolute); relative external files resolve beside it.
    data : bytes
        The bytes as read (the model hash is theirs).
    text : str
        The decoded text with ``\\n`` line ends: what the parser reads.
    encoding : str
        ``"utf-8"`` or ``"latin-1"`` (what the file was decoded from).
    kind : str
        ``"mdl"`` (Vensim) or ``"xmile"``.
    """

    path: Path
    data: bytes = field(repr=False)
    text: str = field(repr=False)
    encoding: str
    kind: str = "mdl"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


#: File suffixes of XMILE models (lower case).
XMILE_SUFFIXES = (".xmile", ".stmx", ".itmx")


def read(path: Path) -> Source:
    """Read ``path`` once and decode it (see the module docstring)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SdInputError(f"{path}: cannot read the model file ({exc.strerror}).") from None
    if path.suffix.lower() in XMILE_SUFFIXES:
        return decode_xmile(data, path)
    return decode(data, path)


def decode_xmile(data: bytes, path: Path) -> Source:
    """Check and decode the bytes of an XMILE file: UTF-8 XML with no document
    type declaration. XMILE needs none, and a DTD is where entities live: the
    way an XML file makes its parser read other files (external entities) or
    expand into gigabytes (nested entities). Without one neither can happen;
    the parser (:mod:`sd.model.parse`) also resolves no entity and reaches no
    network. (Files written by xmutil use the ``isee:`` prefix without
    declaring it, so they are parsed leniently, as PySD does.)"""
    if not data.strip():
        raise SdInputError(f"{path}: the file is empty; expected an XMILE model (XML).")
    body = data[len(_BOM):] if data.startswith(_BOM) else data
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        raise SdInputError(f"{path}:{line}: an XMILE file is UTF-8, but byte {exc.start} is "
                           "not valid UTF-8. Save it again from the modelling program.") \
            from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    declared = re.search(r"<\?xml[^>]*encoding\s*=\s*[\"']([^\"']+)", text[:200])
    if declared and declared.group(1).strip().lower() not in _UTF8_NAMES:
        raise SdInputError(f"{path}:1: the file declares the encoding {declared.group(1)!r}; "
                           "XMILE files are UTF-8. Save it again from the modelling program.")
    found = re.search(r"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST)", text, re.IGNORECASE)
    if found:
        line = text.count("\n", 0, found.start()) + 1
        raise SdInputError(f"{path}:{line}: the file declares a document type or entities "
                           f"(<!{found.group(1)}); XMILE models need neither, and sd does not "
                           "read them (they can make a parser read other files or expand "
                           "without bound).")
    if not re.search(r"<\s*xmile[\s>]", text):
        raise SdInputError(f"{path}: no <xmile> element; expected an XMILE model (Stella, "
                           "iThink, Simlin).")
    return Source(path=path.resolve(), data=data, text=text, encoding="utf-8", kind="xmile")


def decode(data: bytes, path: Path) -> Source:
    """Decode the bytes of a model file; :class:`SdInputError` if they are not
    a UTF-8 or Latin-1 Vensim text file."""
    if not data.strip():
        raise SdInputError(f"{path}: the file is empty; expected Vensim equations (save the "
                           "model from Vensim as a text .mdl).")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SdInputError(f"{path}: the file is UTF-16 text; Vensim model files are UTF-8 or "
                           "Latin-1. Save it again from Vensim, or convert it to UTF-8.")
    if b"\x00" in data:
        raise SdInputError(f"{path}: not a text file (it holds NUL bytes); Vensim's binary "
                           ".vmf/.vpm formats are not read: save the model from Vensim as a "
                           "text .mdl.")
    body = data[len(_BOM):] if data.startswith(_BOM) else data
    head = _HEADER.match(body[:64].decode("latin-1"))
    declared = head.group(1).strip().lower() if head else None
    if declared is not None and declared not in _UTF8_NAMES | _LATIN1_NAMES:
        raise SdInputError(
            f"{path}:1: the file declares the encoding {{{head.group(1)}}}; sd reads Vensim "
            "files in UTF-8 or Latin-1 only (what Vensim writes). Save the model again from "
            "Vensim, or convert it to UTF-8 and put {UTF-8} on its first line.")
    if declared in _LATIN1_NAMES:
        text, encoding = _latin1(body), "latin-1"
    else:
        try:
            text, encoding = body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError as exc:
            if declared is not None or data.startswith(_BOM):
                line = body.count(b"\n", 0, exc.start) + 1
                raise SdInputError(
                    f"{path}:{line}: the file says it is UTF-8 but byte {exc.start} is not "
                    "valid UTF-8. Save it again from Vensim, or convert it to UTF-8.") from None
            text, encoding = _latin1(body), "latin-1"
    # the parser is told the encoding, so a {header} stays as written (it is
    # skipped by PySD's grammar) and line numbers match the file's
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return Source(path=path.resolve(), data=data, text=text, encoding=encoding)


def _latin1(data: bytes) -> str:
    """Windows-1252, Vensim's Latin-1 on Windows (one decoder for every file sd reads)."""
    return latin1_text(data)
