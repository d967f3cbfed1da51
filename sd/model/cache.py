"""Where `sd` keeps translated and compiled models: a private, verified cache.

The cache directory is ``$SD_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/sd``,
else ``~/.cache/sd``. Its content is code (PySD translations, generated
engine source, numba's compiled functions and their pickled index), so:

* the directory is private: owned by the user and not writable by group or
  others (it is made mode 0700); a directory owned by someone else, or
  group/world-writable, is refused with a message, since anyone who can
  write there could plant code;
* every entry is built in a scratch folder inside the cache and renamed into
  place in one step, so a reader never sees half an entry and concurrent
  first runs of one model all end up using one complete entry;
* every entry carries a manifest (``MANIFEST.json``) listing each file's
  SHA-256, sealed with an HMAC-SHA256 keyed by a per-user secret
  (``secret.key``, 32 random bytes, mode 0600, created on first use). An
  entry is used only after its manifest's HMAC and every file's hash check
  out and it holds no other file; otherwise it is discarded (with a warning)
  and rebuilt, never loaded.

A cache that cannot be written (read-only, full, not ours) is an
:class:`SdInputError` naming the folder and the fix (set ``SD_CACHE_DIR``).
"""
from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import shutil
import stat
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from .._common import file_sha256
from ..errors import SdInputError

#: Bumped when the layout of entries or manifests changes.
FORMAT = "2"
MANIFEST = "MANIFEST.json"
_SECRET = "secret.key"
_CHECKED: dict = {}


_FIX = ("Set SD_CACHE_DIR to a private folder you own (e.g. export "
        "SD_CACHE_DIR=$HOME/.cache/sd) and run again.")


class UnsafeCache(SdInputError):
    """The cache folder is another user's or writable by others: refused on every
    path (best-effort uses of the cache re-raise it instead of running without)."""


class CacheWarning(UserWarning):
    """A cache entry failed its integrity check and was rebuilt."""


def cache_dir() -> Path:
    """The private cache root (created mode 0700; ownership and mode checked)."""
    env = os.environ.get("SD_CACHE_DIR")
    if env:
        root = Path(env).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "sd"
    key = str(root)
    if key in _CHECKED and _CHECKED[key].is_dir():
        return _CHECKED[key]
    with _writable(root):
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
    real = root.resolve()
    st = os.stat(real)
    if not stat.S_ISDIR(st.st_mode):
        raise SdInputError(f"the cache {root} is not a folder. {_FIX}")
    if st.st_uid != os.getuid():
        raise UnsafeCache(
            f"the cache folder {root} belongs to another user (uid {st.st_uid}): whoever can "
            f"write there could plant code that sd would run. {_FIX}")
    if st.st_mode & 0o022:
        raise UnsafeCache(
            f"the cache folder {root} is writable by group or others (mode "
            f"{stat.S_IMODE(st.st_mode):o}): anyone could plant code in it. Empty it and "
            f"run 'chmod 700 {root}', or {_FIX[0].lower()}{_FIX[1:]}")
    if st.st_mode & 0o077:
        with _writable(real):
            os.chmod(real, 0o700)
    _CHECKED[key] = real
    return real


