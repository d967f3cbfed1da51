"""The test suite's own rules: tests that need ../shared say so (and fail under CI
rather than skip), no test reads an absolute path, every test asserts."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from conftest import need_shared

TESTS = Path(__file__).parent


def test_missing_shared_skips_naming_it_and_fails_under_ci(monkeypatch, tmp_path):
    missing = tmp_path / "test-models"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"needs \.\./shared.*test-models is absent"):
        need_shared(missing)
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="CI runs with ../shared"):
        need_shared(missing)
    assert need_shared(tmp_path) == tmp_path


def test_no_test_reads_an_absolute_path():
    pattern = re.compile(r"""["'](/(work|home|root|Users|mnt|opt)/[^"']*)["']""")
    found = [f"{f.name}: {m.group(1)}" for f in TESTS.glob("*.py")
             for m in pattern.finditer(f.read_text(encoding="utf-8"))]
    assert not found, found


def test_shared_is_reached_only_through_need_shared():
    """A test that builds its own path to ../shared would fail (or pass by not
    looking) instead of skipping with the message, or failing under CI."""
    offenders = [f.name for f in TESTS.glob("test_*.py")
                 if re.search(r"""["']shared["']""", f.read_text(encoding="utf-8"))]
    assert not offenders, offenders


def _asserts(fn: ast.FunctionDef, helpers: set[str]) -> bool:
    for node in ast.walk(fn):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if re.search(r"raises|warns|assert_|\.fail$", name) or name in helpers:
                return True
    return False


def test_every_test_asserts_something():
    """A test that can only pass (or skip) proves nothing."""
    silent = []
    for f in sorted(TESTS.glob("test_*.py")):
        tree = ast.parse(f.read_text(encoding="utf-8"))
        functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
        helpers = {n.name for n in functions if not n.name.startswith("test_")
                   and _asserts(n, set())}
        silent += [f"{f.name}::{n.name}" for n in functions
                   if n.name.startswith("test_") and not _asserts(n, helpers)]
    assert not silent, silent
