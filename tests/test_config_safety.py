"""Config safety: everything a later rule (split, fit_task, evaluation, predict) would refuse is an error of
`usrad validate` and of the workflow's first rule (validate_cohort), before any extraction, naming the config
key; a fuzzed config gives exit 0 or 2 with a message, never a traceback, and writes nothing."""
from __future__ import annotations

import copy
import os
import runpy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_cohort import NamedList, make_manifest, rewrite
from usrad.plan import validate_command
from usrad.plan import validate_config
from usrad.errors import UsradError
from usrad.split import make_split

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
CLINICAL = {"predictors": ["age", "er", "histology"], "categorical": ["histology"]}


def merged(overrides: dict) -> dict:
    """The tiny manifest's clinical columns, with ``overrides`` replacing whole top-level sections' keys."""
    cfg = {"clinical": dict(CLINICAL)}
    for key, value in overrides.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    return cfg


def validate(manifest: Path, cfg: dict, capsys) -> tuple[int, str]:
    """usrad validate with ``cfg``: (exit code, stderr); stdout is kept in ``validate.out``."""
    path = manifest.parent / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    rc = validate_command(str(manifest), str(path))
    out = capsys.readouterr()
    validate.out = out.out
    return rc, out.err


def run_rule_script(manifest: Path, cfg: dict, out: Path) -> None:
    """Rules validate_cohort (writes the cohort table ``out``) and check_plan (writes ``plan.txt`` beside it), as
    the workflow runs them before any extraction job."""
    smk = SimpleNamespace(input=NamedList(manifest=str(manifest)), params=SimpleNamespace(config=cfg),
                          output=NamedList(cohort=str(out)), log=[str(out.parent / "validate.log")])
    runpy.run_path(str(REPO / "workflow" / "scripts" / "validate_cohort.py"), init_globals={"snakemake": smk})
    smk = SimpleNamespace(input=NamedList(cohort=str(out)), params=SimpleNamespace(config=cfg),
                          output=NamedList(plan=str(out.parent / "plan.txt")), log=[str(out.parent / "plan.log")])
    runpy.run_path(str(REPO / "workflow" / "scripts" / "check_plan.py"), init_globals={"snakemake": smk})


@pytest.fixture
def manifest(tmp_path):
    return make_manifest(tmp_path)  # 36 patients: 14 N0, 22 N+ (12 with >= 3 nodes); columns age, er, histology


# ---------------------------------------------------------------------------------------------------------------
# Classes known from the config alone: refused by validate_config (what the Snakefile calls at parse time, before
# any rule) and by usrad validate.

