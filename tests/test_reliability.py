"""Issue 7: every bad input of a messy cohort ends in a clear message (patient, column, file), all problems of a
manifest in one report, no traceback; the config reader never raises anything but UsradError; `usrad validate`
exits 0/2 and writes nothing; imputation is fitted on training rows only; atomic writes leave no leftovers.

The manifest helpers (36 PNG patients, 14 N0 / 22 N+) are test_cohort's.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from test_cohort import NamedList, config, make_manifest, rewrite, write_png
from usrad.atomic import atomic_path, stale_temporaries, write_text
from usrad.cli import main as usrad_main
from usrad.cohort import load_cohort, summary, validate_manifest
from usrad.config import load_config, validate_config
from usrad.errors import UsradError

REPO = Path(__file__).resolve().parents[1]
PARAMS = str(REPO / "config" / "radiomics.yaml")  # minimumROISize 50, minimumROIDimensions 2


def roi_config(**clinical):
    cfg = config(**clinical)
    cfg["radiomics_params"] = PARAMS
    return cfg


def lesion_mask(rows=20, cols=24, box=(5, 12, 6, 15), value=255):
    m = np.zeros((rows, cols), np.uint8)
    m[box[0]:box[1], box[2]:box[3]] = value
    return m


def write_itk(arr, path, spacing=(0.1, 0.1), origin=(0.0, 0.0), direction=(1.0, 0.0, 0.0, 1.0)):
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(direction)
    sitk.WriteImage(img, str(path))
    return path


def problems_of(manifest, cfg):
    _, problems = validate_manifest(manifest, cfg)
    return [(p.row, p.patient, p.column, Path(p.file).name if p.file else None, p.message) for p in problems]


# ------------------------------------------------------------------------------------ images and masks
# Each case: (what to do to patient P003's files / row, column named, file named, words in the message).

def _corrupt_image(folder):
    data = (folder / "imgs" / "P003.png").read_bytes()
    (folder / "imgs" / "P003.png").write_bytes(data[: len(data) // 2])  # truncated PNG


def _image_16bit(folder):
    Image.fromarray((np.arange(480, dtype=np.uint16).reshape(20, 24) * 100)).save(folder / "imgs" / "P003.png")


def _image_float_fraction(folder):
    write_itk(np.random.default_rng(0).random((20, 24)).astype(np.float32), folder / "imgs" / "P003.nrrd")
    return {"image": "imgs/P003.nrrd"}


def _mask_other_size(folder):
    write_png(folder / "imgs" / "P003_mask.png", lesion_mask(rows=22))


def _mask_flipped(folder):
    write_itk(np.full((20, 24), 80, np.uint8), folder / "imgs" / "P003.nrrd")
    write_itk(lesion_mask(value=1), folder / "imgs" / "P003_mask.nrrd", direction=(-1.0, 0.0, 0.0, 1.0))
    return {"image": "imgs/P003.nrrd", "mask": "imgs/P003_mask.nrrd"}


def _mask_shifted(folder):
    write_itk(np.full((20, 24), 80, np.uint8), folder / "imgs" / "P003.nrrd")
    write_itk(lesion_mask(value=1), folder / "imgs" / "P003_mask.nrrd", origin=(0.5, 0.0))  # 5 pixels
    return {"image": "imgs/P003.nrrd", "mask": "imgs/P003_mask.nrrd"}


def _mask_empty(folder):
    write_png(folder / "imgs" / "P003_mask.png", np.zeros((20, 24), np.uint8))


def _mask_two_labels(folder):
    m = lesion_mask(value=1)
    m[6:8, 7:9] = 2
    write_png(folder / "imgs" / "P003_mask.png", m)


def _mask_antialiased_rgb(folder):  # an outline drawn in red with a soft edge: two colours, two labels
    m = np.zeros((20, 24, 3), np.uint8)
    m[5:12, 6:15] = (255, 0, 0)
    m[5, 6:15] = (128, 0, 0)
    Image.fromarray(m).save(folder / "imgs" / "P003_mask.png")


def _mask_too_small(folder):  # 5 x 6 = 30 pixels < minimumROISize 50
    write_png(folder / "imgs" / "P003_mask.png", lesion_mask(box=(5, 10, 6, 12)))


def _mask_of_exactly_minimum_size(folder):  # 5 x 10 = 50 pixels: PyRadiomics needs more than minimumROISize 50
    write_png(folder / "imgs" / "P003_mask.png", lesion_mask(box=(5, 10, 6, 16)))


def _mask_a_line(folder):  # 1 x 60 pixels: not an outline (minimumROIDimensions 2); image widened to fit it
    write_png(folder / "imgs" / "P003.png", np.full((20, 64), 90, np.uint8))
    write_png(folder / "imgs" / "P003_mask.png", lesion_mask(cols=64, box=(8, 9, 2, 62)))


BAD_IMAGES = {
    "corrupt image": (_corrupt_image, "image", "P003.png", "not a readable image"),
    "16-bit image": (_image_16bit, "image", "P003.png", "not 8-bit 0-255"),
    "float image with fractions": (_image_float_fraction, "image", "P003.nrrd", "non-integer values"),
    "mask of another size": (_mask_other_size, "mask", "P003_mask.png", "differs from the image size 24x20"),
    "mask flipped": (_mask_flipped, "mask", "P003_mask.nrrd", "flipped or rotated"),
    "mask shifted": (_mask_shifted, "mask", "P003_mask.nrrd", "differs from the image origin"),
    "empty mask": (_mask_empty, "mask", "P003_mask.png", "mask is empty"),
    "mask with two labels": (_mask_two_labels, "mask", "P003_mask.png", "2 different non-zero labels (1, 2)"),
    "RGB mask with soft edge": (_mask_antialiased_rgb, "mask", "P003_mask.png", "different non-zero labels"),
    "ROI too small": (_mask_too_small, "mask", "P003_mask.png", "30 pixels, not more than minimumROISize 50"),
    "ROI of exactly minimumROISize": (_mask_of_exactly_minimum_size, "mask", "P003_mask.png",
                                      "50 pixels, not more than minimumROISize 50"),
    "ROI a line": (_mask_a_line, "mask", "P003_mask.png", "minimumROIDimensions 2"),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_bad_image_or_mask_is_one_problem_naming_row_patient_column_and_file(tmp_path, case):
    make_bad, column, file, words = BAD_IMAGES[case]
    manifest = make_manifest(tmp_path)
    cells = make_bad(tmp_path) or {}
    if cells:
        rewrite(manifest, lambda df: df.assign(**{c: df[c].where(df.patient_id != "P003", v) for c, v in cells.items()}))
    got = problems_of(manifest, roi_config())
    assert len(got) == 1, got
    row, patient, col, name, message = got[0]
    assert (row, patient, col, name) == (4, "P003", column, file)
    assert words in message
    with pytest.raises(UsradError) as exc:  # and the workflow's entry point refuses it with the same text
        load_cohort(manifest, roi_config())
    assert "row 4, patient 'P003', column " + repr(column) in str(exc.value) and words in str(exc.value)


def test_rgba_masks_and_label_255_are_accepted_like_a_binary_mask(tmp_path):
    manifest = make_manifest(tmp_path)  # masks are 0/255 PNGs already
    box = lesion_mask() > 0
    white = np.zeros((20, 24, 4), np.uint8)
    white[..., 3] = 255
    white[box] = (255, 255, 255, 255)
    Image.fromarray(white).save(tmp_path / "imgs" / "P000_mask.png")
    red = np.zeros((20, 24, 4), np.uint8)
    red[box] = (255, 0, 0, 255)  # red lesion on a transparent background
    Image.fromarray(red).save(tmp_path / "imgs" / "P001_mask.png")
    rgb_image = np.repeat(np.asarray(Image.open(tmp_path / "imgs" / "P002.png"))[..., None], 3, axis=2)
    Image.fromarray(rgb_image).save(tmp_path / "imgs" / "P002.png")  # grey image saved as RGB
    df = load_cohort(manifest, roi_config())
    from usrad.imageio import read_image, read_mask
    for i in range(3):
        ref = read_image(df["image"][i], 0.1)
        mask = sitk.GetArrayFromImage(read_mask(df["mask"][i], ref))
        np.testing.assert_array_equal(mask, box.astype(np.uint8))


def test_mask_touching_the_border_is_a_warning_in_the_report_not_an_error(tmp_path, capsys):
    manifest = make_manifest(tmp_path)
    write_png(tmp_path / "imgs" / "P004_mask.png", lesion_mask(box=(0, 8, 0, 10)))  # top-left corner
    df, problems = validate_manifest(manifest, roi_config())
    assert problems == []
    [warning] = df.attrs["warnings"]
    assert (warning.row, warning.patient, warning.column, Path(warning.file).name) == (5, "P004", "mask", "P004_mask.png")
    assert "touches the image border" in warning.message
    text = summary(df, roi_config())
    assert text.startswith("OK: 36 patients") and "Warnings (1;" in text and "row 5, patient 'P004', column 'mask'" in text


def test_roi_check_follows_the_configured_params_file(tmp_path):
    manifest = make_manifest(tmp_path)
    _mask_too_small(tmp_path)
    lenient = tmp_path / "radiomics.yaml"
    params = yaml.safe_load(Path(PARAMS).read_text())
    params["setting"]["minimumROISize"] = 20
    lenient.write_text(yaml.safe_dump(params))
    cfg = config()
    cfg["radiomics_params"] = str(lenient)
    assert problems_of(manifest, cfg) == []
    cfg["radiomics_params"] = str(tmp_path / "missing.yaml")
    assert [(c, m) for _, _, c, _, m in problems_of(manifest, cfg)] == [
        (None, "PyRadiomics parameter file (config key 'radiomics_params') not found")]


# ------------------------------------------------------------------------------------ values
def test_out_of_range_clinical_values_are_refused_with_the_allowed_range(tmp_path):
    manifest = make_manifest(tmp_path)

    def edit(df):
        df["ki67"], df["us_size_mm"] = "0.2", "18"
        df.loc[1, "age"] = "250"
        df.loc[2, "ki67"] = "1.7"
        df.loc[3, "ki67"] = "17"
        df.loc[4, "us_size_mm"] = "0"
        df.loc[5, "er"] = "-1"
        return df
    rewrite(manifest, edit)
    cfg = config(predictors=["age", "er", "histology", "ki67", "us_size_mm"])
    got = [(row, pid, col, msg) for row, pid, col, _, msg in problems_of(manifest, cfg)]
    assert [g[:3] for g in got] == [(2, "P001", "age"), (3, "P002", "ki67"), (4, "P003", "ki67"),
                                    (5, "P004", "us_size_mm"), (6, "P005", "er")]
    assert got[0][3] == "value '250' is outside the allowed range of age (10 to 110)"
    assert "0 to 1; a fraction: write 0.15 for 15 %" in got[2][3]
    assert "more than 0 to 200" in got[3][3] and "0/1 (yes/no) column" in got[4][3]
    assert all(f == "manifest.csv" for *_, f, _ in problems_of(manifest, cfg))
    # in range, or an unused column: accepted
    rewrite(manifest, lambda df: df.assign(age="250", ki67="0.2", us_size_mm="18", er="1"))
    assert problems_of(manifest, config(predictors=["er", "histology"])) == []


def test_outcome_values_outside_the_allowed_set_are_refused_per_row_and_not_evaluated(tmp_path):
    manifest = make_manifest(tmp_path)

    def edit(df):
        df.loc[0, "n_positive_nodes"] = "-1"
        df.loc[1, "n_positive_nodes"] = "2.5"
        df.loc[2, "n_positive_nodes"] = "three"
        df.loc[3, "n_positive_nodes"] = "150"
        return df
    rewrite(manifest, edit)
    got = [(row, pid, col, msg) for row, pid, col, _, msg in problems_of(manifest, config())]
    assert [g[:3] for g in got] == [(i + 1, f"P{i:03d}", "n_positive_nodes") for i in range(4)]
    assert "outside the allowed range of n_positive_nodes (0 to 100)" in got[0][3]
    assert "'2.5' is not a whole number" in got[1][3] and "'three' is not a number" in got[2][3]
    assert all("(outcome used by task 'metastasis', 'burden')" in g[3] for g in got)
    # a column the schema does not know: a word among numbers is named too
    rewrite(manifest, lambda df: df.assign(n_positive_nodes="1", malignant=["yes"] + ["0", "1"] * 17 + ["1"]))
    cfg = config()
    cfg["tasks"] = [{"name": "malignancy", "label": "malignant == 1", "subset": None}]
    assert [(row, pid, col) for row, pid, col, _, _ in problems_of(manifest, cfg)] == [(1, "P000", "malignant")]


def test_too_few_patients_per_class_for_the_configured_cv_folds_is_refused(tmp_path):
    manifest = make_manifest(tmp_path)  # metastasis: 14 negative / 22 positive patients
    cfg = config()
    assert problems_of(manifest, cfg) == []
    cfg["modelling"] = {"cv_folds": 12}  # 12 folds on the 75 % training part need ceil(12 / 0.75) = 16 per class
    got = problems_of(manifest, cfg)
    assert [m for *_, m in got] == [
        "task 'metastasis': only 14 negative patient(s); cross-validation needs at least 16 patients per class"
        " (keys 'modelling.cv_folds', 'split.test_size')",
        "task 'burden': only 10 negative, 12 positive patient(s); cross-validation needs at least 16 patients per class"
        " (keys 'modelling.cv_folds', 'split.test_size')"]


def test_one_report_lists_every_problem_of_a_messy_manifest(tmp_path):
    """Fourteen different mistakes in one manifest: fourteen problems, each at its row, patient and column."""
    folder = tmp_path
    manifest = make_manifest(folder)
    os.remove(folder / "imgs" / "P001.png")
    os.remove(folder / "imgs" / "P002_mask.png")
    _corrupt_image(folder)  # P003
    write_png(folder / "imgs" / "P004_mask.png", lesion_mask(rows=22))
    write_png(folder / "imgs" / "P005_mask.png", np.zeros((20, 24), np.uint8))
    write_png(folder / "imgs" / "P006_mask.png", lesion_mask(value=1) + lesion_mask(box=(6, 8, 7, 9), value=1))
    Image.fromarray((np.arange(480, dtype=np.uint16).reshape(20, 24) * 100)).save(folder / "imgs" / "P007.png")
    write_png(folder / "imgs" / "P008_mask.png", lesion_mask(box=(5, 10, 6, 12)))

    def edit(df):
        df.loc[9, "age"] = "250"
        df.loc[10, "age"] = "forty"
        df.loc[11, "age"] = ""
        df.loc[12, "er"] = "2"
        df.loc[13, "n_positive_nodes"] = "-1"
        df.loc[14, "pixel_spacing_mm"] = "0"
        extra = df.iloc[[15]].assign(image="imgs/P016.png")  # P015 listed again with P016's image
        return pd.concat([df, extra], ignore_index=True)
    rewrite(manifest, edit)
    with pytest.raises(UsradError) as exc:
        load_cohort(manifest, roi_config())
    got = [(p.row, p.patient, p.column) for p in exc.value.problems]
    expected = {(2, "P001", "image"), (3, "P002", "mask"), (4, "P003", "image"), (5, "P004", "mask"),
                (6, "P005", "mask"), (7, "P006", "mask"), (8, "P007", "image"), (9, "P008", "mask"),
                (10, "P009", "age"), (11, "P010", "age"), (12, "P011", "age"), (13, "P012", "er"),
                (14, "P013", "n_positive_nodes"), (15, "P014", "pixel_spacing_mm"), (37, "P015", "image")}
    assert set(got) >= expected and len(got) == len(expected) + 1  # P014's PNG without spacing: named twice
    assert all(p.file for p in exc.value.problems)
    text = str(exc.value)
    assert text.startswith(f"Manifest {manifest} has problems ({len(got)} problems):") and "Traceback" not in text


def test_extraction_failure_leaves_no_shard_file_and_names_patient_and_file(tmp_path, capsys):
    """An image deleted after validation: the extraction job exits 1 naming it, and removes its output."""
    import runpy
    from types import SimpleNamespace

    from usrad.cohort import write_cohort_table

    manifest = make_manifest(tmp_path / "cohort")
    cohort = load_cohort(manifest, config()).iloc[:2]
    write_cohort_table(cohort, tmp_path / "results" / "cohort" / "cohort.tsv")
    params = yaml.safe_load(Path(PARAMS).read_text())
    params["imageType"], params["featureClass"] = {"Original": {}}, {"firstorder": []}
    params["setting"]["minimumROISize"] = 20
    (tmp_path / "light.yaml").write_text(yaml.safe_dump(params))
    os.remove(cohort["image"][1])
    out = tmp_path / "results" / "features" / "shards" / "000.parquet"
    smk = SimpleNamespace(
        input=NamedList(cohort=str(tmp_path / "results" / "cohort" / "cohort.tsv"), params=str(tmp_path / "light.yaml")),
        output=NamedList(shard=str(out)), log=[str(tmp_path / "results" / "logs" / "000.log")],
        params=SimpleNamespace(shard=0, n_shards=1, cache_dir=str(tmp_path / "results" / "features" / "cache"),
                               perturbation={"n": 0}, regions={}))
    (tmp_path / "results" / "logs").mkdir(parents=True)
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(REPO / "workflow" / "scripts" / "extract_shard.py"), init_globals={"snakemake": smk})
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "patient 'P001', column 'image'" in err and cohort["image"][1] in err and "Traceback" not in err
    assert not out.parent.exists() or list(out.parent.iterdir()) == []  # no shard, no temporary file
    assert "patient 'P001'" in (tmp_path / "results" / "logs" / "000.log").read_text()


# ------------------------------------------------------------------------------------ usrad validate
def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_usrad_validate_exits_0_or_2_and_writes_nothing(tmp_path, monkeypatch, capsys):
    manifest = make_manifest(tmp_path / "cohort")
    cfg = tmp_path / "my config.yaml"
    cfg.write_text(yaml.safe_dump({"clinical": {"predictors": ["age", "er", "histology"], "categorical": ["histology"]},
                                   "radiomics_params": PARAMS}))
    monkeypatch.chdir(tmp_path)

    def validate() -> int:
        before = _snapshot(tmp_path)
        code = usrad_main(["validate", str(manifest), "--config", str(cfg)])
        assert _snapshot(tmp_path) == before, "usrad validate must not write anything"
        return code

    assert validate() == 0
    assert capsys.readouterr().out.startswith("OK: 36 patients, 36 images")

    _mask_too_small(tmp_path / "cohort")
    rewrite(manifest, lambda df: df.assign(age=df["age"].where(df.index != 5, "250")))
    assert validate() == 2
    err = capsys.readouterr().err
    assert "(2 problems)" in err and "row 4, patient 'P003', column 'mask'" in err and "row 6, patient 'P005', column 'age'" in err
    assert "Traceback" not in err

    cfg.write_text("extraction:\n  shard: 4\n")  # a misspelt key: the config is refused before the manifest
    assert validate() == 2
    err = capsys.readouterr().err
    assert "key 'extraction'" in err and "'shard'" in err and "Traceback" not in err
    assert not (tmp_path / "results").exists()


def test_usrad_validate_as_a_command_prints_no_traceback(tmp_path):
    manifest = make_manifest(tmp_path)
    os.remove(tmp_path / "imgs" / "P007_mask.png")
    proc = subprocess.run([sys.executable, "-m", "usrad.cli", "validate", str(manifest), "--config", str(tmp_path / "none.yaml")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "Config file not found" in proc.stderr and "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------------ config
def test_config_mistakes_name_the_key(tmp_path):
    cases = {
        "seed: 1.0e+300\n": "key 'seed'",
        "extraction: {shards: 4.0}\n": "key 'extraction.shards'",
        "seed: 99999999999\n": "larger than the maximum 4294967295",
        "results_dir: results/../../elsewhere\n": "key 'results_dir'",
        "seed: 1\nseed: 2\n": "found key 'seed' twice",
        "clinical:\n  missing: guess\n": "key 'clinical.missing'",
        "tasks:\n  - {name: 'x/../y', label: 'n_positive_nodes >= 1'}\n": "key 'tasks.0.name'",
    }
    for text, words in cases.items():
        path = tmp_path / "c.yaml"
        path.write_text(text)
        with pytest.raises(UsradError) as exc:
            load_config(path)
        assert words in str(exc.value), (text, str(exc.value))
    (tmp_path / "latin1.yaml").write_bytes("seed: 1 # café\n".encode("latin-1"))
    with pytest.raises(UsradError, match="not UTF-8"):
        load_config(tmp_path / "latin1.yaml")
    with pytest.raises(UsradError, match="is a folder"):
        load_config(tmp_path)
    (tmp_path / "deep.yaml").write_text("a: " + "[" * 600 + "]" * 600 + "\n")
    with pytest.raises(UsradError):
        load_config(tmp_path / "deep.yaml")


SCHEMA_KEYS = ["seed", "cohort", "manifest", "simulate", "n_patients", "busbra", "use", "results_dir", "busbra_dir",
               "radiomics_params", "extraction", "shards", "perturbed_masks", "clinical", "predictors", "categorical",
               "missing", "split", "test_size", "by_column", "external_values", "modelling", "cv_folds",
               "classifiers", "search_spaces", "lasso", "n_C", "reproducibility", "tasks", "name", "label", "subset"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 2**40), st.floats(allow_nan=True), st.text(max_size=8),
                    st.sampled_from(["lr", "impute", "refuse", "results", "results/x", "age", "n_positive_nodes >= 1"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.sampled_from(SCHEMA_KEYS), st.text(max_size=4), st.integers()),
                                                 inner, max_size=4)), max_leaves=12)


def _mutated_default(data) -> dict:
    """The valid default config with one random value replaced: reaches the semantic checks."""
    cfg = validate_config({})
    node, path = cfg, []
    while isinstance(node, dict) and node:
        key = data.draw(st.sampled_from(sorted(node, key=str)))
        path.append(key)
        if not isinstance(node[key], dict) or data.draw(st.booleans()):
            node[key] = data.draw(values)
            break
        node = node[key]
    return cfg


@settings(max_examples=int(os.environ.get("USRAD_FUZZ_EXAMPLES", 150)), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), kind=st.sampled_from(["dict", "mutated", "yaml", "text", "bytes"]))
def test_fuzzed_config_only_ever_raises_usrad_error(tmp_path, data, kind):
    if kind in ("dict", "mutated"):
        raw = data.draw(values) if kind == "dict" else _mutated_default(data)
        try:
            cfg = validate_config(raw)
        except UsradError as err:
            assert err.problems or err.summary
            return
        assert isinstance(cfg, dict) and {"seed", "tasks", "clinical"} <= set(cfg)
        return
    path = tmp_path / "fuzz.yaml"
    if kind == "yaml":
        path.write_text(yaml.safe_dump(data.draw(values), allow_unicode=True))
    elif kind == "text":
        path.write_text(data.draw(st.text(alphabet=st.sampled_from(list("seed:tasks-[]{}!&*|>#'\" \n\t,?%@`0.1xé")),
                                          max_size=40)), encoding="utf-8")
    else:
        path.write_bytes(data.draw(st.binary(max_size=40)))
    try:
        cfg = load_config(path)
    except UsradError:
        return
    assert isinstance(cfg, dict)


# ------------------------------------------------------------------------------------ imputation
def test_imputation_is_fitted_on_training_rows_only(tmp_path):
    """Test-row ages are set to 1000 and a third of all ages removed: the fitted fill value of the clinical
    model is the median of the training rows, and a test row's missing age is filled with it."""
    from usrad.bundle import load_bundle
    from usrad.models import ClinicalEncoder, build_design, fit_task, synthetic_modelling_data
    from usrad.split import make_split

    task = {"name": "metastasis", "label": "n_positive_nodes >= 1"}
    clin = {"predictors": ["age", "us_size_mm", "us_node_suspicious", "birads", "grade"],
            "categorical": ["birads", "grade"], "missing": "impute"}
    modelling = {"classifiers": ["lr"], "combined_classifiers": ["lr"], "search_spaces": {"lr": {"C": [1.0]}},
                 "lasso": {"cv_folds": 3, "n_C": 5}, "cv_folds": 3}
    feats, cohort = synthetic_modelling_data(n_patients=80, n_features=10, signal=3.0, seed=3)
    split = make_split(cohort, [task], seed=2)
    is_test = cohort["image_id"].map(split.set_index("image_id")["split"]).eq("test").to_numpy()
    rng = np.random.default_rng(0)
    cohort.loc[is_test, "age"] = 1000.0
    cohort.loc[is_test, "birads"] = "5"
    cohort.loc[rng.random(len(cohort)) < 0.3, "age"] = np.nan
    fit_task(feats, cohort, split, task, modelling, clin, seed=4, n_jobs=1, out_dir=tmp_path)

    model, _ = load_bundle(tmp_path / "models" / "clinical")
    [encoder] = [s for _, s in model.named_steps["features"].steps if isinstance(s, ClinicalEncoder)]
    train_age = cohort.loc[~is_test, "age"]
    assert encoder.fill_["age"] == pytest.approx(train_age.median())
    assert encoder.fill_["age"] != pytest.approx(cohort["age"].median())  # the median of all rows is another value
    assert encoder.fill_["birads"] == cohort.loc[~is_test, "birads"].mode().sort_values().iloc[0]
    X, _ = build_design(feats, cohort, list(cohort["image_id"]), clin["predictors"], "r2")
    test_row = X.iloc[[int(np.flatnonzero(is_test)[0])]]
    missing, filled = test_row.assign(age=np.nan), test_row.assign(age=train_age.median())
    assert model.predict_proba(missing)[0, 1] == model.predict_proba(filled)[0, 1]


