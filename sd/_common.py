"""What every stage shares, each defined once: the control variables, number
parsing, spec-table helpers, reading text files, file hashing, atomic output
files and the one rule that turns a name read from a file into a file name.

Atomic output: every file is written under a temporary name, then renamed, so
a reader (or an interrupted run) never sees a half-written result.
"""
from __future__ import annotations

import errno
import hashlib
import itertools
import json
import math
import os
import re
import stat
import tempfile
import unicodedata
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

from .errors import SdInputError, suggest

# -- the control variables -------------------------------------------------------
#: Vensim's control variables: the key a scenario or spec uses -> Vensim name,
#: in Vensim's order (the engine indexes its control vector in this order).
TIME_KEYS = {
    "initial_time": "INITIAL TIME",
    "final_time": "FINAL TIME",
    "time_step": "TIME STEP",
    "saveper": "SAVEPER",
}
#: Vensim names of the control variables, present in every model.
CONTROL = tuple(TIME_KEYS.values())


def time_key(name: str, where: str) -> str:
    """The :data:`TIME_KEYS` key of ``name`` ("FINAL TIME", "final_time", ...).

    Raises :class:`SdInputError` naming ``where`` for anything else.
    """
    key = "_".join(str(name).lower().replace("_", " ").split())
    if key not in TIME_KEYS:
        raise SdInputError(f"{where}: unknown setting {name!r}; expected one of "
                           + ", ".join(TIME_KEYS) + "." + suggest(key, TIME_KEYS))
    return key


def time_text(t: float) -> str:
    """A model time as text, exact to the saving grid (1993.25, 1985.0078125, 2000)
    and free of float noise (15 significant digits)."""
    return f"{float(t):.15g}"


def number_text(v: float, digits: int = 4) -> str:
    """A value for a table: ``digits`` significant digits, but never fewer than
    two decimals above 100, so a year reads 1993.25, not 1993 (``nan`` as is)."""
    v = float(v)
    if not math.isfinite(v) or v == 0:
        return f"{v:g}"
    return f"{v:.{max(digits, int(math.log10(abs(v))) + 3)}g}"


# -- numbers -------------------------------------------------------------------------
def number(value, where: str, *, strings: bool = False) -> float:
    """``value`` as a finite float, or :class:`SdInputError` naming ``where``.

    Numbers (not booleans) are accepted; text such as ``"3.5"`` only with
    ``strings=True`` (values read from ``.cin``, CSV or ``--set``, not TOML).
    """
    ok_types = (int, float, str) if strings else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types):
        raise SdInputError(f"{where}: expected a number, got {value!r}.")
    try:
        result = float(value)
    except ValueError:
        raise SdInputError(f"{where}: expected a number, got {value!r}.") from None
    if not math.isfinite(result):
        raise SdInputError(f"{where}: expected a finite number, got {value!r}.")
    return result