CONFIG_CASES = {
    "predictor listed twice": ({"clinical": {"predictors": ["age", "age", "er"], "categorical": []}},
                               "clinical.predictors", "'age' is listed twice"),
    "categorical listed twice": ({"clinical": {"categorical": ["histology", "histology"]}},
                                 "clinical.categorical", "listed twice"),
    "categorical not a predictor": ({"clinical": {"predictors": ["age"], "categorical": ["histology"]}},
                                    "clinical.categorical", "not in clinical.predictors"),
    "outcome as predictor": ({"clinical": {"predictors": ["age", "n_positive_nodes"], "categorical": []}},
                             "clinical.predictors", "outcome"),
    "image path as predictor": ({"clinical": {"predictors": ["age", "image"], "categorical": []}},
                                "clinical.predictors", "identifies an image"),
    "patient id as predictor": ({"clinical": {"predictors": ["patient_id"], "categorical": []}},
                                "clinical.predictors", "identifies an image"),
    "task label column as predictor": ({"tasks": [{"name": "erpos", "label": "er == 1"}]},
                                       "clinical.predictors", "leakage"),
    "split column as predictor": ({"split": {"by_column": "histology", "external_values": ["ILC"]}},
                                  "split.by_column", "also a clinical predictor"),
    "test_size 0 without by_column": ({"split": {"test_size": 0}}, "split.test_size", "leaves no test set"),
    "external values without by_column": ({"split": {"external_values": ["B"]}}, "split.external_values",
                                          "set split.by_column"),
    "by_column without external values": ({"split": {"by_column": "centre"}}, "split.external_values", "is empty"),
    "unknown search-space parameter": ({"modelling": {"search_spaces": {"rf": {"depth": [3]}}}},
                                       "modelling.search_spaces.rf.depth", "has no parameter"),
    "search-space value refused (sklearn constraint)": ({"modelling": {"search_spaces": {"svm": {"C": [0, 1]}}}},
                                                        "modelling.search_spaces.svm.C", "must be a float"),
    "search-space text for a number": ({"modelling": {"search_spaces": {"rf": {"max_depth": ["deep"]}}}},
                                       "modelling.search_spaces.rf.max_depth", "refused by the estimator"),
    "search-space true/false for a number": ({"modelling": {"search_spaces": {"knn": {"n_neighbors": [True]}}}},
                                             "modelling.search_spaces.knn.n_neighbors", "true/false"),
    "search-space fractional k": ({"modelling": {"search_spaces": {"knn": {"n_neighbors": [2.5]}}}},
                                  "modelling.search_spaces.knn.n_neighbors", "must be an int"),
    "search-space parameter fixed by usrad": ({"modelling": {"search_spaces": {"rf": {"n_estimators": [50]}}}},
                                              "modelling.search_spaces.rf.n_estimators", "fixed by usrad"),
    "search-space value twice": ({"modelling": {"search_spaces": {"lr": {"C": [1.0, 1.0]}}}},
                                 "modelling.search_spaces.lr.C", "listed twice"),
    "search-space combination that cannot be fitted": ({"modelling": {"search_spaces": {"lr": {"penalty": ["l1"]}}}},
                                                        "modelling.search_spaces.lr", "cannot be fitted"),
    "xgboost unknown parameter": ({"modelling": {"search_spaces": {"xgb": {"maxdepth": [3]}}}},
                                  "modelling.search_spaces.xgb.maxdepth", "has no parameter"),
    "xgboost value of the wrong type": ({"modelling": {"search_spaces": {"xgb": {"n_estimators": [2.5]}}}},
                                        "modelling.search_spaces.xgb.n_estimators", "not a whole number"),
    "xgboost value out of range": ({"modelling": {"search_spaces": {"xgb": {"max_depth": [-1]}}}},
                                   "modelling.search_spaces.xgb.max_depth", "refused by XGBoost"),
    "unknown classifier in search spaces": ({"modelling": {"search_spaces": {"forest": {"max_depth": [3]}}}},
                                            "modelling.search_spaces", "'forest'"),
    "no classifier": ({"modelling": {"classifiers": []}}, "modelling.classifiers", "non-empty"),
    "classifier twice": ({"modelling": {"classifiers": ["lr", "lr"]}}, "modelling.classifiers", "non-unique"),
    "copy reader that is the reference": ({"modelling": {"reproducibility": {"copy_reader": "r1"}}},
                                          "modelling.reproducibility.copy_reader", "reference segmentation"),
    "perturbed copy reader not extracted": ({"modelling": {"reproducibility": {"copy_reader": "p2"}},
                                             "extraction": {"perturbed_masks": 1}},
                                            "modelling.reproducibility.copy_reader", "perturbed_masks >= 2"),
    "predicting with a model radiomics-only runs do not fit": (
        {"clinical": {"predictors": [], "categorical": []}, "predict_manifest": "new.csv",
         "predict_models": ["nomogram"]}, "predict_models", "radiomics only"),
    "predicting with a classifier not fitted": ({"modelling": {"classifiers": ["lr"]}, "predict_manifest": "new.csv",
                                                 "predict_models": ["svm"]}, "predict_models", "not fitted"),
    "number given as text (--config)": ({"modelling": {"cv_folds": "3"}}, "modelling.cv_folds", "is text here"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_config_problem_is_refused_before_anything_runs_naming_the_key(case, manifest, capsys):
    overrides, key, words = CONFIG_CASES[case]
    cfg = merged(overrides)
    with pytest.raises(UsradError) as err:
        validate_config(copy.deepcopy(cfg))  # the Snakefile's first step (rules/common.smk), before any rule
    text = str(err.value)
    assert f"key '{key}" in text and words in text, text
    rc, stderr = validate(manifest, cfg, capsys)
    assert rc == 2 and f"key '{key}" in stderr and words in stderr and "Traceback" not in stderr


# ---------------------------------------------------------------------------------------------------------------
# Classes that need the cohort: refused by usrad validate and by rule validate_cohort (which then writes nothing,
# so no extraction job can start).

def _set(column, values):
    return lambda df: df.assign(**{column: values(df) if callable(values) else values})


def _only_test_patients_have(column: str, cfg: dict):
    """Keep ``column`` only for the patients the split puts in the test set (the training rows have none)."""
    def fn(df):
        cohort = df.assign(image_id=df["patient_id"], n_positive_nodes=df["n_positive_nodes"].astype(int))
        full = validate_config(copy.deepcopy(cfg))
        split = make_split(cohort, full["tasks"], seed=full["seed"], test_size=full["split"]["test_size"])
        test = set(split.loc[split["split"] == "test", "patient_id"])
        return df.assign(**{column: [v if p in test else "" for p, v in zip(df["patient_id"], df[column])]})
    return fn


def _centre_by(rule):
    return _set("centre", lambda df: [rule(int(n), i) for i, n in enumerate(df["n_positive_nodes"])])


IMPUTE = {"clinical": {"missing": "impute"}}
ONE_TASK = {"tasks": [{"name": "metastasis", "label": "n_positive_nodes >= 1"}]}
EXTERNAL_B = {"split": {"by_column": "centre", "external_values": ["B"]}}
COHORT_CASES = {
    "imputed predictor missing everywhere": (IMPUTE, _set("er", ""), "clinical.missing", "no training patient"),
    "imputed categorical predictor missing everywhere": (IMPUTE, _set("histology", ""), "clinical.missing",
                                                        "no training patient"),
    "imputed predictor missing in every training row": (
        IMPUTE, _only_test_patients_have("er", merged(IMPUTE)), "clinical.missing", "no training patient"),
    "external values cover every row": ({"split": {"by_column": "centre", "external_values": ["A"]}},
                                        _set("centre", "A"), "split.external_values", "no patient is left"),
    "external values match no row": ({"split": {"by_column": "centre", "external_values": ["C"]}},
                                     _set("centre", "A"), "split.external_values", "no row has centre"),
    "split column not in the manifest": (EXTERNAL_B, None, "split.by_column", "not a cohort column"),
    # 22 positive patients in all; 18 of them external: 4 left to train on (the whole-cohort rule passes)
    "external split leaves 4 positive patients to train on": (
        EXTERNAL_B, _centre_by(lambda n, i: "B" if n >= 1 and i % 7 else "A"), "split.external_values",
        "in the development part"),
    "external set without a positive patient": (
        EXTERNAL_B, _centre_by(lambda n, i: "B" if n == 0 and i < 4 else "A"), "split.external_values",
        "AUC is undefined"),
    "test set too small to stratify": ({"split": {"test_size": 0.02}}, None, "split.test_size", "cannot be split"),
    "test set too large for the CV folds": ({"split": {"test_size": 0.9}}, None, "split.test_size", "at least"),
    "more CV folds than training patients": ({"modelling": {"cv_folds": 12}}, None, "modelling.cv_folds",
                                             "at least"),
    "second reader named but no mask_reader2": ({"modelling": {"reproducibility": {"copy_reader": "r2"}}}, None,
                                                "modelling.reproducibility.copy_reader", "no row of the manifest"),
    "second reader on too few images": ({}, _set("mask_reader2", lambda df: [m if i < 3 else "" for i, m in
                                                                             enumerate(df["mask"])]),
                                        "modelling.reproducibility.copy_reader", "training image(s) with a second"),
}


@pytest.mark.parametrize("case", sorted(COHORT_CASES))
def test_cohort_problem_is_refused_by_validation_before_extraction_naming_the_key(case, manifest, tmp_path, capsys):
    overrides, change, key, words = COHORT_CASES[case]
    cfg = merged(overrides)
    if change is not None:
        rewrite(manifest, change)
    full = validate_config(copy.deepcopy(cfg))  # a valid config: only the cohort shows the problem
    rc, stderr = validate(manifest, cfg, capsys)
    assert rc == 2 and f"'{key}" in stderr and words in stderr and "Traceback" not in stderr, stderr
    out = tmp_path / "results" / "cohort" / "cohort.tsv"
    with pytest.raises(SystemExit) as exc:
        run_rule_script(manifest, full, out)
    err = capsys.readouterr().err
    assert exc.value.code == 1 and not (out.parent / "plan.txt").exists() and f"'{key}" in err and words in err


def test_the_same_configs_pass_on_a_cohort_that_fits_them(manifest, capsys):
    """The checks above refuse the class, not every config: the valid variants pass (exit 0)."""
    rewrite(manifest, _centre_by(lambda n, i: "B" if i % 4 == 0 else "A"))
    for overrides in ({}, IMPUTE, EXTERNAL_B, {"split": {"test_size": 0, **EXTERNAL_B["split"]}},
                      {"modelling": {"search_spaces": {"rf": {"max_depth": [2, None]}, "xgb": {"max_depth": [2]},
                                                       "mlp": {"hidden_layer_sizes": [8, [8, 4]]}}}}):
        rc, stderr = validate(manifest, merged({**ONE_TASK, **overrides}), capsys)
        assert rc == 0, (overrides, stderr)


def test_numeric_split_column_matches_external_values_given_as_text(manifest, capsys):
    rewrite(manifest, _centre_by(lambda n, i: "2" if i % 4 == 0 else "1"))
    rc, stderr = validate(manifest, merged({**ONE_TASK, "split": {"by_column": "centre", "external_values": ["2"]}}),
                          capsys)
    assert rc == 0 and "external set (centre in ['2']): 9 patients, never trained on" in validate.out, stderr
    rewrite(manifest, lambda df: df.rename(columns={"centre": "site"}))  # not a text column: read as numbers
    rc, stderr = validate(manifest, merged({**ONE_TASK, "split": {"by_column": "site", "external_values": ["2"]}}),
                          capsys)
    assert rc == 0, stderr


def test_radiomics_only_config_is_accepted_and_says_so(manifest, capsys):
    path = manifest.parent / "config.yaml"
    path.write_text(yaml.safe_dump({"clinical": {"predictors": [], "categorical": []}}))
    assert validate_command(str(manifest), str(path)) == 0
    assert ("radiomics only: no clinical predictors; clinical, nomogram and combined models are not fitted"
            in capsys.readouterr().out)


# ---------------------------------------------------------------------------------------------------------------
# The workflow itself: Snakemake's --config strings, and a run that stops in validate_cohort before extraction.

def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "1",
           "--configfile", str(workdir / "config.yaml"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_snakemake_config_strings_and_plan_problems_stop_the_workflow_before_extraction(manifest, tmp_path):
    cfg = merged({"cohort": {"manifest": str(manifest)}, "radiomics_params": str(REPO / "config" / "radiomics.yaml"),
                  "extraction": {"shards": 2}})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = _snakemake(tmp_path, "-n", "--config", 'modelling={cv_folds: 3}')  # Snakemake passes 3 as text: read
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]  # as the schema's integer (usrad.config)
    proc = _snakemake(tmp_path, "-n", "--config", 'modelling={cv_folds: three}')
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "key 'modelling.cv_folds'" in text and "Traceback" not in text
    proc = _snakemake(tmp_path, "-n", "--config", "split={test_size: 0.0}", "seed=7")
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "key 'split.test_size'" in text and "Traceback" not in text
    # The checks that need the estimators (imported only when the config sets search spaces) and the bundles:
    # refused when the Snakefile is read, with the schema's own problems.
    proc = _snakemake(tmp_path, "-n", "--config", "modelling={search_spaces: {svm: {C: [0, 1]}}}", "seed=x")
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in text, text[-2000:]
    assert "key 'seed'" in text and "modelling.search_spaces.svm.C" not in text  # the schema's problems come first
    proc = _snakemake(tmp_path, "-n", "--config", "modelling={classifiers: [lr, svm], search_spaces: {svm: {C: [0, 1]}}}",
                      "predict_manifest=new.csv", "predict_models=[rf]")
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in text, text[-2000:]
    assert "modelling.search_spaces.svm.C" in text and "key 'predict_models': 'rf' is not fitted" in text
    proc = _snakemake(tmp_path, "-n", "--config", "seed=7")  # a top-level number arrives as a number: fine
    assert proc.returncode == 0, proc.stdout[-2000:]
    proc = _snakemake(tmp_path, "--config", "split={by_column: device, external_values: [GE]}", "--",
                      "results/features/features.parquet")
    assert proc.returncode != 0, proc.stdout[-2000:]
    log = (tmp_path / "results" / "logs" / "check_plan.log").read_text()
    assert "key 'split.by_column'" in log and "'device' is not a cohort column" in log
    assert not (tmp_path / "results" / "cohort" / "plan.txt").exists()
    assert not (tmp_path / "results" / "features").exists(), "no extraction job may start"


# ---------------------------------------------------------------------------------------------------------------
# Fuzz: the default config mutated (types, values, lists, duplicates, extra keys) through usrad validate.

def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


BASE = validate_config({"clinical": dict(CLINICAL)})
PATHS = [p for p in _paths(BASE) if p]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 40), st.floats(-1, 2, allow_nan=False),
                    st.sampled_from(["", "0", "0.5", "true", "null", "auto", "r2", "p1", "lr", "rf", "svm", "age", "er",
                                     "histology", "image", "patient_id", "n_positive_nodes", "centre", "A", "x y",
                                     "n_positive_nodes >= 1", "er == 1", "max_depth", "C", "results/x", "../up"]),
                    st.text(max_size=5))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(st.sampled_from(
    ["lr", "rf", "xgb", "knn", "C", "max_depth", "n_neighbors", "name", "label", "extra"]), st.lists(SCALARS, max_size=2),
    max_size=2))