# ------------------------------------------------------------------------------------ atomic writes
def test_a_killed_writers_temporary_file_is_removed_by_the_next_write_but_a_live_one_is_kept(tmp_path):
    target = tmp_path / "table.tsv"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    from usrad.atomic import _host
    leftover = tmp_path / f".table.tsv.{_host()}.{dead_pid}.abc123.tmp"
    live = tmp_path / f".table.tsv.{_host()}.{os.getppid()}.def456.tmp"  # our parent process: alive
    other = tmp_path / ".other.tsv.x.1.zz.tmp"
    for p in (leftover, live, other):
        p.write_text("half a tab")
    assert stale_temporaries(target) == [leftover]
    write_text(target, "a\tb\n")
    assert target.read_text() == "a\tb\n"
    assert not leftover.exists() and live.exists() and other.exists()
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "failed.tsv") as tmp:
            tmp.write_text("partial")
            raise RuntimeError("killed")
    assert not (tmp_path / "failed.tsv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, "table.tsv"])


# ------------------------------------------------------------------------------------ model bundles
def test_a_bundle_that_would_call_a_function_is_refused_before_anything_runs(tmp_path):
    """A forged model.skops whose schema asks for os.system (with a matching checksum) is refused by name;
    the command never runs."""
    from usrad.bundle import META_FILE, MODEL_FILE, load_bundle
    from usrad.extract import file_sha256

    import io

    import skops.io as sio
    from sklearn.preprocessing import StandardScaler

    witness = tmp_path / "pwned"
    real = zipfile.ZipFile(io.BytesIO(sio.dumps(StandardScaler())))
    schema = json.loads(real.read("schema.json"))
    schema["content"]["content"]["with_mean"] = {  # a state entry that would be the function os.system
        "__class__": "system", "__module__": "os", "__loader__": "FunctionNode",
        "content": {"module_path": "os", "function": "system"}, "__id__": 1}
    schema["content"]["content"]["copy"] = {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
                                            "content": json.dumps(f"touch {witness}"), "is_json": True, "__id__": 2}
    model = tmp_path / "b" / MODEL_FILE
    model.parent.mkdir()
    with zipfile.ZipFile(model, "w") as zf:
        zf.writestr("schema.json", json.dumps(schema))
        for name in real.namelist():
            if name != "schema.json":
                zf.writestr(name, real.read(name))
    (model.parent / META_FILE).write_text(json.dumps({"format": "usrad-bundle/1", "model_file": MODEL_FILE,
                                                       "model_sha256": file_sha256(model)}))
    assert "os.system" in sio.get_untrusted_types(file=model)  # skops itself sees the function
    with pytest.raises(UsradError) as exc:
        load_bundle(model.parent)
    assert "os.system" in str(exc.value) and "refusing to load" in str(exc.value)
    assert not witness.exists()
    model.write_bytes(b"not a zip file")  # corrupt, with a matching checksum: a clear error too
    (model.parent / META_FILE).write_text(json.dumps({"format": "usrad-bundle/1", "model_file": MODEL_FILE,
                                                       "model_sha256": file_sha256(model)}))
    with pytest.raises(UsradError, match="cannot be read"):
        load_bundle(model.parent)