def whole(value, where: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int (a TOML integer, or a float with no fraction).

    ``inf``, ``nan`` (TOML accepts both) and floats too large to be exact
    integers are refused, as is anything outside ``[minimum, maximum]``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SdInputError(f"{where} = {value!r} must be a whole number.")
    if not math.isfinite(value):
        raise SdInputError(f"{where} = {value!r} must be a finite whole number.")
    if minimum is not None and value < minimum:
        raise SdInputError(f"{where} = {value!r} must be at least {minimum}.")
    if maximum is not None and value > maximum:
        raise SdInputError(f"{where} = {value!r} must be at most {maximum}.")
    if value != int(value) or (isinstance(value, float) and abs(value) > 2 ** 53):
        raise SdInputError(f"{where} = {value!r} must be a whole number.")
    return int(value)


#: Largest seed every random generator sd hands one to accepts (SALib's
#: Morris sampler calls ``numpy.random.seed``, which needs < 2**32).
MAX_SEED = 2 ** 32 - 1


def flag(value, where: str) -> bool:
    """A TOML boolean: ``bool("no")`` is True, so text is refused, not converted."""
    if not isinstance(value, bool):
        raise SdInputError(f"{where} = {value!r} must be true or false.")
    return value


def power_of_two(value: int, where: str) -> int:
    """``value`` if it is a power of 2 (or 0: off), else a message naming the
    nearest ones (Sobol' sequences keep their balance only for 2^m points)."""
    if value and value & (value - 1):
        low = 1 << (value.bit_length() - 1)
        raise SdInputError(f"{where} = {value} must be a power of 2 (Sobol' points are balanced "
                           f"only in blocks of 2^m); the nearest are {low} and {2 * low}.")
    return value


def seed(value, where: str) -> int:
    """A random seed: a whole number in ``[0, MAX_SEED]``."""
    return whole(value, where, 0, MAX_SEED)


#: Default bound on the runs of one design or fit (``SD_RUN_LIMIT`` raises it).
DEFAULT_RUN_LIMIT = 10**7


def run_limit() -> int:
    """Runs one design, optimisation or chain may ask for (``SD_RUN_LIMIT``):
    a spec asking for more is refused before anything is drawn or run."""
    return env_limit("SD_RUN_LIMIT", DEFAULT_RUN_LIMIT, "runs")


def env_limit(name: str, default: int, what: str) -> int:
    """A bound the user may raise with the environment variable ``name``."""
    env = os.environ.get(name, "").strip()
    if not env:
        return default
    try:
        value = int(float(env))
    except (ValueError, OverflowError):
        raise SdInputError(f"{name}={env!r}: expected a whole number of {what}.") from None
    if value < 1:
        raise SdInputError(f"{name}={env!r}: expected a positive number.")
    return value


# -- spec tables -----------------------------------------------------------------------
def table(raw: dict, key: str, where: str, allowed: Iterable[str] | None = None) -> dict:
    """The sub-table ``[key]`` of a spec (``{}`` when absent).

    With ``allowed``, a key outside it is refused with the nearest valid keys,
    so a typo never silently falls back to a default.
    """
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise SdInputError(f"{where}: '{key}' must be a table [{key}].")
    if allowed is not None:
        known_keys(value, allowed, f"{where} [{key}]")
    return value


def known_keys(raw: dict, allowed: Iterable[str], where: str) -> None:
    """Refuse a key of ``raw`` that is not in ``allowed``, suggesting the nearest."""
    allowed = tuple(allowed)
    for key in raw:
        if key not in allowed:
            raise SdInputError(f"{where}: unknown key {key!r}." + suggest(key, allowed)
                               + f" Known keys: {', '.join(allowed)}.")


def read_toml(path: str | os.PathLike, what: str) -> dict:
    """Parse a TOML file; a missing, non-UTF-8 or malformed file is an
    :class:`SdInputError` naming the file (and the line, where known).

    ``what`` names the file's role in the message ("Scenario file",
    "Calibration spec", ...).
    """
    import tomllib

    path = Path(path)
    if path.is_dir():
        raise SdInputError(f"{what} {path}: is a folder; expected a TOML file.")
    if path.exists() and not path.is_file():
        raise SdInputError(f"{what} {path}: is not a regular file (a pipe, device or socket); "
                           "expected a TOML file.")
    if not path.is_file():
        raise SdInputError(f"{what} not found: {path}.")
    text = read_text(path, what)
    _shallow_keys(text, path, what)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SdInputError(f"{path}: not valid TOML ({exc}).") from exc
    except RecursionError:
        raise SdInputError(f"{path}: not a {what.lower()}: its arrays or tables are nested "
                           "too deeply to read.") from None


#: Most parts a TOML key may have (``[explain.extra.NAME]`` has 3): tomllib's time
#: grows with the square of a key's depth (100,000 parts: minutes).
MAX_KEY_PARTS = 64
_KEY_DOTS = re.compile(r"^\s*\[*([^=\n\"']*(?:(?:\"[^\"\n]*\"|'[^'\n]*')[^=\n\"']*)*)",
                       re.MULTILINE)


def _shallow_keys(text: str, path: Path, what: str) -> None:
    """Refuse a key nested more than :data:`MAX_KEY_PARTS` deep (``a.a.a...``)
    before tomllib spends minutes on it."""
    for m in _KEY_DOTS.finditer(text):
        key = re.sub(r"\"[^\"\n]*\"|'[^'\n]*'", "", m.group(1))
        if key.count(".") >= MAX_KEY_PARTS:
            line = text.count("\n", 0, m.start()) + 1
            raise SdInputError(f"{path}:{line}: not a {what.lower()}: a key of more than "
                               f"{MAX_KEY_PARTS} dotted parts.")


# -- text files --------------------------------------------------------------------------
def read_text(path: str | os.PathLike, what: str, *, latin1: bool = False) -> str:
    """The text of a spec or data file, decoded once.

    UTF-8, with or without a byte-order mark. With ``latin1=True`` (files
    Vensim writes: ``.cin``, ``.voc``, ``.vpd``; older versions write them in
    the Windows Latin-1 code page) bytes that are not UTF-8 are read as
    Windows-1252, so accents survive; otherwise they are refused naming the
    file, line and column. NUL bytes (a binary file) are refused either way.
    """
    path = Path(path)
    try:
        data = regular_bytes(path)   # never a pipe or device: a read without end
    except OSError as exc:
        raise SdInputError(f"{what} {path}: cannot read it ({exc.strerror}).") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data:
        kind = "UTF-16 text" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "a binary file"
        line = data.count(b"\n", 0, max(data.find(b"\x00"), 0)) + 1
        raise SdInputError(f"{path}:{line}: {what} is {kind} (NUL bytes); expected UTF-8 text. "
                           "Save it again as UTF-8.")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if latin1:
            return latin1_text(data)
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SdInputError(
            f"{path}:{line}:{column}: {what} is not UTF-8 text (byte 0x{data[exc.start]:02x}); "
            "save it again as UTF-8 (in Excel: 'CSV UTF-8').") from None


def latin1_text(data: bytes) -> str:
    """Bytes as Windows-1252, Vensim's Latin-1 on Windows; the five bytes it
    leaves undefined decode as ISO Latin-1 (C1 controls), so every byte maps."""
    return data.decode("latin-1").translate(_CP1252)


def _cp1252_table() -> dict:
    table = {}
    for b in range(0x80, 0xA0):
        try:
            table[b] = bytes([b]).decode("cp1252")
        except UnicodeDecodeError:
            pass
    return table


_CP1252 = _cp1252_table()


# -- files ---------------------------------------------------------------------------------
def input_file(base: str | os.PathLike, value, where: str) -> Path:
    """The file a spec names (``value``, relative to the folder ``base``), resolved.

    Refused with a message naming ``where``: a value that is not text, a NUL
    or other control character (no file system path holds one), a missing
    file (with the nearest name in its folder), a folder, and anything that
    is not a regular file (a pipe would block the read forever, a device
    never ends).
    """
    if not isinstance(value, str) or not value.strip():
        raise SdInputError(f"{where} = {value!r}: expected a file name (text), e.g. "
                           "\"data/outcomes.csv\".")
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value):
        raise SdInputError(f"{where} = {value!r}: a file name holds no control or line-separator "
                           "character.")
    path = Path(value)
    path = (path if path.is_absolute() else Path(base) / path).resolve()
    if path.is_dir():
        raise SdInputError(f"{where} = {value!r}: {path} is a folder; expected a file.")
    if path.exists() and not path.is_file():
        raise SdInputError(f"{where} = {value!r}: {path} is not a regular file (a pipe, device "
                           "or socket).")
    if not path.is_file():
        near = ""
        if path.parent.is_dir():
            names = [f.name for f in itertools.islice(path.parent.iterdir(), 5000)]
            near = suggest(path.name, names)
        raise SdInputError(f"{where} = {value!r}: file not found ({path})." + near)
    return path