RANDOM_MUTATION = st.tuples(st.sampled_from(["set", "delete", "duplicate", "empty", "extra"]), st.sampled_from(PATHS),
                            VALUES)
#: Plausible values of the keys the cohort checks read, so that fuzzed configs also reach them (not only the schema).
PLAUSIBLE = {
    ("split", "by_column"): st.sampled_from([None, "centre", "histology", "age", "device"]),
    ("split", "external_values"): st.sampled_from([[], ["A"], ["B"], ["A", "B"], ["Z"], ["40"]]),
    ("split", "test_size"): st.sampled_from([0, 0.02, 0.1, 0.25, 0.5, 0.9]),
    ("modelling", "cv_folds"): st.integers(2, 16),
    ("clinical", "missing"): st.sampled_from(["refuse", "impute"]),
    ("clinical", "predictors"): st.lists(st.sampled_from(["age", "er", "histology"]), max_size=3),
    ("clinical", "categorical"): st.sampled_from([[], ["histology"]]),
    ("modelling", "reproducibility", "copy_reader"): st.sampled_from(["auto", "r2", "p1", None]),
    ("extraction", "perturbed_masks"): st.integers(0, 2),
    ("modelling", "classifiers"): st.lists(st.sampled_from(["lr", "nb", "svm", "knn"]), min_size=1, max_size=2,
                                           unique=True),
    ("tasks", 0, "label"): st.sampled_from(["n_positive_nodes >= 1", "n_positive_nodes >= 9", "er == 1",
                                            "n_positive_nodes >= 0"]),
    ("predict_manifest",): st.sampled_from([None, "new.csv"]),
    ("modelling", "search_spaces"): st.dictionaries(
        st.sampled_from(["lr", "svm", "rf", "xgb", "knn", "nb", "mlp"]),
        st.dictionaries(st.sampled_from(["C", "gamma", "penalty", "solver", "max_depth", "n_estimators", "booster",
                                         "min_samples_leaf", "n_neighbors", "weights", "var_smoothing", "alpha",
                                         "hidden_layer_sizes", "max_bin", "reg_lambda"]),
                        st.lists(SCALARS, min_size=1, max_size=2), min_size=1, max_size=2), max_size=2),
    ("split",): st.fixed_dictionaries({"by_column": st.sampled_from(["centre", "age"]),
                                       "external_values": st.sampled_from([["A"], ["B"], ["Z"], ["A", "B"], ["45"]]),
                                       "test_size": st.sampled_from([0, 0.25, 0.6])}),
}
PLAUSIBLE_MUTATION = st.sampled_from(sorted(PLAUSIBLE, key=str)).flatmap(
    lambda path: PLAUSIBLE[path].map(lambda value: ("set", path, value)))
