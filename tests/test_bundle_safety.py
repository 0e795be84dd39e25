"""Model bundles cannot be changed silently: every file is covered by MANIFEST.sha256, every value of bundle.json
is checked (types, finite numbers, threshold in [0, 1], paths inside the folder), a model file of another bundle
or of another kind is refused, and bundles of the old format are refused with a message to rebuild them.

The bundles are fitted once per session on synthetic data whose columns carry the names of a tiny PyRadiomics
parameter set (first order + 2D shape of the original image), so that tests/test_cli_safety.py can score real
PNG images with them.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usrad.bundle import (
    FORMAT,
    MANIFEST_FILE,
    META_FILE,
    MODEL_FILE,
    check_metadata,
    load_bundle,
    manifest_text,
    read_bundle_meta,
    save_bundle,
)
from usrad.errors import UsradError

TINY_PARAMS = """setting:
  binWidth: 25
  label: 1
  force2D: false
  minimumROIDimensions: 2
  minimumROISize: 20
  preCrop: false
imageType:
  Original: {}
featureClass:
  firstorder: []
  shape2D: []
"""
TASK = {"name": "metastasis", "label": "n_positive_nodes >= 1"}
CLIN = {"predictors": ["age", "us_size_mm", "us_node_suspicious", "birads", "grade"],
        "categorical": ["birads", "grade"]}
FAST = {"classifiers": ["lr"], "combined_classifiers": ["lr"], "search_spaces": {"lr": {"C": [1.0]}},
        "lasso": {"cv_folds": 3, "n_C": 5}, "cv_folds": 3}
MODELS = ("radscore", "lr", "clinical", "nomogram", "combined")


def tiny_params_file(tmp_path_factory) -> Path:
    """The tiny PyRadiomics parameter file, once per session (shared with test_cli_safety.py)."""
    path = tmp_path_factory.getbasetemp() / "safety_tiny_params" / "tiny.yaml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(TINY_PARAMS)
    return path


def fitted_bundles(tmp_path_factory) -> Path:
    """``models/`` folder of the five bundles of one fitted task (synthetic values, real feature names), fitted
    once per session (shared with test_cli_safety.py through a folder of the session's base temp dir)."""
    from usrad.extract import get_extractor
    from usrad.models import fit_task, synthetic_modelling_data
    from usrad.split import make_split

    out = tmp_path_factory.getbasetemp() / "safety_bundles"
    if (out / "done").exists():
        return out / "models"
    names = get_extractor(tiny_params_file(tmp_path_factory)).expected_features()
    feats, cohort = synthetic_modelling_data(n_patients=120, n_features=len(names), signal=3.0, seed=5)
    synthetic = [c for c in feats.columns if c not in ("patient_id", "image_id", "reader")]
    feats = feats.rename(columns=dict(zip(synthetic, names)))
    meta = {"params_text": TINY_PARAMS, "params_sha256": hashlib.sha256(TINY_PARAMS.encode()).hexdigest()}
    fit_task(feats, cohort, make_split(cohort, [TASK], seed=2), TASK, FAST, CLIN, seed=3, n_jobs=1, out_dir=out,
             feature_meta=meta)
    (out / "done").write_text("ok\n")
    return out / "models"


@pytest.fixture(scope="session")
def tiny_params(tmp_path_factory) -> Path:
    return tiny_params_file(tmp_path_factory)


@pytest.fixture(scope="session")
def bundles(tmp_path_factory) -> Path:
    return fitted_bundles(tmp_path_factory)


def copy_bundle(bundles: Path, name: str, dst: Path) -> Path:
    shutil.copytree(bundles / name, dst)
    return dst


def reseal(d: Path) -> None:
    """What a forger (or a careless script) would do: recompute model_sha256 and the manifest after an edit."""
    files = {p.name: p.read_bytes() for p in d.iterdir() if p.name != MANIFEST_FILE and p.is_file()}
    (d / MANIFEST_FILE).write_text(manifest_text(files))


def edit_meta(d: Path, change, seal: bool = True) -> None:
    meta = json.loads((d / META_FILE).read_text())
    change(meta)
    (d / META_FILE).write_text(json.dumps(meta, indent=2))
    if seal:
        reseal(d)


def refusal(d: Path) -> UsradError:
    with pytest.raises(UsradError) as err:
        load_bundle(d)
    return err.value


# ----------------------------------------------------------------------------------------- the format
def test_a_bundle_holds_exactly_three_files_and_its_manifest_lists_the_other_two(bundles):
    for name in MODELS:
        d = bundles / name
        assert sorted(p.name for p in d.iterdir()) == [MANIFEST_FILE, META_FILE, MODEL_FILE]
        lines = [ln for ln in (d / MANIFEST_FILE).read_text().splitlines() if not ln.startswith("#")]
        listed = {ln.split("  ", 1)[1]: ln.split("  ", 1)[0] for ln in lines}
        assert listed == {n: hashlib.sha256((d / n).read_bytes()).hexdigest() for n in (META_FILE, MODEL_FILE)}
        _, meta = load_bundle(d)
        assert meta["format"] == FORMAT and meta["model"] == name and 0 <= meta["threshold"] <= 1
        assert read_bundle_meta(d) == meta


def test_the_folder_of_a_bundle_json_or_the_json_itself_both_load(bundles):
    a = load_bundle(bundles / "lr")[1]
    assert load_bundle(bundles / "lr" / META_FILE)[1] == a == load_bundle(bundles / "lr" / MODEL_FILE)[1]


def test_a_path_that_is_no_bundle_is_named(bundles, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    for path, words in ((tmp_path / "notes.txt", "is a file"), (tmp_path / "empty", "has no bundle.json"),
                        (tmp_path / "missing", "not found")):
        err = refusal(path)
        assert words in str(err) and err.problems[0].file == str(path)


# ----------------------------------------------------------------------------------------- any file changed
FILE_DAMAGE = ["flip_byte", "truncate", "empty", "delete", "folder", "symlink_out", "symlink_in"]


def _damage(d: Path, name: str, how: str, outside: Path) -> None:
    path = d / name
    data = path.read_bytes()
    if how == "flip_byte":
        b = bytearray(data)
        b[len(b) // 2] ^= 0x01
        path.write_bytes(bytes(b))
    elif how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "delete":
        path.unlink()
    elif how == "folder":
        path.unlink()
        path.mkdir()
    elif how in ("symlink_out", "symlink_in"):  # same bytes, but not the bundle's own file
        target = outside / name if how == "symlink_out" else d / f"real_{name}"
        target.write_bytes(data)
        path.unlink()
        path.symlink_to(target)


@pytest.mark.parametrize("name", [META_FILE, MODEL_FILE, MANIFEST_FILE])
@pytest.mark.parametrize("how", FILE_DAMAGE)
def test_any_file_of_a_bundle_changed_missing_or_replaced_is_refused_naming_it(bundles, tmp_path, name, how):
    d = copy_bundle(bundles, "nomogram", tmp_path / "b")
    (tmp_path / "out").mkdir()
    _damage(d, name, how, tmp_path / "out")
    err = refusal(d)
    assert "refusing" in str(err) or "not found" in str(err) or "incomplete" in str(err), str(err)
    named = {p.file for p in err.problems}
    if name == MANIFEST_FILE:  # a changed manifest no longer matches the files it lists
        assert named & {str(d / n) for n in (META_FILE, MODEL_FILE, MANIFEST_FILE)} or how == "delete", str(err)
    else:
        assert str(d / name) in named, str(err)
    with pytest.raises(UsradError):
        read_bundle_meta(d)  # the metadata alone is not trusted either


@pytest.mark.parametrize("extra", ["notes.txt", ".hidden", "model.skops.bak", "sub/", "link"])
def test_an_extra_file_or_folder_in_a_bundle_is_refused_naming_it(bundles, tmp_path, extra):
    d = copy_bundle(bundles, "lr", tmp_path / "b")
    if extra.endswith("/"):
        (d / extra).mkdir()
    elif extra == "link":
        (d / extra).symlink_to("/etc/passwd")
    else:
        (d / extra).write_text("anything")
    err = refusal(d)
    assert str(d / extra.rstrip("/")) in {p.file for p in err.problems}, str(err)


def test_a_manifest_with_a_bad_line_or_a_path_outside_the_folder_is_refused(bundles, tmp_path):
    for i, line in enumerate(["not a hash line", f"{'0' * 64}  ../lr/model.skops", f"{'0' * 64}  /etc/passwd",
                              f"{'0' * 64}  sub/model.skops"]):
        d = copy_bundle(bundles, "lr", tmp_path / f"b{i}")
        with open(d / MANIFEST_FILE, "a") as fh:
            fh.write(line + "\n")
        err = refusal(d)
        assert any(p.file == str(d / MANIFEST_FILE) and "line" in p.message for p in err.problems), str(err)


@pytest.mark.parametrize("edit", [
    lambda m: m.update(threshold=0.9), lambda m: m.update(threshold=m["threshold"] + 1e-12),
    lambda m: m.update(radscore_formula="rad_score = 0"), lambda m: next(iter(m["nomogram_inputs"].values())).update(max=999.0),
    lambda m: m.update(pyradiomics=m["pyradiomics"] + "# x\n",
                       pyradiomics_params_sha256=hashlib.sha256((m["pyradiomics"] + "# x\n").encode()).hexdigest()),
    lambda m: m.update(model_file="../lr/model.skops"), lambda m: m.update(selected_features=[]),
    lambda m: m.pop("task"), lambda m: m.update(extra_key=1),
])
def test_any_edit_of_bundle_json_is_refused_even_when_the_new_values_are_plausible(bundles, tmp_path, edit):
    d = copy_bundle(bundles, "nomogram", tmp_path / "b")
    edit_meta(d, edit, seal=False)
    err = refusal(d)
    assert "was modified after it was written" in str(err) and err.problems[0].file == str(d / META_FILE)


# ----------------------------------------------------------------------------------------- every value checked
BAD_VALUES = [  # (key, value) written into bundle.json and resealed: each must be refused naming the key
    ("threshold", "NaN"), ("threshold", None), ("threshold", [0.5]), ("threshold", "0.5"), ("threshold", 1.5),
    ("threshold", -0.01), ("threshold", True), ("threshold", {"v": 0.5}), ("threshold", 1e999),
    ("model_file", "../lr/model.skops"), ("model_file", "/etc/passwd"), ("model_file", "sub/model.skops"),
    ("model_file", ""), ("model_file", "."), ("model_file", 3), ("model_file", "other.skops"),
    ("model_sha256", "abc"), ("model_sha256", "0" * 64), ("task", 5), ("task", ""), ("model", None),
    ("kind", "quantum"), ("cv_auc", 2.0), ("cv_auc", "high"), ("seed", -1), ("seed", 1.5),
    ("n_train_images", "36"), ("selected_features", "age"), ("selected_features", [1, 2]),
    ("versions", ["1.0"]), ("pyradiomics", 5), ("pyradiomics_params_sha256", "0" * 64),
    ("reproducibility", {"copy_reader": "r2", "icc_threshold": 7}), ("reproducibility", "r2"),
    ("hyperparameters", {"C": {"nested": 1}}), ("hyperparameters", [1]),
    ("nomogram_inputs", {"age": {"min": 80.0, "max": 20.0, "binary": False}}),
    ("nomogram_inputs", {"age": {"min": "a", "max": 2.0, "binary": False}}), ("nomogram_inputs", []),
    ("nomogram_inputs", {"rad_score": {"min": -1e308, "max": 1e308, "binary": False}}),
    ("format", "usrad-bundle/99"), ("format", None),
]


@pytest.mark.parametrize("key,value", BAD_VALUES, ids=[f"{k}={json.dumps(v)[:20]}" for k, v in BAD_VALUES])
def test_a_resealed_bundle_with_a_wrong_value_is_refused_naming_the_key(bundles, tmp_path, key, value):
    d = copy_bundle(bundles, "nomogram", tmp_path / "b")
    text = (d / META_FILE).read_text()
    meta = json.loads(text)
    if value == "NaN" and key == "threshold":  # JSON's non-standard NaN literal, as Python's json writes it
        text = text.replace(json.dumps(meta["threshold"]), "NaN", 1)
        (d / META_FILE).write_text(text)
        reseal(d)
    else:
        edit_meta(d, lambda m: m.update({key: value}))
    err = refusal(d)
    assert "refusing" in str(err) or "format" in str(err), str(err)
    assert any(p.column == key or key in p.message for p in err.problems), str(err)
    assert all(p.file == str(d / META_FILE) for p in err.problems), str(err)


@pytest.mark.parametrize("key", ["threshold", "model_file", "model_sha256", "task", "model", "format"])
def test_a_resealed_bundle_without_a_required_key_is_refused_naming_it(bundles, tmp_path, key):
    d = copy_bundle(bundles, "lr", tmp_path / "b")
    edit_meta(d, lambda m: m.pop(key))
    err = refusal(d)
    assert any(p.column == key for p in err.problems), str(err)


@pytest.mark.parametrize("raw,words", [
    (b"[1, 2]", "not a JSON object"), (b"null", "not a JSON object"), (b"{}", "key is missing"),
    (b'"text"', "not a JSON object"), (b"\xff\xfe{}", "not UTF-8"), (b"{\"format\": ", "not valid JSON"),
    (b"not json", "not valid JSON"), (b"{\"threshold\": Infinity}", "column 'threshold'"),
    (b"[" * 100000 + b"]" * 100000, "not valid JSON"),
])
def test_bundle_json_that_is_not_an_object_is_a_message_naming_the_file(bundles, tmp_path, raw, words):
    d = copy_bundle(bundles, "lr", tmp_path / "b")
    (d / META_FILE).write_bytes(raw)
    reseal(d)
    err = refusal(d)
    assert words in str(err) and str(d / META_FILE) in str(err)


def test_the_pyradiomics_text_must_match_its_sha256(bundles, tmp_path):
    d = copy_bundle(bundles, "radscore", tmp_path / "b")
    edit_meta(d, lambda m: m.update(pyradiomics=m["pyradiomics"].replace("binWidth: 25", "binWidth: 5")))
    err = refusal(d)
    assert [p.column for p in err.problems] == ["pyradiomics_params_sha256"]


# ----------------------------------------------------------------------------------------- the model file
def test_another_bundles_model_file_is_refused_by_hash_and_by_kind_when_resealed(bundles, tmp_path):
    from usrad.predict import load_model

    d = copy_bundle(bundles, "clinical", tmp_path / "b")
    shutil.copy(bundles / "lr" / MODEL_FILE, d / MODEL_FILE)
    err = refusal(d)
    assert any(p.file == str(d / MODEL_FILE) and "changed" in p.message for p in err.problems)
    edit_meta(d, lambda m: m.update(model_sha256=hashlib.sha256((d / MODEL_FILE).read_bytes()).hexdigest()))
    load_bundle(d)  # a forged manifest: the bundle layer cannot tell, the model's own structure can
    with pytest.raises(UsradError, match="do not belong together") as err:
        load_model(d)
    assert err.value.problems[0].column == "kind"


@pytest.mark.parametrize("edit", ["drop", "add"])
def test_nomogram_ranges_that_do_not_list_exactly_the_models_inputs_are_refused(bundles, tmp_path, edit):
    from usrad.predict import load_model

    d = copy_bundle(bundles, "nomogram", tmp_path / "b")
    if edit == "drop":
        edit_meta(d, lambda m: m["nomogram_inputs"].pop("rad_score"))
    else:
        edit_meta(d, lambda m: m["nomogram_inputs"].update(zzz={"min": 0.0, "max": 1.0, "binary": False}))
    with pytest.raises(UsradError, match="do not belong together") as err:
        load_model(d)
    assert err.value.problems[0].column == "nomogram_inputs"


def test_a_valid_skops_file_of_another_kind_of_object_is_refused(bundles, tmp_path):
    import skops.io as sio
    from sklearn.preprocessing import StandardScaler

    d = copy_bundle(bundles, "lr", tmp_path / "b")
    (d / MODEL_FILE).write_bytes(sio.dumps(StandardScaler().fit(np.eye(3))))
    edit_meta(d, lambda m: m.update(model_sha256=hashlib.sha256((d / MODEL_FILE).read_bytes()).hexdigest()))
    err = refusal(d)
    assert "does not hold a usrad model" in str(err) and "StandardScaler" in str(err)


# ----------------------------------------------------------------------------------------- old format, save
def test_a_bundle_of_the_old_format_is_refused_with_a_message_to_rebuild_it(bundles, tmp_path):
    d = copy_bundle(bundles, "lr", tmp_path / "b")
    (d / MANIFEST_FILE).unlink()
    edit_meta(d, lambda m: m.update(format="usrad-bundle/1"), seal=False)
    err = refusal(d)
    assert "older usrad" in str(err) and "rebuild it" in str(err) and err.problems[0].column == "format"
    with pytest.raises(UsradError, match="rebuild it"):
        read_bundle_meta(d)


def test_a_bundle_whose_manifest_was_never_written_is_incomplete(bundles, tmp_path):
    d = copy_bundle(bundles, "lr", tmp_path / "b")
    (d / MANIFEST_FILE).unlink()
    err = refusal(d)
    assert "MANIFEST.sha256 is missing" in str(err) and "rebuild it" in str(err)


def test_saving_metadata_the_loader_would_refuse_fails_at_save_time_and_leaves_no_manifest(bundles, tmp_path):
    model, meta = load_bundle(bundles / "lr")
    for bad in ({"threshold": float("nan")}, {"threshold": 1.2}, {"cv_auc": float("inf"), "seed": -3}):
        d = tmp_path / f"b{len(list(tmp_path.iterdir()))}"
        with pytest.raises(ValueError, match="load_bundle would refuse"):
            save_bundle(model, d, {**meta, **bad})
        assert not (d / MANIFEST_FILE).exists()
    save_bundle(model, tmp_path / "ok", meta)  # the same metadata with valid values is a loadable bundle
    assert load_bundle(tmp_path / "ok")[1]["threshold"] == meta["threshold"]


def test_check_metadata_names_every_bad_key_at_once():
    meta = {"format": FORMAT, "model_file": "m", "model_sha256": "0" * 64, "threshold": math.inf, "task": 1,
            "model": "x", "seed": True}
    assert sorted({p.column for p in check_metadata(meta, "b.json")}) == ["seed", "task", "threshold"]


# ----------------------------------------------------------------------------------------- fuzz
def _json_paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _json_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _json_paths(v, prefix + (i,))


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False)
                           | st.text(max_size=12), lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


def _mutate(meta, data):
    paths = [p for p in _json_paths(meta) if p]
    path = data.draw(st.sampled_from(paths))
    parent = meta
    for k in path[:-1]:
        parent = parent[k]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(JSON_VALUES)


@settings(max_examples=int(os.environ.get("USRAD_FUZZ_EXAMPLES", "60")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_random_edits_of_bundle_json_are_refused_or_leave_the_bundle_unchanged(bundles, tmp_path_factory, data):
    d = copy_bundle(bundles, "nomogram", tmp_path_factory.mktemp("fuzz") / "b")
    original = json.loads((d / META_FILE).read_text())
    meta = json.loads((d / META_FILE).read_text())
    _mutate(meta, data)
    (d / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    try:
        _, loaded = load_bundle(d)
    except UsradError:
        return
    assert loaded == original and (d / META_FILE).read_text() == json.dumps(original, indent=2, sort_keys=True) + "\n"


@settings(max_examples=int(os.environ.get("USRAD_FUZZ_EXAMPLES", "60")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_random_edits_of_a_resealed_bundle_are_refused_or_give_only_valid_values(bundles, tmp_path_factory, data):
    """Even with the manifest recomputed, load gives a UsradError or metadata every consumer can trust."""
    from usrad.predict import load_model

    d = copy_bundle(bundles, "nomogram", tmp_path_factory.mktemp("fuzz") / "b")
    meta = json.loads((d / META_FILE).read_text())
    _mutate(meta, data)
    (d / META_FILE).write_text(json.dumps(meta))
    reseal(d)
    try:
        _, loaded = load_model(d)
    except UsradError as err:
        assert err.problems and all(p.file for p in err.problems)
        return
    assert check_metadata(loaded, d / META_FILE) == []
    assert 0 <= loaded["threshold"] <= 1 and loaded["model_file"] == MODEL_FILE
