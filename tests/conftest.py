"""Shared fixtures: where the models and the SDXorg test models live."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
JUAREZ = MODELS / "juarez_brick_kilns.mdl"
# CI clones the project with ../shared beside it (the SDXorg test models).
TEST_MODELS = ROOT.parent / "shared" / "test-models" / "tests"


@pytest.fixture(scope="session")
def test_models_dir() -> Path:
    if not TEST_MODELS.is_dir():
        pytest.skip(f"SDXorg test models not found at {TEST_MODELS}")
    return TEST_MODELS


@pytest.fixture(scope="session")
def juarez_path() -> Path:
    assert JUAREZ.is_file(), f"the Juárez model is missing: {JUAREZ}"
    return JUAREZ


@pytest.fixture(scope="session")
def juarez(juarez_path):
    from sd.model import load

    return load(juarez_path)