def regular_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of a regular file; :class:`OSError` for anything else.

    For files sd wrote itself and reads back (checkpoints, manifests, a
    finished calibration), which someone may have replaced: a pipe would
    block the read forever and a device never ends. The file is opened
    without blocking and checked on the open descriptor, so nothing can be
    swapped in between the check and the read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a folder, pipe or device)")
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read()
    finally:
        os.close(fd)


def read_json(path: str | os.PathLike):
    """JSON from a regular UTF-8 file sd wrote: :class:`OSError` when it cannot
    be read (or is not a regular file), :class:`ValueError` when it is not
    JSON, including arrays nested too deeply for the decoder."""
    text = regular_bytes(path).decode("utf-8")
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply to be sd's JSON") from None


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    # mkstemp makes the file private (0600); outputs get the usual umask mode.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# -- output names --------------------------------------------------------------------------
#: Device names Windows reserves whatever the extension: never a file or folder name.
_RESERVED = frozenset({"con", "prn", "aux", "nul", "conin$", "conout$",
                       *(f"{d}{i}" for d in ("com", "lpt") for i in "0123456789¹²³")})
#: Longest sanitised name, in UTF-8 bytes (file systems allow 255; a prefix,
#: a suffix and a temporary name's extras must still fit).
MAX_NAME_BYTES = 96