@contextmanager
def writable(where: Path, what: str = "the model cache", fix: str = _FIX):
    """Turn 'cannot write there' (read-only, full, not ours) into a message
    saying where and what to do."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT,
                         errno.ENOTDIR, errno.EEXIST, errno.ELOOP):
            why = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                   errno.EROFS: "the file system is read-only"}.get(exc.errno, exc.strerror)
            raise SdInputError(f"cannot write to {what} {where} ({why}). {fix}") from None
        raise


_writable = writable


def entry(kind: str, digest: str) -> Path:
    """A private folder for artefacts of ``kind`` for content ``digest``
    (for data that is not code; code goes through :func:`publish`)."""
    d = cache_dir() / kind / digest[:32]
    with _writable(d):
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


# -- the per-user secret and the manifest ------------------------------------------
def _secret() -> bytes:
    root = cache_dir()
    path = root / _SECRET
    with _writable(root):
        for _ in range(3):
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            except FileNotFoundError:
                _new_secret(path, replace=False)
                continue
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
                _new_secret(path, replace=True)
                continue
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(f.fileno())
                data = f.read(64)
            if st.st_uid == os.getuid() and not st.st_mode & 0o077 and \
                    stat.S_ISREG(st.st_mode) and len(data) == 32:
                return data
            warnings.warn(f"sd: the cache secret {path} was not a private 32-byte file; a new "
                          "one was made and the cache will be rebuilt", CacheWarning, stacklevel=3)
            _new_secret(path, replace=True)
    raise SdInputError(f"cannot set up the cache secret {path}. {_FIX}")


def _new_secret(path: Path, replace: bool) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret-")
    try:
        os.write(fd, os.urandom(32))
        os.fsync(fd)
        os.close(fd)
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)       # atomic: the first creator wins
            except FileExistsError:
                pass
    finally:
        Path(tmp).unlink(missing_ok=True)


def _seal(body: dict) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(_secret(), text, hashlib.sha256).hexdigest()


def seal_bytes(data: bytes, purpose: str) -> str:
    """HMAC-SHA256 of ``data`` under the per-user secret; ``purpose`` keeps
    seals made for one use (e.g. calibration checkpoints) from passing as another."""
    return hmac.new(_secret(), purpose.encode() + b"\0" + data, hashlib.sha256).hexdigest()


def sign(where: Path, kind: str, key: str) -> None:
    """Write the sealed manifest of every file now in the entry ``where``."""
    files = {}
    for path in sorted(where.rglob("*")):
        rel = path.relative_to(where).as_posix()
        if rel == MANIFEST or path.is_dir():
            continue
        files[rel] = file_sha256(path)
    body = {"format": FORMAT, "kind": kind, "key": key, "files": files}
    text = json.dumps({**body, "mac": _seal(body)}, indent=1, sort_keys=True)
    with _writable(where):
        fd, tmp = tempfile.mkstemp(dir=where, prefix=".manifest-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, where / MANIFEST)


def check(where: Path, kind: str, key: str) -> str | None:
    """Why the entry ``where`` may not be used, or ``None`` when it is intact."""
    try:
        manifest = json.loads((where / MANIFEST).read_text(encoding="utf-8"))
        body = {k: manifest[k] for k in ("format", "kind", "key", "files")}
        mac = manifest["mac"]
    except (OSError, ValueError, KeyError, TypeError):
        return "no valid manifest"
    if not isinstance(mac, str) or not hmac.compare_digest(mac, _seal(body)):
        return "the manifest's HMAC does not match"
    if body["format"] != FORMAT or body["kind"] != kind or body["key"] != key:
        return "the manifest is for another entry"
    seen = set()
    for path in where.rglob("*"):
        rel = path.relative_to(where).as_posix()
        if path.is_symlink():
            return f"{rel} is a symbolic link"
        if path.is_dir() or rel == MANIFEST:
            continue
        seen.add(rel)
        if rel not in body["files"]:
            return f"{rel} is not in the manifest"
        if file_sha256(path) != body["files"][rel]:
            return f"{rel} does not match its hash"
    missing = set(body["files"]) - seen
    if missing:
        return f"{sorted(missing)[0]} is missing"
    return None


def read_verified(where: Path, kind: str, key: str) -> dict[str, bytes]:
    """The files of an entry, read once and checked against its sealed
    manifest (so what is used is exactly what was checked)."""
    manifest = json.loads((where / MANIFEST).read_text(encoding="utf-8"))
    body = {k: manifest[k] for k in ("format", "kind", "key", "files")}
    if not hmac.compare_digest(manifest["mac"], _seal(body)) or body["key"] != key \
            or body["kind"] != kind:
        raise Tampered("the manifest's HMAC does not match")
    out = {}
    for rel, digest in body["files"].items():
        data = (where / rel).read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise Tampered(f"{rel} does not match its hash")
        out[rel] = data
    return out


class Tampered(Exception):
    """An entry changed between its check and its use."""


def recall(kind: str, key: str, decode: Callable[[dict], object]):
    """``decode(files)`` of the entry ``(kind, key)``, its files read once and
    checked against its seal; ``None`` when there is no such entry. An entry
    that fails its check, or that ``decode`` rejects (``ValueError``,
    ``KeyError``, ``TypeError``), is discarded with a warning: a cache of data
    (JSON), never of anything that runs when read."""
    where = cache_dir() / kind / key[:40]
    if not where.is_dir():
        return None
    try:
        return decode(read_verified(where, kind, key))
    except (Tampered, OSError, ValueError, KeyError, TypeError) as exc:
        discard(where, str(exc) or type(exc).__name__)
        return None


def keep_text(kind: str, key: str, name: str, text: str) -> Path:
    """Publish an entry holding one text file ``name``."""
    def build(folder: Path) -> None:
        (folder / name).write_text(text, encoding="utf-8")

    return publish(kind, key, build)


# -- entries ----------------------------------------------------------------------------
def publish(kind: str, key: str, build: Callable[[Path], None]) -> Path:
    """The verified entry for ``(kind, key)``, built by ``build(folder)`` if it
    is missing or fails its check.

    ``build`` writes the entry's files into an empty private scratch folder;
    the folder is sealed and renamed into place atomically. When several
    processes build the same entry at once, the first rename wins and the
    others use its result.
    """
    root = cache_dir()
    final = root / kind / key[:40]
    with _writable(root):
        (root / kind).mkdir(exist_ok=True, mode=0o700)
        (root / "tmp").mkdir(exist_ok=True, mode=0o700)
    for _ in range(5):
        if final.exists():
            reason = check(final, kind, key)
            if reason is None:
                return final
            discard(final, reason)
        with _writable(root):
            scratch = Path(tempfile.mkdtemp(dir=root / "tmp", prefix=f"{kind}-"))
        try:
            with _writable(root):
                build(scratch)
                sign(scratch, kind, key)
            try:
                os.rename(scratch, final)
                return final
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    with _writable(root):
                        raise
                # another process published it first: use theirs (checked above)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    raise SdInputError(f"could not create the cache entry {final}. {_FIX}")


def discard(where: Path, reason: str) -> None:
    """Remove a bad entry (renamed away first, so no reader sees it half gone)."""
    warnings.warn(f"sd: cache entry {where} failed its integrity check ({reason}); it was "
                  "discarded and is rebuilt", CacheWarning, stacklevel=3)
    trash = where.parent / f".trash-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        os.rename(where, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


@contextmanager
def lock(kind: str, key: str):
    """An exclusive lock on one entry, across processes (``fcntl.flock``)."""
    import fcntl

    root = cache_dir()
    with _writable(root):
        (root / "locks").mkdir(exist_ok=True, mode=0o700)
        fd = os.open(root / "locks" / f"{kind}-{key[:40]}.lock",
                     os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
