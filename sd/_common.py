"""What every stage shares, each defined once: the control variables, number
parsing, spec-table helpers, file hashing and atomic output files.

Atomic output: every file is written under a temporary name, then renamed, so
a reader (or an interrupted run) never sees a half-written result.
"""
from __future__ import annotations

import hashlib
import math
import os
import tempfile
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
    """A model time as text, exact to the saving grid (1993.25, 1993.0625, 2000)."""
    return f"{float(t):.10g}"


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


def whole(value, where: str, minimum: int | None = None) -> int:
    """``value`` as an int (a TOML integer, or a float with no fraction)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise SdInputError(f"{where} = {value!r} must be a whole number.")
    if minimum is not None and value < minimum:
        raise SdInputError(f"{where} = {value} must be at least {minimum}.")
    return int(value)


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
    """Parse a TOML file; a missing or malformed file is an :class:`SdInputError`.

    ``what`` names the file's role in the message ("Scenario file",
    "Calibration spec", ...).
    """
    import tomllib

    path = Path(path)
    if not path.is_file():
        raise SdInputError(f"{what} not found: {path}.")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SdInputError(f"{path}: not valid TOML ({exc}).") from exc
    except UnicodeDecodeError as exc:
        raise SdInputError(f"{path}: not a UTF-8 text file ({exc.reason}).") from exc


# -- files ---------------------------------------------------------------------------------
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