def safe_name(text: str, *, lower: bool = False) -> str:
    """A name read from a file (scenario, metric, variable, spec stem) as one
    harmless path component: the only way such a name becomes part of a path.

    Letters and digits stay (and ``-`` and ``.`` unless ``lower``); anything
    else -- ``/``, ``\\``, NUL, blanks, control characters -- becomes one ``_``.
    The result never starts with a dot (no ``..``, no hidden file), is never
    empty, never a device name Windows reserves (``CON``, ``NUL.txt``, ...),
    and at most :data:`MAX_NAME_BYTES` long: a longer name keeps its start and
    a hash of the whole, so distinct names stay distinct. ``lower=True`` (file
    names of Vensim names, compared as Vensim compares names) lower-cases it.
    """
    text = unicodedata.normalize("NFC", str(text))
    keep = "" if lower else "-."
    name = "".join(c if (c.isalnum() and c.isprintable()) or c in keep else "_" for c in text)
    name = re.sub(r"_+", "_", name).strip("_.-")
    name = name.lower() if lower else name
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    if not name:
        return f"_{digest}"
    base, dot, rest = name.partition(".")
    if base.lower() in _RESERVED:  # reserved whatever follows the first dot
        name = f"{base}_{dot}{rest}"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        head = name.encode("utf-8")[:MAX_NAME_BYTES - len(digest) - 1].decode("utf-8", "ignore")
        name = f"{head.rstrip('_.-')}_{digest}"
    return name


def distinct_names(names: Iterable[str], pattern: str, where: str) -> dict[str, str]:
    """``{name: file name}`` with ``pattern.format(safe_name(name, lower=True))``;
    :class:`SdInputError` naming ``where`` when two names give one file name.

    Called when a spec or command is read, before any run, so a collision is
    refused up front instead of one output overwriting another.
    """
    files: dict[str, str] = {}
    owner: dict[str, str] = {}
    for name in names:
        file = pattern.format(safe_name(name, lower=True))
        other = owner.setdefault(file.lower(), name)
        if other != name:
            raise SdInputError(f"{where}: {other!r} and {name!r} would both be written as "
                               f"{file}; rename one of them (file names keep only letters and "
                               "digits, in lower case).")
        files[name] = file
    return files


def netcdf_name(name: str) -> str:
    """A Vensim name as a NetCDF variable name (the file's attribute
    ``vensim_name`` keeps the original; :func:`netcdf_safe`).

    NetCDF refuses ``/`` (its group separator: a path inside the file),
    control characters, trailing blanks, a first character other than a
    letter, digit, ``_`` or non-ASCII (a quoted Vensim name starts with ``"``)
    and names over 255 bytes, and gives names back NFC-normalised. ``/``
    becomes the look-alike U+2215, a control character U+FFFD, a bad first
    character gets a ``_`` before it, the name is NFC-normalised, and a longer
    one keeps its start and a hash of the whole (distinct names stay distinct).
    """
    out = "".join("\u2215" if c == "/" else (c if c.isprintable() else "\ufffd") for c in name)
    out = unicodedata.normalize("NFC", out).rstrip()
    if not out or not (out[0].isalnum() or out[0] == "_" or ord(out[0]) > 127):
        out = "_" + out
    if len(out.encode("utf-8")) > _NETCDF_MAX_BYTES:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        head = out.encode("utf-8")[:_NETCDF_MAX_BYTES - len(digest) - 1].decode("utf-8", "ignore")
        out = f"{head.rstrip()}~{digest}"
    return out


#: NetCDF's NC_MAX_NAME is 256 bytes with the terminator.
_NETCDF_MAX_BYTES = 255


def netcdf_names(names) -> dict[str, str]:
    """``{name: NetCDF name}`` (:func:`netcdf_name`), all distinct."""
    names = list(names)
    out, taken = {}, set(names)
    for name in names:
        new = netcdf_name(name)
        while new != name and new in taken:
            new += "_"
        out[name] = new
        taken.add(new)
    return out


def netcdf_safe(ds):
    """``ds`` (an xarray Dataset) with every variable name NetCDF can store,
    the original Vensim name in the attribute ``vensim_name`` of each one
    renamed; :func:`vensim_names` undoes it."""
    renames = {k: v for k, v in netcdf_names(map(str, ds.variables)).items() if k != v}
    if not renames:
        return ds
    ds = ds.rename(renames)
    for old, new in renames.items():
        ds[new].attrs["vensim_name"] = old
    return ds


