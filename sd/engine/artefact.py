"""What the compiler made of a model, kept in the cache as data.

Compiling a model (:class:`~sd.engine.model_ir.ModelIR` ->
:class:`~sd.engine.compiler.Compiler` -> :func:`~sd.engine.codegen.generate`)
needs the parsed model; running it needs only the result: the generated
source, the constants (one column each, with their values), the lookup
tables, the output layout, the code of the four time settings and the kind
of each variable. :func:`keep` stores that as JSON in a sealed cache entry
(:func:`sd.model.cache.publish`) keyed by the model's content key (its
equations and external files) and the engine's own code; :func:`recall`
reads it back, checked against its seal, so a rerun of an unchanged model
neither parses nor compiles. Nothing here is code until the generated source
has passed :func:`sd.engine.verify.verify_source` again, in :mod:`.build`.

Constants and lookup tables are inputs of the generated function, so the
source depends only on the model's structure: the numba machine code is
cached by the source (:mod:`.build`), and a model whose description says
only literal constants changed (:mod:`sd.model.stored`, ``derived``) gets
the previous artefact with those values replaced -- no parse, no compile.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ..errors import SdInputError, canon
from ..model import cache

KIND = "compiled"
FORMAT = "1"
_FILE = "artefact.json"


@dataclass(frozen=True)
class Artefact:
    """The compiler's output for one model and one code shape.

    Attributes
    ----------
    compiler : ``"numba"`` (scalar code: the numba and Python back ends) or
        ``"numpy"`` (arrays over runs).
    source : the generated ``simulate`` function (verified before use).
    size : nodes + 4 x statefuls (what compile time grows with).
    params, tables, outputs, controls, kinds : as in
        :class:`~sd.engine.build.CompiledModel`.
    """

    compiler: str
    source: str
    size: int
    params: tuple
    tables: tuple
    outputs: tuple
    controls: tuple
    kinds: dict

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT, "compiler": self.compiler, "source": self.source,
            "size": self.size,
            "params": [[n, list(labels), float(v)] for n, labels, v in self.params],
            "tables": [[np.asarray(x, float).tolist(), np.asarray(y, float).tolist(), owner]
                       for x, y, owner in self.tables],
            "outputs": [[n, list(dims), [list(c) for c in coords], col, size]
                        for n, dims, coords, col, size in self.outputs],
            "controls": list(self.controls), "kinds": self.kinds,
        }, allow_nan=True)

    @classmethod
    def from_json(cls, text: str) -> "Artefact":
        d = json.loads(text)
        if d.get("format") != FORMAT:
            raise ValueError("another format")
        return cls(
            compiler=str(d["compiler"]), source=str(d["source"]), size=int(d["size"]),
            params=tuple((str(n), tuple(labels), float(v)) for n, labels, v in d["params"]),
            tables=tuple((np.asarray(x, dtype=float), np.asarray(y, dtype=float), str(o))
                         for x, y, o in d["tables"]),
            outputs=tuple((str(n), tuple(dims), tuple(tuple(c) for c in coords), int(col),
                           int(size)) for n, dims, coords, col, size in d["outputs"]),
            controls=tuple(str(c) for c in d["controls"]),
            kinds={str(k): str(v) for k, v in d["kinds"].items()})

    def with_values(self, changes: dict) -> "Artefact | None":
        """This artefact with the literal constants ``{name: (old, new)}``
        set to their new values; ``None`` unless each is exactly one scalar
        column holding the old value (anything else is compiled again)."""
        params = list(self.params)
        for name, (old, new) in changes.items():
            cols = [i for i, (n, labels, _) in enumerate(params)
                    if canon(n) == canon(name)]
            if len(cols) != 1 or params[cols[0]][1] or params[cols[0]][2] != float(old):
                return None
            n, labels, _ = params[cols[0]]
            params[cols[0]] = (n, labels, float(new))
        return Artefact(self.compiler, self.source, self.size, tuple(params), self.tables,
                        self.outputs, self.controls, self.kinds)


def _key(digest: str, compiler: str) -> str:
    import hashlib

    return hashlib.sha256(f"{KIND} {FORMAT} {compiler} {digest}".encode()).hexdigest()


def recall(model, digest: str, compiler: str, digest_of) -> Artefact | None:
    """The stored artefact of ``model`` (content digest ``digest``), or the
    previous one with new constant values when the model's description says
    only literal constants changed; ``None`` when it must be compiled.
    ``digest_of(content key)`` is the engine's digest of another version."""
    try:
        found = _read(_key(digest, compiler))
        if found is not None:
            return found
        derived = (model.stored or {}).get("derived")
        if not derived:
            return None
        from ..model.digest import content_key

        old = _read(_key(digest_of(content_key(derived["from"], model.externals)), compiler))
        if old is None:
            return None
        new = old.with_values({k: tuple(v) for k, v in derived["constants"].items()})
        if new is not None:
            keep(digest, new)
        return new
    except cache.UnsafeCache:      # never run beside a cache others can write
        raise
    except (SdInputError, OSError, ValueError, KeyError, TypeError):
        return None


def keep(digest: str, artefact: Artefact) -> None:
    """Store ``artefact`` (best effort: an unwritable cache means compiling again)."""
    try:
        cache.keep_text(KIND, _key(digest, artefact.compiler), _FILE, artefact.to_json())
    except cache.UnsafeCache:      # never run beside a cache others can write
        raise
    except (SdInputError, OSError):
        pass


def _read(key: str) -> Artefact | None:
    return cache.recall(KIND, key, lambda files: Artefact.from_json(files[_FILE].decode("utf-8")))
