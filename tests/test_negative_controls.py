"""Negative controls on known truth: shuffling keeps the ROI's histogram (first-order features equal) and destroys
its texture, randomising keeps its range, moving keeps its shape and puts it in normal tissue; every control keeps
the shape features; through the workflow, the shape signature's AUC is the same on every control while the
randomised and moved ROIs' texture and first-order signatures fall to chance."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score
from scipy import ndimage

from usrad.cohort import load_cohort
from usrad.errors import UsradError
from usrad.extract import extract_cohort
from usrad.extract.controls import (CONTROLS, control_cohort, control_rng, moved_offset, randomized_roi, shift_mask,
                                    shuffled_roi)
from usrad.features import read_feature_table
from usrad.reporting.tables import control_rows
from usrad.simulate import simulate_cohort
from usrad.tables import read_table

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _light_params(path: Path) -> Path:
    params = yaml.safe_load((REPO / "config" / "radiomics.yaml").read_text())
    params["imageType"] = {"Original": {}}
    params["featureClass"] = {"shape2D": [], "firstorder": [], "glcm": [], "glrlm": []}
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def _image(seed=0):
    """A speckle-like image with a black border (outside the 'sector') and a disc-shaped lesion."""
    rng = np.random.default_rng(seed)
    grey = rng.integers(20, 200, (120, 160)).astype(np.float32)
    grey[:, :12] = 0
    yy, xx = np.mgrid[:120, :160]
    roi = (yy - 40) ** 2 + (xx - 60) ** 2 <= 15 ** 2
    return grey, roi


def test_shuffling_permutes_the_roi_only_and_keeps_its_histogram():
    grey, roi = _image()
    out = shuffled_roi(grey, roi, control_rng(1, "shuffled_roi", "img"))
    assert np.array_equal(out[~roi], grey[~roi])
    assert np.array_equal(np.sort(out[roi]), np.sort(grey[roi]))
    assert (out[roi] != grey[roi]).mean() > 0.9
    again = shuffled_roi(grey, roi, control_rng(1, "shuffled_roi", "img"))
    other = shuffled_roi(grey, roi, control_rng(1, "shuffled_roi", "img2"))
    assert np.array_equal(out, again) and not np.array_equal(out, other)  # per image, reproducible


def test_randomising_draws_integers_between_the_rois_minimum_and_maximum():
    grey, roi = _image()
    out = randomized_roi(grey, roi, control_rng(1, "randomized_roi", "img"))
    values = out[roi]
    assert np.array_equal(out[~roi], grey[~roi])
    assert values.min() >= grey[roi].min() and values.max() <= grey[roi].max()
    assert np.all(values == np.round(values))
    # uniform, not the lesion's histogram: the mean is the range's midpoint (+- 3 SE)
    mid, se = (grey[roi].min() + grey[roi].max()) / 2, (grey[roi].max() - grey[roi].min()) / np.sqrt(12 * values.size)
    assert abs(values.mean() - mid) < 3 * se


def test_the_moved_roi_lies_in_tissue_away_from_the_lesion_and_keeps_its_shape():
    grey, roi = _image()
    dy, dx, overlap = moved_offset(grey, roi, (0.1, 0.1), control_rng(1, "moved_roi", "img"))
    moved = shift_mask(roi.astype(np.uint8), dy, dx).astype(bool)
    assert moved.sum() == roi.sum() and overlap == 0.0
    assert not (moved & roi).any() and not (moved & (grey == 0)).any()
    assert ndimage.distance_transform_edt(~roi, sampling=(0.1, 0.1))[moved].min() > 2.0  # MOVE_MARGIN_MM
    # a lesion filling most of the image: no room away from it, so the least overlap is taken and reported
    big = np.zeros_like(roi)
    big[5:115, 20:150] = True
    dy, dx, overlap = moved_offset(grey, big, (0.1, 0.1), control_rng(1, "moved_roi", "img"))
    shifted = shift_mask(big.astype(np.uint8), dy, dx).astype(bool)
    assert 0 < overlap < 1 and overlap == pytest.approx((shifted & big).sum() / big.sum())
    assert not (shifted & (grey == 0)).any()


def test_shift_mask_moves_and_drops_what_leaves_the_image():
    m = np.zeros((5, 6), np.uint8)
    m[1, 1] = m[4, 5] = 1
    out = shift_mask(m, 2, -1)
    assert out[3, 0] == 1 and out.sum() == 1  # (4, 5) -> (6, 4) left the image


def test_an_unknown_control_is_refused_by_name(tmp_path):
    with pytest.raises(UsradError, match="'flipped' is not a negative control"):
        control_cohort(pd.DataFrame(), "flipped", tmp_path, seed=1)


@pytest.fixture(scope="module")
def three_patients(small_cohort, default_config, tmp_path_factory):
    """Three patients of the small cohort with reader 1's mask only (the ROI is that mask), their real features."""
    cohort = load_cohort(small_cohort, default_config).iloc[:3].copy()
    cohort["mask_reader2"] = ""
    params = _light_params(tmp_path_factory.mktemp("params") / "light.yaml")
    real = extract_cohort(cohort, params, progress=False)
    return cohort, params, real


