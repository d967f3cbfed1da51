"""External data for the fast engine, read once when the model is compiled.

GET XLS/DIRECT CONSTANTS, DATA, LOOKUPS and SUBSCRIPT read spreadsheets or
CSV files named in the model. The engine reads them with PySD's own readers
(``pysd.py_backend.external``: cell and named ranges, transposition with
``*``, missing values filled by interpolation as PySD's default "warning"
mode does), building one reader per variable from all its components as
PySD's builder does, so the numbers are PySD's. The values then enter the
compiled function as inputs (constants and tables), never as code.

The files are the ones :func:`sd.model.load` resolved beside the ``.mdl``
and hashed into the model's key; a file whose bytes changed since the model
was loaded is refused (load the model again).
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np

from ..errors import SdInputError
from .common import UnsupportedModel

#: PySD's interpolation keywords of data variables -> the engine's table modes.
DATA_MODES = {None: "interpolate", "interpolate": "interpolate", "raw": "raw",
              "hold_backward": "hold_backward", "look_forward": "look_forward"}


def _file(ir, arg) -> str:
    """The checked path of the file argument ``arg`` (as written in the model)."""
    checked = getattr(ir, "_checked_files", None)
    if checked is None:
        checked = ir._checked_files = {}
    if arg in checked:
        return checked[arg]
    externals = getattr(getattr(ir.model, "prepared", None), "externals", ())
    ext = next((e for e in externals if e.arg == arg), None)
    if ext is None:
        raise UnsupportedModel(f"external file {arg!r} is not one the model's load resolved")
    h = hashlib.sha256()
    with open(ext.path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != ext.sha256:
        raise SdInputError(f"{ext.path} changed after {Path(ir.path).name} was loaded; load "
                           "the model again to use the new data.")
    if ext.path not in ir.sources:
        ir.sources.append(ext.path)
    checked[arg] = str(ext.path)
    return checked[arg]


def _reading(what: str, name: str):
    """Context of one PySD reader call: its warnings silenced, its failures
    turned into a refusal naming the variable."""
    class _Ctx:
        def __enter__(self):
            self.w = warnings.catch_warnings()
            self.w.__enter__()
            warnings.simplefilter("ignore")

        def __exit__(self, kind, exc, tb):
            self.w.__exit__(kind, exc, tb)
            if exc is not None and not isinstance(exc, (SdInputError, UnsupportedModel)):
                raise UnsupportedModel(f"{what} of {name!r} cannot be read "
                                       f"({type(exc).__name__}: {str(exc)[:200]})") from None
            return False
    return _Ctx()


def read_subscript(ir, name: str, spec: dict) -> list:
    """Elements of a range defined by GET XLS/DIRECT SUBSCRIPT."""
    from pysd.py_backend.external import ExtSubscript

    path = _file(ir, spec["file"])
    with _reading("subscript range", name):
        elems = ExtSubscript(path, spec["tab"], spec["firstcell"], spec["lastcell"],
                             spec["prefix"], Path(path).parent).subscript
    if not elems:
        raise UnsupportedModel(f"subscript range {name!r} read from {spec['file']!r} is empty")
    return elems


class Externals:
    """The external values of one model, read on first use, once per variable."""

    def __init__(self, ir):
        self.ir = ir
        self._data: dict = {}

    def close(self) -> None:
        """Drop the spreadsheets PySD's reader keeps in memory (process-wide)."""
        if self._data:
            from pysd.py_backend.external import Excels

            Excels.clean()

    def constant(self, var, slot: int) -> float:
        """Value of one slot defined by GET XLS/DIRECT CONSTANTS."""
        da = self._read(var, "constants")
        return float(_at(da, var, slot))

    def series(self, var, slot: int) -> tuple:
        """(times, values, mode) of one slot defined by GET XLS/DIRECT DATA."""
        da, mode = self._read(var, "data")
        return (np.asarray(da["time"].values, dtype=float),
                np.asarray(_at(da, var, slot), dtype=float), mode)

    def lookup(self, var, slot: int) -> tuple:
        """(xs, ys) of one slot defined by GET XLS/DIRECT LOOKUPS."""
        da = self._read(var, "lookups")
        return (np.asarray(da["lookup_dim"].values, dtype=float),
                np.asarray(_at(da, var, slot), dtype=float))

    def _parts(self, var, structure):
        """(component, coords) of every component of ``var`` read from a file,
        coords named by the variable's dimensions as PySD's builder does."""
        out = []
        for comp in _components(var):
            if isinstance(comp.ast, structure):
                coords = {d: list(self.ir.elements(s))
                          for d, s in zip(var.dims, comp.subscripts[0])}
                if comp.subscripts[1]:
                    raise UnsupportedModel(f"GET XLS/DIRECT with :EXCEPT: in {var.name!r}")
                out.append((comp, coords))
        return out

    def _final(self, var) -> dict:
        return {d: list(c) for d, c in zip(var.dims, var.coords)}

    def _read(self, var, kind: str):
        key = (var.name, kind)
        if key not in self._data:
            self._data[key] = self._build(var, kind)
        return self._data[key]

    def _build(self, var, kind: str):
        """One PySD reader for all the components of ``var`` read from files
        (created by the first, ``add``-ed to by the others, as PySD's builder
        writes it), initialised once."""
        import pysd.translators.structures.abstract_expressions as ae
        from pysd.py_backend.external import ExtConstant, ExtData, ExtLookup

        cls, structure = {"constants": (ExtConstant, ae.GetConstantsStructure),
                          "data": (ExtData, ae.GetDataStructure),
                          "lookups": (ExtLookup, ae.GetLookupsStructure)}[kind]
        ext, mode = None, None
        with _reading(f"GET XLS/DIRECT {kind.upper()}", var.name):
            for comp, coords in self._parts(var, structure):
                a = comp.ast
                path = _file(self.ir, a.file)
                where = [path, a.tab]
                if kind == "data":
                    keyword = getattr(comp, "keyword", None)
                    if keyword not in DATA_MODES:
                        raise UnsupportedModel(f"data keyword {keyword!r} in {var.name!r}")
                    mode = DATA_MODES[keyword]
                    where += [a.time_row_or_col, a.cell, keyword]
                elif kind == "lookups":
                    where += [a.x_row_or_col, a.cell]
                else:
                    where += [a.cell]
                if ext is None:
                    ext = cls(*where, coords, Path(path).parent, self._final(var),
                              f"external_{kind}")
                else:
                    ext.add(*where, coords)
            ext.initialize()
        return (ext.data, mode) if kind == "data" else ext.data


def _components(var):
    seen, out = set(), []
    for entry in var.flat:
        if entry is not None and id(entry[0]) not in seen:
            seen.add(id(entry[0]))
            out.append(entry[0])
    return out


def _at(da, var, slot):
    """The values of one slot (labels of the variable's dims) in ``da``."""
    if not var.dims:
        return da.values if hasattr(da, "values") else da
    labels = var.labels()[slot]
    return da.sel(dict(zip(var.dims, labels))).values
