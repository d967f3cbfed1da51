"""External data for the fast engine, read once when the model is compiled.

GET XLS/DIRECT CONSTANTS, DATA, LOOKUPS and SUBSCRIPT read spreadsheets or
CSV files named in the model. The engine reads them with PySD's own readers
(``pysd.py_backend.external``), so cell ranges, named ranges, transposition
(``*``) and missing-value filling are PySD's; the values then enter the
compiled function as inputs (constants and tables), never as code. Relative
file names are resolved beside the ``.mdl``, as Vensim does.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from .model_ir import UnsupportedModel


def _root(ir) -> Path:
    return Path(ir.path).resolve().parent


def _note(ir, file_name) -> None:
    """Record a file the model reads (its state is part of the cache key)."""
    if str(file_name).startswith("?"):
        return
    path = (_root(ir) / str(file_name)).resolve()
    if path not in ir.sources:
        ir.sources.append(path)


def read_subscript(ir, name: str, spec: dict) -> list:
    """Elements of a range defined by GET XLS/DIRECT SUBSCRIPT."""
    from pysd.py_backend.external import ExtSubscript

    _note(ir, spec["file"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            elems = ExtSubscript(spec["file"], spec["tab"], spec["firstcell"],
                                 spec["lastcell"], spec["prefix"], _root(ir)).subscript
    except Exception as exc:  # noqa: BLE001 - any reader failure refuses the model
        raise UnsupportedModel(f"subscript range {name!r} from {spec['file']!r} cannot be "
                               f"read ({type(exc).__name__}: {exc})") from None
    if not elems:
        raise UnsupportedModel(f"subscript range {name!r} read from {spec['file']!r} is empty")
    return elems