@pytest.mark.parametrize("control", CONTROLS)
def test_control_features_keep_the_shape_and_what_the_control_promises(three_patients, tmp_path, control):
    cohort, params, real = three_patients
    table = control_cohort(cohort, control, tmp_path / control, seed=5)
    assert list(table.columns) == list(cohort.columns) and list(table["patient_id"]) == list(cohort["patient_id"])
    feats = extract_cohort(table, params, progress=False)
    shape = [c for c in real.columns if "_shape2D_" in c]
    first = [c for c in real.columns if "_firstorder_" in c]
    texture = [c for c in real.columns if "_glcm_" in c or "_glrlm_" in c]
    np.testing.assert_allclose(feats[shape].to_numpy(), real[shape].to_numpy(), rtol=1e-9)
    changed = ~np.isclose(feats[texture].to_numpy(), real[texture].to_numpy(), rtol=1e-6)
    assert changed.mean() > 0.8  # the texture is not the lesion's
    if control == "shuffled_roi":
        np.testing.assert_allclose(feats[first].to_numpy(), real[first].to_numpy(), rtol=1e-6)
    else:
        assert (~np.isclose(feats[first].to_numpy(), real[first].to_numpy(), rtol=1e-6)).mean() > 0.5
    placements = table.attrs["placements"]
    assert list(placements["patient_id"]) == list(cohort["patient_id"])
    if control == "moved_roi":
        assert (placements["lesion_overlap"] < 0.6).all()


def test_control_files_are_reproducible_and_independent_of_the_rows_order(three_patients, tmp_path):
    cohort = three_patients[0]
    a = control_cohort(cohort, "moved_roi", tmp_path / "a", seed=5)
    b = control_cohort(cohort.iloc[::-1], "moved_roi", tmp_path / "b", seed=5)

    def digests(table, root):
        return {Path(p).relative_to(root).as_posix(): hashlib.sha256(Path(p).read_bytes()).hexdigest()
                for p in list(table["image"]) + list(table["mask"])}

    assert digests(a, tmp_path / "a") == digests(b, tmp_path / "b")


def test_unreadable_files_are_all_named_with_patient_column_and_file(three_patients, tmp_path):
    import shutil

    cohort = three_patients[0].copy()
    for i, col in ((0, "image"), (2, "mask")):
        copy = tmp_path / f"gone{i}.nrrd"
        shutil.copyfile(cohort.iloc[i][col], copy)
        cohort.iloc[i, cohort.columns.get_loc(col)] = str(copy)
        copy.unlink()  # deleted after validation
    with pytest.raises(UsradError) as exc:
        control_cohort(cohort, "shuffled_roi", tmp_path / "out", seed=5)
    got = {(p.patient, p.column, Path(p.file).name) for p in exc.value.problems}
    assert got == {(cohort.iloc[0]["patient_id"], "image", "gone0.nrrd"),
                   (cohort.iloc[2]["patient_id"], "mask", "gone2.nrrd")}
    assert "Traceback" not in str(exc.value)


