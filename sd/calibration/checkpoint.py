"""Checkpoints of a set-valued calibration: kill it anywhere, resume to the same result.

The calibration is cut into *pieces* (a chunk of prior draws, a chain step,
a chunk of members' counterfactual runs, a structural variant), each a pure
function of the spec, the model, the seed and the piece's key: every random
number comes from ``numpy.random.default_rng([seed, stream, index])``. A
finished piece is saved as an ``.npz`` file (arrays only, never a pickle)
written under a temporary name and renamed, and then entered in
``manifest.json`` with an HMAC of its bytes under the per-user secret of the
sd cache (:func:`sd.model.cache.seal_bytes`). A resumed job loads the pieces
it finds and computes the others, so it ends with exactly the numbers of an
uninterrupted run with the same seed.

On ``--resume`` the manifest is validated before anything is used: it must
be a JSON object written by this format, for the same spec, data, scenario
files and model (their SHA-256), the same seed, settings, inputs, engine and
sd version; every piece must carry a valid seal (a file changed or invented
after sd wrote it fails) and the arrays the piece should hold. Anything else
is refused with a message naming the file and the fix; it is never silently
replaced.
"""
from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np

from .._common import atomic_path, atomic_write_text, read_json, regular_bytes
from ..errors import SdInputError

#: Bumped when the layout of pieces changes.
FORMAT = 1
#: How a message names each field of a checkpoint's identity.
FIELDS = {"spec_files": "spec, data or scenario file (their SHA-256)", "model_sha256": "model",
          "seed": "seed", "settings": "[set] settings", "engine": "engine",
          "inputs": "set of uncertain inputs or ranges", "fixed": "[fixed] values",
          "sd_version": "sd version"}
MANIFEST = "manifest.json"
_PURPOSE = "sd calibration checkpoint"


class Store:
    """Finished pieces of one calibration, in a folder (or nowhere).

    Parameters
    ----------
    folder : Path or None
        ``None`` keeps nothing (an API call without checkpoint).
    identity : dict
        What the pieces depend on (JSON-serialisable); a resumed checkpoint
        must have been written for exactly this.
    resume : bool
        Use the pieces found in ``folder``; otherwise start afresh (the
        folder's old pieces are removed).
    """

    def __init__(self, folder: Path | None, identity: dict, resume: bool):
        self.folder = None if folder is None else Path(folder)
        self.identity = json.loads(json.dumps(identity))   # as it will read back
        self.seals: dict[str, str] = {}
        self.loaded: list[str] = []
        if self.folder is None:
            return
        if resume and (self.folder / MANIFEST).exists():
            self._open()
        else:
            self._reset()

    # -- public ------------------------------------------------------------------
    @property
    def resumed(self) -> bool:
        """Whether any finished piece was loaded instead of computed."""
        return bool(self.loaded)

    def get(self, key: str, expect: dict | None = None) -> dict | None:
        """The arrays of piece ``key``, or None when it was not finished.

        ``expect`` maps array names to their shape (``None`` for a free
        dimension); a piece without them is refused.
        """
        if self.folder is None or key not in self.seals:
            return None
        path = self.folder / f"{key}.npz"
        try:
            data = regular_bytes(path)
        except OSError as exc:
            raise self._refuse(f"{path} is listed but cannot be read ({exc.strerror})")
        from ..model.cache import seal_bytes

        import hmac

        if not hmac.compare_digest(self.seals[key], seal_bytes(data, _PURPOSE)):
            raise self._refuse(f"{path} fails its integrity check: it was changed or replaced "
                               "after sd wrote it")
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (ValueError, OSError, EOFError) as exc:
            raise self._refuse(f"{path} is not an array file ({exc})")
        for name, shape in (expect or {}).items():
            if name not in arrays or not _fits(arrays[name].shape, shape):
                raise self._refuse(f"{path} lacks the array {name!r} of shape {shape}")
        self.loaded.append(key)
        return arrays

    def put(self, key: str, **arrays) -> None:
        """Save piece ``key`` (arrays only) and seal it in the manifest."""
        if self.folder is None:
            return
        from ..model.cache import seal_bytes

        buffer = io.BytesIO()
        np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
        data = buffer.getvalue()
        with atomic_path(self.folder / f"{key}.npz") as tmp:
            tmp.write_bytes(data)
        self.seals[key] = seal_bytes(data, _PURPOSE)
        self._write_manifest()

    def remove(self) -> None:
        """Delete the checkpoint (the job finished and its outputs are written)."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    # -- manifest ----------------------------------------------------------------
    def _open(self) -> None:
        path = self.folder / MANIFEST
        try:
            raw = read_json(path)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise self._refuse(f"{path} is not a calibration checkpoint (not JSON: {exc})")
        if not isinstance(raw, dict) or raw.get("format") != FORMAT or \
                not isinstance(raw.get("identity"), dict) or not isinstance(raw.get("pieces"), dict):
            raise self._refuse(f"{path} is not a set-valued calibration checkpoint of format "
                               f"{FORMAT} (expected the keys format, identity, pieces)")
        for field, mine in self.identity.items():
            theirs = raw["identity"].get(field)
            if theirs != mine:
                raise self._refuse(f"{path} was written for another "
                                   f"{FIELDS.get(field, field)} ({_short(theirs)}; this job: "
                                   f"{_short(mine)})")
        extra = set(raw["identity"]) - set(self.identity)
        if extra:
            raise self._refuse(f"{path} records {sorted(extra)[0]!r}, which this version of sd "
                               "does not")
        pieces = raw["pieces"]
        if not all(isinstance(k, str) and isinstance(v, str) and _plain(k)
                   for k, v in pieces.items()):
            raise self._refuse(f"{path}: the list of pieces is malformed")
        self.seals = dict(pieces)

    def _reset(self) -> None:
        if self.folder.is_symlink() or (self.folder.exists() and not self.folder.is_dir()):
            raise SdInputError(f"{self.folder} is not a folder (sd keeps its checkpoint there); "
                               "remove it or choose another --out.")
        if self.folder.exists():
            for p in self.folder.glob("*.npz"):
                p.unlink(missing_ok=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write_manifest()

    def _write_manifest(self) -> None:
        atomic_write_text(self.folder / MANIFEST, json.dumps(
            {"format": FORMAT, "identity": self.identity, "pieces": self.seals}, indent=1) + "\n")

    def _refuse(self, why: str) -> SdInputError:
        return SdInputError(f"cannot resume: {why}. Remove {self.folder} (or run without "
                            "--resume) to start afresh.")


def _fits(shape: tuple, expected) -> bool:
    return len(shape) == len(expected) and all(e is None or s == e
                                               for s, e in zip(shape, expected))


def _plain(key: str) -> bool:
    """A piece key is a plain file stem (never a path)."""
    return bool(key) and key == os.path.basename(key) and all(
        c.isalnum() or c in "-_." for c in key) and not key.startswith(".")


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."
