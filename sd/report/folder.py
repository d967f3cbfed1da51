"""An output folder filled all at once, never left half-written or stale.

Files are written into a scratch folder inside the output folder and moved in
only when every one of them succeeded. The job's manifest (its provenance
JSON, whose ``files`` lists what it wrote) lets the next job in the same
folder remove the files it does not write again -- a plot of a variable no
longer asked for -- and nothing else: files sd did not write are never touched.

Scratch folders are hidden (``.sd-<kind>-<random>``) and hold a lock file
that their job keeps locked (``fcntl.flock``) while it runs, and an owner
record (process id, host, start time). The kernel releases the lock when the
process ends, however it ends (even ``kill -9``), so the next job in the same
output folder can tell a killed job's scratch folder from a running one's: a
folder is *stale* only when its lock is free and its owner process is not
running on this host. Stale folders are removed -- or, with ``resume``, the
newest stale one of the same kind is taken over, with the finished chunks
its job kept (:mod:`sd.simulation.chunk_store`). A folder without a lock
file is never touched (it may be one being created right now).
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from .._common import read_json
from ..errors import SdInputError

SCRATCH_PREFIX = ".sd-"
_LOCK, _OWNER = ".lock", ".owner.json"
#: Inside a scratch folder: the finished chunks a killed job leaves for --resume.
CHECKPOINT = ".chunks"


def output_folder(out: str | Path | None, default: Path, option: str = "--out") -> Path:
    """The output folder ``out`` (or ``default``), checked before any work.

    Nothing is created here; :class:`SdInputError` when ``out`` is an existing
    file, lies under a file, or its nearest existing ancestor cannot be written.
    """
    if out is not None and not str(out).strip():
        raise SdInputError(f"{option} '': empty; name a folder (\".\" for the current one).")
    path = Path(out) if out is not None else default
    where = f"{option} {path}" if out is not None else f"the output folder {path}"
    if path.exists() and not path.is_dir():
        raise SdInputError(f"{where}: is an existing file, not a folder; sd writes several files "
                           "into the output folder. Name a folder (new or existing).")
    _writable(path, where)
    return path


def output_file(path: str | Path, option: str) -> Path:
    """An output file named on the command line, checked before any work."""
    if not str(path).strip():
        raise SdInputError(f"{option} '': empty; name a file.")
    path = Path(path)
    if path.is_dir():
        raise SdInputError(f"{option} {path}: is a folder; expected a file name.")
    _writable(path.parent, f"{option} {path}")
    return path


def _writable(folder: Path, where: str) -> None:
    """Refuse a folder that cannot be made or written (the nearest existing
    ancestor is a file, a broken link, or not writable)."""
    parent = folder
    while not parent.exists():
        if parent.is_symlink():
            raise SdInputError(f"{where}: {parent} is a broken symbolic link.")
        parent = parent.parent
    if not parent.is_dir():
        raise SdInputError(f"{where}: {parent} is a file, so no folder can be made under it.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SdInputError(f"{where}: cannot write in {parent} (permission denied); choose "
                           "another place.")


@contextmanager
def staged(out: str | Path, manifest: str, *, kind: str = "job", resume: bool = False):
    """Yield a scratch folder; on success move the files it lists into ``out``.

    Parameters
    ----------
    out : str or Path
        The output folder (created if needed, with its parents; on failure
        the folders this call created are removed again while empty).
    manifest : str
        Name of the JSON file, among those written, that lists them under
        ``files``; only the files it lists are moved, the manifest last.
    kind : str
        The job (``run``, ``sensitivity``, ...): names the scratch folder, and
        ``resume`` takes over only a folder of the same kind.
    resume : bool
        Take over the newest stale scratch folder of this kind (its
        :data:`CHECKPOINT`) instead of removing it.

    On failure or interruption the scratch folder is removed, unless it holds
    a non-empty :data:`CHECKPOINT`: that is kept for ``--resume`` (and removed
    by the next job that does not resume).
    """
    out = Path(out)
    created = [d for d in (out, *out.parents) if not d.exists()]  # deepest first
    try:
        out.mkdir(parents=True, exist_ok=True)
        scratch, fd = _scratch(out, kind, resume)
    except OSError as exc:
        _remove_empty(created)
        raise _unwritable(out, exc) from None
    try:
        yield scratch
        _publish(scratch, out, manifest)
        shutil.rmtree(scratch, ignore_errors=True)  # before the lock goes: nobody adopts it
    except BaseException as exc:
        if not _resumable(scratch):
            shutil.rmtree(scratch, ignore_errors=True)
        _remove_empty(created)
        if isinstance(exc, OSError) and _inside(exc, out):
            raise _unwritable(out, exc) from None
        raise
    finally:
        os.close(fd)  # releases the lock: a kept folder is now stale (see above)


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders this job created (deepest first) while they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _unwritable(out: Path, exc: OSError) -> SdInputError:
    reason = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
              errno.EROFS: "the file system is read-only"}.get(exc.errno, exc.strerror)
    return SdInputError(f"cannot write the output folder {out} ({reason}: "
                        f"{exc.filename or out}); nothing was written there. Free space or "
                        "choose another folder with --out.")


def _inside(exc: OSError, out: Path) -> bool:
    name = exc.filename
    return isinstance(name, (str, os.PathLike)) and \
        Path(os.path.abspath(name)).is_relative_to(os.path.abspath(out))


def _scratch(out: Path, kind: str, resume: bool) -> tuple[Path, int]:
    """A locked scratch folder: the newest stale one of ``kind`` when resuming
    (the other stale ones are removed), else a new one."""
    stale = _stale(out)
    mine = [(path, fd) for path, fd, owner in stale
            if resume and owner.get("kind") == kind and (path / CHECKPOINT).is_dir()]
    adopted = max(mine, key=lambda item: _started(item[0]), default=None)
    for path, fd, _ in stale:
        if adopted is None or path != adopted[0]:
            shutil.rmtree(path, ignore_errors=True)
            os.close(fd)
    if adopted is not None:
        scratch, fd = adopted
    else:
        # Locked before it gets its .sd- name, so no other job ever sees it unlocked.
        young = Path(tempfile.mkdtemp(prefix=".sdnew-", dir=out))
        fd = _lock(young / _LOCK, create=True)
        scratch = out / f"{SCRATCH_PREFIX}{_safe_kind(kind)}-{young.name[len('.sdnew-'):]}"
        young.rename(scratch)
    owner = {"kind": kind, "pid": os.getpid(), "host": socket.gethostname(),
             "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (scratch / _OWNER).write_text(json.dumps(owner) + "\n", encoding="utf-8")
    return scratch, fd


def _started(path: Path) -> float:
    try:
        return (path / _OWNER).stat().st_mtime
    except OSError:
        return 0.0


def _safe_kind(kind: str) -> str:
    return "".join(c for c in kind if c.isalnum()) or "job"


def _lock(path: Path, create: bool = False) -> int:
    """An fd holding an exclusive ``flock`` on ``path``; BlockingIOError if
    another process holds it."""
    import fcntl

    flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | (os.O_CREAT if create else 0)
    fd = os.open(path, flags, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _stale(out: Path) -> list[tuple[Path, int, dict]]:
    """(folder, fd holding its lock, owner record) of every stale scratch folder."""
    found = []
    for path in sorted(out.glob(f"{SCRATCH_PREFIX}*")):
        if path.is_symlink() or not path.is_dir():
            continue
        try:
            fd = _lock(path / _LOCK)
        except OSError:
            continue  # no lock file (being created, or not sd's), or a live job holds it
        owner = _owner(path)
        if _running(owner):
            os.close(fd)
            continue
        found.append((path, fd, owner))
    return found


def _owner(path: Path) -> dict:
    try:
        owner = read_json(path / _OWNER)
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _running(owner: dict) -> bool:
    """Whether the owner process may still run (conservative: when in doubt, yes)."""
    pid = owner.get("pid")
    if owner.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False  # the free lock is the proof
    if pid == os.getpid():
        return False  # an earlier job of this process: it would still hold the lock
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A process that has ended but is not reaped yet (Linux; elsewhere: no)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _resumable(scratch: Path) -> bool:
    chunks = scratch / CHECKPOINT
    return chunks.is_dir() and any(chunks.iterdir())


def _publish(scratch: Path, out: Path, manifest: str) -> None:
    names = _listed(scratch / manifest)
    written = sorted(p.name for p in scratch.iterdir() if not p.name.startswith("."))
    if len(names) != len(set(names)) or set(names) != set(written) or manifest not in names:
        # a writer bug, never the user's input: publish nothing rather than a mix
        raise RuntimeError(f"outputs and manifest disagree: wrote {written}, listed {names}")
    stale = set(_listed(out / manifest))
    for name in [n for n in names if n != manifest] + [manifest]:
        (scratch / name).replace(out / name)
    for name in stale - set(names):
        (out / name).unlink(missing_ok=True)


def _listed(path: Path) -> list[str]:
    """Plain file names a manifest says its job wrote (nothing else)."""
    try:
        files = read_json(path).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    if not isinstance(files, list):
        return []
    return [f for f in files if isinstance(f, str) and f == Path(f).name and f not in ("", "..")
            and not f.startswith(".")]


def write_json(path: Path, data: dict) -> None:
    """``data`` as indented JSON (UTF-8)."""
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
