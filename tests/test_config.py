"""Config validation: defaults come from the schema, every problem names its key."""
from pathlib import Path

import pytest

from usrad.config import load_config, load_schema, validate_config
from usrad.errors import UsradError


def test_empty_config_gets_every_schema_default():
    cfg = validate_config({})
    assert cfg["seed"] == 20240611
    assert cfg["cohort"]["manifest"] is None
    assert cfg["cohort"]["simulate"]["n_patients"] == 671
    assert [t["name"] for t in cfg["tasks"]] == ["metastasis", "burden"]
    assert cfg["extraction"]["shards"] == 16


def test_shipped_config_is_valid_and_matches_schema_defaults(repo):
    cfg = load_config(repo / "config" / "config.yaml")
    assert cfg == validate_config({}), "config/config.yaml should spell out the defaults, not differ from them"


def test_unknown_key_is_named():
    with pytest.raises(UsradError) as err:
        validate_config({"extraction": {"shard": 4}})
    assert "'extraction'" in str(err.value) and "shard" in str(err.value)


def test_wrong_type_names_the_nested_key():
    with pytest.raises(UsradError) as err:
        validate_config({"cohort": {"simulate": {"n_patients": "many"}}})
    assert "cohort.simulate.n_patients" in str(err.value)


def test_all_problems_are_reported_at_once():
    with pytest.raises(UsradError) as err:
        validate_config({"seed": -1, "extraction": {"shards": 0}})
    assert len(err.value.problems) == 2


def test_outcome_refused_as_clinical_predictor():
    with pytest.raises(UsradError) as err:
        validate_config({"clinical": {"predictors": ["age", "n_positive_nodes"], "categorical": []}})
    assert "n_positive_nodes" in str(err.value) and "outcome" in str(err.value)


def test_duplicate_task_names_refused():
    task = {"name": "t", "label": "n_positive_nodes >= 1"}
    with pytest.raises(UsradError, match="more than once"):
        validate_config({"tasks": [task, task]})


def test_yaml_syntax_error_is_a_usrad_error(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("seed: [1, 2\n")
    with pytest.raises(UsradError, match="not valid YAML"):
        load_config(bad)


def test_every_schema_key_has_description_and_default():
    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{path}{key} has no description"
            if path or key != "tasks":
                assert "default" in sub or key in ("name", "label"), f"{path}{key} has no default"
            walk(sub, f"{path}{key}.")
        if "items" in node and isinstance(node["items"], dict):
            walk(node["items"], path)

    walk(load_schema(), "")


def test_modelling_settings_are_the_schema_defaults():
    from usrad.settings import CLASSIFIERS, modelling_settings

    defaults = validate_config({})["modelling"]
    assert modelling_settings(None) == defaults and modelling_settings({}) == defaults
    assert list(CLASSIFIERS) == defaults["classifiers"]
    assert modelling_settings({"lasso": {"n_C": 5}, "search_spaces": {"lr": {"C": [1.0]}}})["lasso"] == dict(
        defaults["lasso"], n_C=5)


def _merged(*dicts):
    """Configs merged as Snakemake merges ``--configfile``s: later files win, mappings merged key by key."""
    out: dict = {}
    for d in dicts:
        for key, value in (d or {}).items():
            out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


SHIPPED = sorted(p.name for p in (Path(__file__).resolve().parents[1] / "config").glob("*.yaml")
                 if p.name not in ("config.yaml", "radiomics.yaml"))


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_overlay_is_valid_on_the_default_config(name):
    import yaml

    folder = Path(__file__).resolve().parents[1] / "config"
    layers = ["config.yaml"] + (["busbra.yaml"] if name.startswith("busbra-") else []) + [name]
    cfg = validate_config(_merged(*(yaml.safe_load((folder / f).read_text()) for f in layers)), source=name)
    overlay = yaml.safe_load((folder / name).read_text())
    assert cfg["results_dir"] == overlay.get("results_dir", cfg["results_dir"]) and len(SHIPPED) >= 5
