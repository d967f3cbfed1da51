"""Data files: the values of data variables that have no equation.

In Vensim a data variable may be declared without an equation
(``Sales Data :INTERPOLATE: ~ units ~ |``, or ``Sales Data ~ units ~ |`` in a
``.mdl`` with a data section); its values come from the data sources chosen
when the simulation starts (a ``.vdf`` or a ``.tab``/``.csv`` export of one).
``sd`` takes those files with ``sd run --data FILE`` or
``sd.load(path, data_files=[...])``: each is read once (a snapshot, like the
model), hashed into the model's key and parsed by PySD's reader (pandas) as
data. ``.vdf`` is Vensim's binary format: export it from Vensim as ``.tab``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SdInputError

#: Suffixes PySD's data reader accepts (time in the first column or row).
SUFFIXES = (".tab", ".csv")


@dataclass(frozen=True)
class DataFile:
    """One data file as read when the model was loaded.

    Attributes
    ----------
    path : Path
        Where it was read (absolute).
    sha256 : str
        Hash of its bytes.
    data : bytes
        Its bytes: every run reads these, not the file as it is now.
    """

    path: Path
    sha256: str
    data: bytes = field(repr=False)


def read(paths) -> tuple[DataFile, ...]:
    """Read each data file once; :class:`SdInputError` naming a missing or
    unreadable file or an unsupported format."""
    out = []
    for p in paths or ():
        path = Path(p)
        if path.suffix.lower() == ".vdf":
            raise SdInputError(f"{path}: .vdf is Vensim's binary data format, which sd does "
                               "not read; export the dataset from Vensim as a .tab (or .csv) "
                               "file and give that file.")
        if path.suffix.lower() not in SUFFIXES:
            raise SdInputError(f"{path}: a data file must be a Vensim .tab or .csv export "
                               "(time in the first column or row, one column per variable).")
        if path.exists() and not path.is_file():       # a pipe blocks, /dev/zero never ends
            raise SdInputError(f"{path}: is not a regular file (a folder, device or pipe); "
                               "give the .tab or .csv file itself.")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SdInputError(f"{path}: cannot read the data file ({exc.strerror}).") from None
        _check_times(path, data)
        out.append(DataFile(path.resolve(), hashlib.sha256(data).hexdigest(), data))
    return tuple(out)


def _check_times(path: Path, data: bytes) -> None:
    """The time axis (first row or first column named Time) holds finite numbers,
    each once: PySD's reader took ``1e309`` and two rows for one time silently
    (a step in the data at an ambiguous time)."""
    text = data.decode("utf-8-sig", errors="replace")
    sep = "\t" if path.suffix.lower() == ".tab" else ","
    rows = [line.split(sep) for line in text.splitlines() if line.strip()]
    if not rows or rows[0][0].strip().strip('"').lower() != "time":
        return                      # no time axis to check here: PySD's reader says what is wrong
    # across: variables in rows (the second line starts with a name, not a time)
    across = len(rows) == 1 or _number(rows[1][0]) is None
    cells = [(1, c) for c in rows[0][1:]] if across else \
        [(i, r[0]) for i, r in enumerate(rows[1:], start=2)]
    seen: dict = {}
    for line, cell in cells:
        t = _number(cell)
        if t is None:
            continue                # not a number: PySD's reader names it
        if t != t or t in (float("inf"), float("-inf")):
            raise SdInputError(f"{path}:{line}: the time {cell.strip()[:30]!r} is not a finite "
                               "number.")
        if t in seen:
            also = "earlier in the Time row" if across else f"also at line {seen[t]}"
            raise SdInputError(f"{path}:{line}: the time {t:g} appears twice ({also}); each "
                               "time may hold one value per variable.")
        seen[t] = line


def _number(text: str):
    try:
        return float(text.strip().strip('"'))
    except ValueError:
        return None


def without_equation(abstract) -> list[str]:
    """Vensim names of the data variables of the main section that have no
    equation (their values must come from a data file)."""
    from pysd.translators.structures.abstract_expressions import DataStructure
    from pysd.translators.structures.abstract_model import AbstractData

    return [el.name for el in abstract.sections[0].elements
            if any(isinstance(c, AbstractData) and (c.ast is None or isinstance(c.ast, DataStructure))
                   for c in el.components)]


def check(model_path: Path, abstract, files: tuple) -> None:
    """Refuse data files for a model without data variables, and a model whose
    data variables have no equation and no data file (at run time)."""
    needed = without_equation(abstract)
    if files and not needed:
        raise SdInputError(f"{model_path}: data files were given ({', '.join(f.path.name for f in files)}) "
                           "but the model has no data variable without an equation to read "
                           "them.")


def require(model_path: Path, abstract, files: tuple) -> None:
    """:class:`SdInputError` when the model needs data files and has none."""
    needed = without_equation(abstract)
    if needed and not files:
        shown = ", ".join(repr(n) for n in needed[:5]) + (" ..." if len(needed) > 5 else "")
        raise SdInputError(
            f"{model_path}: the data variable(s) {shown} have no equation: Vensim reads their "
            "values from the data sources given at simulation time. Give the data file "
            "(a .tab or .csv export) with 'sd run MODEL --data FILE' or "
            "sd.load(path, data_files=[...]).")