def test_table3_block_has_each_controls_auc_of_all_features():
    controls = pd.DataFrame({"control": ["none", "shuffled_roi", "shuffled_roi"], "task": "metastasis",
                             "feature_class": ["all", "all", "shape"], "split": "test", "auc": [0.9, 0.55, 0.8],
                             "auc_low": [0.8, 0.4, 0.7], "auc_high": [1.0, 0.7, 0.9]})
    block = control_rows(controls, ["task", "model", "split", "AUC (95% CI)", "Brier"])
    assert block.to_dict("records") == [{"task": "metastasis", "model": "Rad-score, negative control: Shuffled ROI",
                                         "split": "test", "AUC (95% CI)": "0.550 (0.400–0.700)", "Brier": "—"}]


@pytest.mark.slow
def test_workflow_negative_controls_on_known_truth(tmp_path):
    """160 simulated patients (40 test), all three controls through Snakemake (measured: real texture 0.706
    (0.544–0.859); randomised 0.583 (0.393–0.747) and moved 0.492 (0.292–0.682); shape 0.938 on every control)."""
    manifest = simulate_cohort(tmp_path / "cohort", n_patients=160, seed=11, progress=False, n_jobs=2)
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg = {"cohort": {"manifest": str(manifest)}, "radiomics_params": str(_light_params(tmp_path / "light.yaml")),
           "extraction": {"shards": 4}, "tasks": [t for t in default["tasks"] if t["name"] == "metastasis"],
           "modelling": {"classifiers": ["lr"], "combined_classifiers": ["lr"], "cv_folds": 3,
                         "lasso": {"cv_folds": 3, "n_C": 8}},
           "evaluation": {"negative_controls": list(CONTROLS)}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    target = "results/metastasis/tables/negative_controls.tsv"
    predictions = "results/metastasis/predictions.tsv"
    proc = subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2",
                           target, predictions, "--configfile", str(tmp_path / "config.yaml")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    table = read_table(tmp_path / target, text=("task", "control"))
    auc = table.set_index(["control", "feature_class"])
    assert set(table["control"]) == {"none", *CONTROLS} and set(table["split"]) == {"test"}
    assert set(table["feature_class"]) == {"shape", "firstorder", "texture", "all"}
    for control in CONTROLS:  # the shape features are the lesion's: the same signature, the same AUC
        assert auc.loc[(control, "shape"), "auc"] == pytest.approx(auc.loc[("none", "shape"), "auc"])
    pred = read_table(tmp_path / predictions)
    rad = pred[(pred["model"] == "radscore") & (pred["split"] == "test")]
    # the real images' all-feature row is the workflow's own rad-score, refitted: the same test AUC
    assert auc.loc[("none", "all"), "auc"] == pytest.approx(roc_auc_score(rad["y"], rad["probability"]), abs=1e-12)
    assert auc.loc[("none", "texture"), "auc_low"] > 0.5  # the real texture carries signal ...
    for control in ("randomized_roi", "moved_roi"):  # ... which the scrambled or normal tissue does not
        for cls in ("firstorder", "texture"):
            assert auc.loc[(control, cls), "auc_low"] < 0.5 < auc.loc[(control, cls), "auc_high"], (control, cls)
    real, _ = read_feature_table(tmp_path / "results" / "features" / "features.parquet")
    for control in CONTROLS:
        feats, meta = read_feature_table(tmp_path / "results" / "controls" / control / "features.parquet")
        shape = [c for c in real.columns if "_shape2D_" in c]
        np.testing.assert_allclose(feats[shape].to_numpy(), real[shape].to_numpy(), rtol=1e-9)
    placed = read_table(tmp_path / "results" / "controls" / "moved_roi" / "files" / "placements.tsv")
    assert placed["lesion_overlap"].mean() < 0.2 and (placed["lesion_overlap"] == 0).mean() > 0.5
    assert (tmp_path / "results" / "metastasis" / "figures" / "negative_controls.pdf").stat().st_size > 0
