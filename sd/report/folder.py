"""An output folder filled all at once, never left half-written or stale.

Files are written into a scratch folder inside the output folder and moved in
only when every one of them succeeded. The job's manifest (its provenance
JSON, whose ``files`` lists what it wrote) lets the next job in the same
folder remove the files it does not write again -- a plot of a variable no
longer asked for -- and nothing else: files sd did not write are never touched.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged(out: str | Path, manifest: str):
    """Yield a scratch folder; on success move its files into ``out``.

    Parameters
    ----------
    out : str or Path
        The output folder (created if needed; removed again on failure when
        this call created it and it is still empty).
    manifest : str
        Name of the JSON file, among those written, that lists them under
        ``files``.
    """
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".sd-", dir=out))
    try:
        yield scratch
        _publish(scratch, out, manifest)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        if created and not any(out.iterdir()):
            out.rmdir()
        raise
    shutil.rmtree(scratch, ignore_errors=True)


def _publish(scratch: Path, out: Path, manifest: str) -> None:
    stale = _listed(out / manifest)
    names = sorted(p.name for p in scratch.iterdir())
    for name in names:
        (scratch / name).replace(out / name)
    for name in stale - set(names):
        (out / name).unlink(missing_ok=True)


def _listed(path: Path) -> set[str]:
    """Plain file names an earlier job's manifest says it wrote (nothing else)."""
    try:
        files = json.loads(path.read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError):
        return set()
    return {f for f in files if isinstance(f, str) and f == Path(f).name and not f.startswith(".")}


def write_json(path: Path, data: dict) -> None:
    """``data`` as indented JSON (UTF-8)."""
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def stem(name: str) -> str:
    """A Vensim name as a file name: letters and digits, ``_`` elsewhere, lower case."""
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()