MUTATION = st.one_of(RANDOM_MUTATION, PLAUSIBLE_MUTATION)


def _mutate(cfg: dict, kind: str, path: tuple, value) -> None:
    parent = cfg
    for part in path[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return
    last = path[-1]
    if not isinstance(parent, (dict, list)) or (isinstance(parent, list) and (not isinstance(last, int) or last >= len(parent))) \
            or (isinstance(parent, dict) and last not in parent):
        return
    if kind == "set":
        parent[last] = value
    elif kind == "delete":
        del parent[last]
    elif kind == "duplicate" and isinstance(parent[last], list) and parent[last]:
        parent[last].append(copy.deepcopy(parent[last][0]))
    elif kind == "empty":
        parent[last] = [] if isinstance(parent[last], list) else {} if isinstance(parent[last], dict) else ""
    elif kind == "extra" and isinstance(parent[last], dict):
        parent[last]["unexpected_key"] = value


@pytest.fixture(scope="module")
def fuzz_manifest(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz_cohort")
    manifest = make_manifest(folder)
    rewrite(manifest, _centre_by(lambda n, i: "B" if i % 4 == 0 else "A"))
    return manifest


@settings(max_examples=int(os.environ.get("USRAD_FUZZ_EXAMPLES", 60)), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_fuzzed_config_gives_exit_0_or_2_with_a_message_and_writes_nothing(fuzz_manifest, mutations, tmp_path,
                                                                           monkeypatch, capsys):
    cfg = copy.deepcopy(BASE)
    for kind, path, value in mutations:
        _mutate(cfg, kind, path, value)
    work = tmp_path / "cwd"
    work.mkdir(exist_ok=True)
    monkeypatch.chdir(work)
    config_path = tmp_path / "fuzz.yaml"
    config_path.write_text(yaml.safe_dump(cfg))
    before = sorted(p for p in fuzz_manifest.parent.rglob("*")) + sorted(work.rglob("*"))
    rc = validate_command(str(fuzz_manifest), str(config_path))  # anything but UsradError would raise here
    out = capsys.readouterr()
    assert rc in (0, 2)
    if rc == 0:
        assert out.out.startswith("OK: ") and not out.err
    else:
        assert out.err.strip() and "Traceback" not in out.err
        assert "key '" in out.err or "Manifest" in out.err or "PyRadiomics" in out.err, out.err
    assert sorted(p for p in fuzz_manifest.parent.rglob("*")) + sorted(work.rglob("*")) == before
    assert pd.read_csv(fuzz_manifest).shape == (36, 9)  # the manifest itself is untouched