def vensim_names(ds):
    """Undo :func:`netcdf_safe` on a Dataset read from a file."""
    renames = {n: v.attrs["vensim_name"] for n, v in ds.variables.items()
               if isinstance(v.attrs.get("vensim_name"), str)}
    if not renames:
        return ds
    ds = ds.rename(renames)
    for name in renames.values():
        ds[name].attrs.pop("vensim_name", None)
    return ds


# -- deep equations ----------------------------------------------------------------
#: Python's recursion limit while model text and model code are parsed, checked and
#: imported. A long Vensim equation (a sum of 2,000 terms) is a syntax tree 2,000 deep,
#: over Python's default of 1,000 (a RecursionError). 20,000 is far below where the
#: C parser's stack runs out (measured above 30,000 levels, in a thread too).
DEEP_RECURSION = 20_000


@contextmanager
def deep_recursion(limit: int = DEEP_RECURSION):
    """Raise the recursion limit to ``limit`` (never lower it) for the block."""
    import sys

    before = sys.getrecursionlimit()
    sys.setrecursionlimit(max(before, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


# -- where a key of a TOML spec is -----------------------------------------------------
_HEADER = re.compile(r"^\s*(\[\[?)\s*(.+?)\s*\]\]?\s*(#.*)?$")


def _toml_parts(dotted: str) -> tuple[str, ...]:
    """``cases."León".years`` -> ("cases", "León", "years"): a dotted TOML key's parts."""
    return tuple(p.strip().strip('"').strip("'")
                 for p in re.findall(r'"[^"]*"|\'[^\']*\'|[^.]+', dotted))


class TomlLines:
    """Lines of a TOML spec's tables and keys, to locate a message ("spec.toml:12").

    ``where(("cases", "leon"), "years")`` is ``"spec.toml:12 [cases.leon] years"``
    (``index`` picks the n-th ``[[array]]`` table); without a line when the
    key is not written on a line of its own (it may come from an inline table).
    """

    def __init__(self, path: str | os.PathLike, text: str):
        self.path = Path(path)
        self.headers: list[tuple[tuple[str, ...], int]] = []   # (table, first line)
        self.keys: dict[tuple[int, str], int] = {}             # (header index, key) -> line
        current = -1
        for number, line in enumerate(text.splitlines(), start=1):
            head = _HEADER.match(line)
            if head and not line.lstrip().startswith(("#",)):
                self.headers.append((_toml_parts(head.group(2)), number))
                current = len(self.headers) - 1
                continue
            key = re.match(r'^\s*("[^"]*"|\'[^\']*\'|[A-Za-z0-9_.-]+)\s*=', line)
            if key:
                parts = _toml_parts(key.group(1))
                table = self.headers[current][0] if current >= 0 else ()
                self._add(current, table, parts, number)

    def _add(self, current: int, table: tuple, parts: tuple, number: int) -> None:
        # a dotted key `a.b = 1` inside [t] is also key `b` of table t.a
        self.keys.setdefault((current, parts[0]), number)
        if len(parts) > 1:
            self.headers.append((table + parts[:-1], number))
            self.keys.setdefault((len(self.headers) - 1, parts[-1]), number)

    def line(self, table: tuple[str, ...] = (), key: str | None = None,
             index: int = 0) -> int | None:
        """Line of ``key`` in ``table`` (of its header without ``key``), or None."""
        seen = -1
        for h, (name, number) in enumerate(self.headers if table else [((), 0)]):
            if name != tuple(table):
                continue
            seen += 1
            if seen != index and table:
                continue
            if key is None:
                return number or None
            found = self.keys.get((h if table else -1, key))
            if found:
                return found
        return None

    def where(self, table: tuple[str, ...] = (), key: str | None = None, index: int = 0,
              label: str | None = None) -> str:
        """``path:line [table] key`` (the line where known); ``label`` replaces
        ``[table]`` (e.g. ``[[statements]] 2``)."""
        number = self.line(table, key, index) or (self.line(table, None, index) if key else None)
        text = str(self.path) + (f":{number}" if number else "")
        if label:
            text += f" {label}"
        elif table:
            text += " [" + ".".join(_quote(p) for p in table) + "]"
        return text + (f" {key}" if key else "")


def _quote(part: str) -> str:
    return part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"'


def nesting_depth(text: str) -> int:
    """Deepest parenthesis nesting of ``text`` (recursive parsers refuse deep input)."""
    depth = deepest = 0
    for c in text:
        depth += (c == "(") - (c == ")")
        deepest = max(deepest, depth)
    return deepest
