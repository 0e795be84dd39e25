"""Shared fixtures: one tiny simulated cohort (with extracted features) per test session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUSBRA = (REPO.parent / "shared" / "data" / "busbra").resolve()
SMALL_N = int(os.environ.get("USRAD_TEST_N", "80"))
SEED = 1234


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def busbra_dir() -> Path:
    if not (BUSBRA / "bus_data.csv").exists():
        pytest.skip(f"BUS-BRA data not found at {BUSBRA} (expected ../shared/data/busbra beside the repo)")
    return BUSBRA


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory) -> Path:
    """A small simulated cohort (SMALL_N patients, two reader masks): returns its manifest path."""
    from usrad.simulate import simulate_cohort

    out = tmp_path_factory.mktemp("small_cohort")
    return simulate_cohort(out / "demo", n_patients=SMALL_N, seed=SEED, progress=False)


@pytest.fixture(scope="session")
def default_config() -> dict:
    from usrad.config import load_config

    return load_config(REPO / "config" / "config.yaml")


@pytest.fixture(scope="session")
def small_features(small_cohort, default_config, tmp_path_factory):
    """Feature table (DataFrame) and cohort table of the small cohort, extracted once per session."""
    from usrad.cohort import load_cohort
    from usrad.extract import extract_cohort

    cohort = load_cohort(small_cohort, default_config)
    cache = tmp_path_factory.mktemp("feature_cache")
    table = extract_cohort(cohort, REPO / "config" / "radiomics.yaml", cache_dir=cache, progress=False)
    return table, cohort
