"""Load a model file: the description cache first, a parse when it misses.

:func:`load` and :func:`as_model` sit above :mod:`sd.model.model` (what a
model is) and :mod:`sd.model.stored` (its description kept in the cache), so
neither of those imports the other's orchestration.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .._common import file_sha256
from . import datafiles, source as source_mod, stored
from .model import Model, check_path, from_source


def load(path: str | Path, data_files=None) -> Model:
    """Read ``path`` (a Vensim ``.mdl``) once, check it and describe its variables.

    Parameters
    ----------
    path : str or Path
        The Vensim model file.
    data_files : sequence of str or Path, optional
        ``.tab``/``.csv`` files holding the values of data variables that
        have no equation (Vensim's data sources; :mod:`sd.model.datafiles`).

    Returns
    -------
    Model

    Raises
    ------
    SdInputError
        The file is missing, is not a ``.mdl``, is not UTF-8 or Latin-1 text,
        cannot be parsed (the message gives the line), or holds a text that
        could reach generated code (the message names the variable).
    """
    path = Path(path)
    check_path(path)
    model = from_file(source_mod.read(path))
    files = datafiles.read(data_files)
    if files:
        datafiles.check(model.path, model.abstract, files)
        model = replace(model, data_files=files)
    return model


_BY_CONTENT: dict = {}


def as_model(model) -> Model:
    """``model`` if it is a loaded :class:`Model` (its snapshot); else the path
    of a ``.mdl``, loaded once per content (the bytes' hash), so callers that
    pass paths repeatedly do not parse again, and an edited file is read anew
    (the ``.mdl`` or an external file it reads: GET XLS/DIRECT data, subscripts)."""
    if isinstance(model, Model):
        return model
    path = Path(model)
    check_path(path)
    src = source_mod.read(path)
    key = (str(src.path), src.sha256)
    known = _BY_CONTENT.get(key)
    if known is None or _externals_changed(known):
        _BY_CONTENT[key] = known = from_file(src)
    return known


def _externals_changed(model: Model) -> bool:
    for ext in model.externals:
        try:
            if file_sha256(ext.path) != ext.sha256:
                return True
        except OSError:
            return True     # gone: the fresh load names the missing file
    return False


def from_file(src: source_mod.Source) -> Model:
    """:func:`from_source`, or the model's description from the cache when
    this text was loaded before (:mod:`sd.model.stored`: no parse at all)."""
    model = stored.recall(src)
    if model is None:
        model = from_source(src, stored.previous_names(src))
        stored.keep(model)
    return model
