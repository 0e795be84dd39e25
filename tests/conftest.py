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
def small_feature_cache(tmp_path_factory) -> Path:
    """The session's per-image feature cache of config/radiomics.yaml (content-keyed: any run on the small
    cohort's images with those params may read and fill it, e.g. as ``extraction.cache_dir``)."""
    return tmp_path_factory.mktemp("feature_cache")


@pytest.fixture(scope="session")
def small_features(small_cohort, default_config, small_feature_cache):
    """Feature table (DataFrame) and cohort table of the small cohort, extracted once per session."""
    from usrad.cohort import load_cohort
    from usrad.extract import extract_cohort

    cohort = load_cohort(small_cohort, default_config)
    table = extract_cohort(cohort, REPO / "config" / "radiomics.yaml", cache_dir=small_feature_cache, progress=False)
    return table, cohort


#: Test modules, longest first (minutes on the 2-core CI machine, measured with `pytest --durations=0`): with
#: `make test`'s two pytest-xdist workers taking a whole module at a time in this order, the long modules start
#: early and the two workers finish together. Unlisted modules (seconds each) follow in their usual order.
LONGEST_FIRST = ["test_slurm.py", "test_internal_validation.py", "test_workflow.py", "test_honest_risk.py",
                 "test_demo_accuracy.py", "test_negative_controls.py", "test_radiomics_only.py", "test_determinism.py", "test_busbra.py",
                 "test_null_signature.py", "test_card.py", "test_models.py", "test_faults.py", "test_report.py",
                 "test_rule_params.py"]


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a module's own order is kept
