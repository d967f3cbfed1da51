"""Shared fixtures: where the models and the SDXorg test models live.

Tests that need ``../shared`` (the SDXorg test models beside the project, as CI
has them) call :func:`need_shared`: without it they skip with a message naming
it, and when the environment variable ``CI`` is set (``.ci/run`` sets it) such
a skip is a failure instead, so CI can never pass by skipping them.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
JUAREZ = MODELS / "juarez_brick_kilns.mdl"
SHARED = ROOT.parent / "shared"
TEST_MODELS = SHARED / "test-models" / "tests"


def need_shared(path: Path) -> Path:
    """``path`` (under ``../shared``) if it exists; else skip, or fail under CI."""
    if path.exists():
        return path
    message = (f"needs ../shared beside the project (SDXorg test models): {path} is absent")
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI runs with ../shared, so this must not skip", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def test_models_dir() -> Path:
    return need_shared(TEST_MODELS)


@pytest.fixture(scope="session")
def juarez_path() -> Path:
    assert JUAREZ.is_file(), f"the Juárez model is missing: {JUAREZ}"
    return JUAREZ


@pytest.fixture(scope="session")
def juarez(juarez_path):
    from sd.model import load

    return load(juarez_path)
