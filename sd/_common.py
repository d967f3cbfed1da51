"""Atomic output: every file is written under a temporary name, then renamed.

A reader (or an interrupted run) never sees a half-written result.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


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


def read_toml(path: str | os.PathLike, what: str) -> dict:
    """Parse a TOML file; a missing or malformed file is an :class:`SdInputError`.

    ``what`` names the file's role in the message ("Scenario file",
    "Calibration spec", ...).
    """
    import tomllib

    from .errors import SdInputError

    path = Path(path)
    if not path.is_file():
        raise SdInputError(f"{what} not found: {path}.")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SdInputError(f"{path}: not valid TOML ({exc}).") from exc
    except UnicodeDecodeError as exc:
        raise SdInputError(f"{path}: not a UTF-8 text file ({exc.reason}).") from exc
