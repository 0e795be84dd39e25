"""The simulated demo cohort: realistic priors, calibrated signal, physical images, reproducible files."""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy.spatial import ConvexHull
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from usrad import simulate as sim
from usrad.errors import UsradError
from usrad.simulate import writer as sim_writer

SEED = 20240611
N_COHORT = 24
BUSBRA = Path(__file__).resolve().parents[2] / "shared" / "data" / "busbra"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "demo"
    manifest = sim.simulate_cohort(out, n_patients=N_COHORT, seed=SEED, progress=False)
    df = pd.read_csv(manifest, sep="\t", dtype={"patient_id": str, "birads": str})
    truth = pd.read_csv(out / "ground_truth.tsv", sep="\t", dtype={"patient_id": str})
    return out, df, truth


@pytest.fixture(scope="module")
def population():
    """The latent model at large n (no images): distributions and AUCs with small sampling error."""
    return sim.draw_latents(np.random.default_rng(123), 60_000)


def _hashes(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def _feret_mm(mask: np.ndarray, spacing: float) -> float:
    pts = np.argwhere(mask).astype(float)
    hull = pts[ConvexHull(pts).vertices]
    return float(np.sqrt(((hull[:, None] - hull[None]) ** 2).sum(-1)).max() * spacing)


# ---------------------------------------------------------------- files and table


def test_manifest_has_contract_columns_relative_paths_and_value_domains(cohort):
    out, df, truth = cohort
    assert list(df.columns) == sim.MANIFEST_COLUMNS
    assert list(df.patient_id) == [f"SIM{i:04d}" for i in range(1, N_COHORT + 1)]
    for col in ("image", "mask", "mask_reader2"):
        assert not any(Path(p).is_absolute() for p in df[col])
        assert all((out / p).is_file() for p in df[col])
    for col in ("us_node_suspicious", "er", "pr", "her2"):
        assert set(df[col]) <= {0, 1}
    assert set(df.birads) <= {"3", "4a", "4b", "4c", "5"}
    assert set(df.grade) <= {1, 2, 3}
    assert set(df.histology) <= {"IDC", "ILC", "other"}
    assert set(df.subtype) <= {"LumA", "LumB", "HER2", "TN"}
    assert df.ki67.between(0, 1).all() and df.age.between(22, 90).all()
    assert df.n_positive_nodes.between(0, 25).all()
    assert list(truth.columns) == sim.GROUND_TRUTH_COLUMNS
    assert list(truth.patient_id) == list(df.patient_id)


def test_ground_truth_oracle_is_the_bayes_posterior_of_the_written_latents(cohort):
    _, df, truth = cohort
    p_met, p_bur = sim.oracle_probabilities(truth.eta_metastasis, truth.eta_burden, df.us_node_suspicious)
    np.testing.assert_allclose(truth.oracle_p_metastasis, p_met, atol=2e-6)
    np.testing.assert_allclose(truth.oracle_p_burden, p_bur, atol=2e-6)
    # a US-suspicious node raises the posterior over the prior logistic stage
    prior = 1 / (1 + np.exp(-truth.eta_metastasis))
    assert (truth.oracle_p_metastasis[df.us_node_suspicious == 1] > prior[df.us_node_suspicious == 1]).all()


def test_images_are_uint8_with_realistic_physical_spacing(cohort):
    out, df, _ = cohort
    for rel in df.image[:8]:
        img = sitk.ReadImage(str(out / rel))
        assert img.GetDimension() == 2 and img.GetPixelID() == sitk.sitkUInt8
        sx, sy = img.GetSpacing()
        assert sx == sy and 0.08 <= sx <= 0.15
        w, h = img.GetSize()
        assert 300 <= w <= 450 and 200 <= h <= 450
        arr = sitk.GetArrayFromImage(img)
        assert 40 < arr.mean() < 180 and arr.std() > 20  # a B-mode image, not a blank or saturated one


def test_us_size_agrees_with_the_max_diameter_of_the_lesion_in_mm(cohort):
    out, df, _ = cohort
    diffs = []
    for _, r in df.iterrows():
        mask_img = sitk.ReadImage(str(out / r["mask"]))
        d = _feret_mm(sitk.GetArrayFromImage(mask_img) > 0, mask_img.GetSpacing()[0])
        diffs.append(d - r["us_size_mm"])
    diffs = np.abs(diffs)
    assert diffs.max() < 2.0, diffs           # reader 1 traces within ~0.5 mm of the true edge
    assert np.median(diffs) < 0.8, diffs
    # the true lesion (before any reader) has exactly the recorded size, to within a pixel
    for i in range(4):
        row, rend = sim.simulate_patient(SEED, i)
        assert abs(_feret_mm(rend["mask"] > 0, rend["spacing"]) - row["size_mm"]) < 2 * rend["spacing"]


def test_reader_masks_disagree_like_real_readers(cohort):
    out, df, _ = cohort
    dice = []
    for _, r in df.iterrows():
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(out / r["mask"]))) > 0
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(out / r["mask_reader2"]))) > 0
        dice.append(_dice(a, b))
    dice = np.array(dice)
    assert 0.85 <= np.median(dice) <= 0.95, dice
    assert dice.min() > 0.75 and dice.max() < 0.99, dice


# ---------------------------------------------------------------- reproducibility and atomicity


def test_same_seed_gives_byte_identical_files_and_patients_do_not_depend_on_cohort_size(cohort, tmp_path):
    out, _, _ = cohort
    a = sim.simulate_cohort(tmp_path / "a", n_patients=3, seed=SEED, progress=False).parent
    b = sim.simulate_cohort(tmp_path / "b", n_patients=3, seed=SEED, progress=False).parent
    ha, hb = _hashes(a), _hashes(b)
    assert ha == hb and len(ha) == 3 * 3 + 2
    full = _hashes(out)
    for pid in ("SIM0001", "SIM0002", "SIM0003"):
        assert ha[f"images/{pid}.nrrd"] == full[f"images/{pid}.nrrd"]
        assert ha[f"masks/{pid}_r2.nrrd"] == full[f"masks/{pid}_r2.nrrd"]
    c = sim.simulate_cohort(tmp_path / "c", n_patients=3, seed=SEED + 1, progress=False).parent
    assert _hashes(c)["images/SIM0001.nrrd"] != ha["images/SIM0001.nrrd"]


def test_cohort_rendered_in_two_processes_is_byte_identical_to_one_process(tmp_path):
    one = sim.simulate_cohort(tmp_path / "one", n_patients=6, seed=SEED, progress=False, n_jobs=1).parent
    two = sim.simulate_cohort(tmp_path / "two", n_patients=6, seed=SEED, progress=False, n_jobs=2).parent
    h1, h2 = _hashes(one), _hashes(two)
    assert len(h1) == 6 * 3 + 2 and h1 == h2
    assert len(set(h1.values())) == len(h1), "every file differs from every other"


def test_interrupted_run_leaves_no_manifest_and_no_temporary_folder(tmp_path, monkeypatch):
    calls = {"n": 0}
    real_write = sim_writer._write_nrrd  # the cohort writer's own file writer

    def failing_write(arr, spacing, path):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("disk full")
        real_write(arr, spacing, path)

    monkeypatch.setattr(sim_writer, "_write_nrrd", failing_write)
    with pytest.raises(OSError, match="disk full"):
        sim.simulate_cohort(tmp_path / "demo", n_patients=3, seed=1, progress=False)
    assert not (tmp_path / "demo").exists()
    assert list(tmp_path.iterdir()) == []


def test_rerun_replaces_an_existing_cohort_and_keeps_unrelated_files(tmp_path):
    out = tmp_path / "demo"
    sim.simulate_cohort(out, n_patients=3, seed=1, progress=False)
    (out / "notes.txt").write_text("keep me")
    sim.simulate_cohort(out, n_patients=2, seed=1, progress=False)
    df = pd.read_csv(out / "manifest.tsv", sep="\t")
    assert list(df.patient_id) == ["SIM0001", "SIM0002"]
    assert sorted(p.name for p in (out / "images").iterdir()) == ["SIM0001.nrrd", "SIM0002.nrrd"]
    assert (out / "notes.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]


def test_progress_is_logged(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="usrad.simulate"):
        sim.simulate_cohort(tmp_path / "d", n_patients=2, seed=1, progress=True)
    assert "simulated 2/2 patients" in caplog.text


@pytest.mark.parametrize("kwargs, column", [({"n_patients": 0}, "n_patients"), ({"n_patients": 2.5}, "n_patients"),
                                            ({"n_patients": 2, "seed": -1}, "seed"),
                                            ({"n_patients": 2, "device_effect": -0.5}, "device_effect"),
                                            ({"n_patients": 2, "device_effect": "strong"}, "device_effect"),
                                            ({"n_patients": 2, "device_effect": float("nan")}, "device_effect"),
                                            ({"n_patients": 2, "device_effect": True}, "device_effect")])
def test_invalid_arguments_raise_usrad_error_naming_the_setting(tmp_path, kwargs, column):
    with pytest.raises(UsradError) as err:
        sim.simulate_cohort(tmp_path / "x", **kwargs)
    assert err.value.problems[0].column == column
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------- generative model calibration


def test_prevalence_and_clinical_distributions_match_the_published_priors(population):
    p = population
    pos = p.n_positive_nodes >= 1
    assert pos.mean() == pytest.approx(0.381, abs=0.015)
    assert (p.n_positive_nodes[pos] >= 3).mean() == pytest.approx(0.479, abs=0.02)
    assert p.age.mean() == pytest.approx(57.6, abs=0.5) and p.age.std() == pytest.approx(12.5, abs=0.6)
    assert p.size_mm.mean() == pytest.approx(22.3, abs=0.8) and p.size_mm.std() == pytest.approx(8.6, abs=0.8)
    assert p.size_mm.median() == pytest.approx(20.5, abs=1.0)
    assert p.size_mm.min() >= 5 and p.size_mm.max() <= 55
    assert p.er.mean() == pytest.approx(0.785, abs=0.015)
    assert p.pr.mean() == pytest.approx(0.747, abs=0.015)
    assert p.her2.mean() == pytest.approx(0.262, abs=0.015)
    grade = p.grade.value_counts(normalize=True)
    assert grade[1] == pytest.approx(0.04, abs=0.01) and grade[3] == pytest.approx(0.40, abs=0.02)
    sub = p.subtype.value_counts(normalize=True)
    for k, v in {"LumB": 0.35, "LumA": 0.27, "HER2": 0.26, "TN": 0.12}.items():
        assert sub[k] == pytest.approx(v, abs=0.015)
    hist = p.histology.value_counts(normalize=True)
    assert hist["IDC"] == pytest.approx(0.905, abs=0.01) and hist["ILC"] == pytest.approx(0.024, abs=0.006)
    assert p.ki67.median() == pytest.approx(0.30, abs=0.03)
    assert p.ki67.quantile(0.25) == pytest.approx(0.15, abs=0.04)
    assert p.ki67.quantile(0.75) == pytest.approx(0.40, abs=0.04)
    # N+ rises with size as published (28% / 47% / 51%): monotone and in range
    by_size = pos.groupby(pd.cut(p.size_mm, [0, 20, 30, 60]), observed=True).mean().to_numpy()
    assert np.all(np.diff(by_size) > 0.05)
    assert 0.22 < by_size[0] < 0.34 and 0.45 < by_size[2] < 0.60


def _clinical_design(p):
    cols = ["age", "us_size_mm", "us_node_suspicious", "birads", "er", "pr", "her2", "ki67", "grade",
            "histology", "subtype"]
    d = p.assign(us_size_mm=np.log(p.size_mm))[cols]
    return pd.get_dummies(d, columns=["birads", "grade", "histology", "subtype"], drop_first=True).astype(float)


def _holdout_auc(X, y):
    n = len(y)
    train = np.arange(n) < int(0.75 * n)
    lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(X[train], y[train])
    return roc_auc_score(y[~train], lr.decision_function(X[~train]))


def test_oracle_aucs_are_calibrated_and_images_carry_more_signal_than_clinical_variables(population):
    p = population
    met = (p.n_positive_nodes >= 1).to_numpy().astype(int)
    high = (p.n_positive_nodes >= 3).to_numpy().astype(int)
    test = np.arange(len(p)) >= int(0.75 * len(p))
    auc_met = roc_auc_score(met[test], p.oracle_p_metastasis[test])
    sub = test & (met == 1)
    auc_bur = roc_auc_score(high[sub], p.oracle_p_burden[sub])
    assert 0.90 <= auc_met <= 0.94
    assert 0.88 <= auc_bur <= 0.92
    clin = _clinical_design(p).to_numpy()
    img = p[["margin_irregularity", "heterogeneity", "echogenicity_loss", "size_latent"]].to_numpy()
    auc_clin = _holdout_auc(clin, met)
    auc_img = _holdout_auc(img, met)
    assert 0.66 <= auc_clin <= 0.75
    assert auc_img > auc_clin + 0.1
    nplus = met == 1
    assert _holdout_auc(img[nplus], high[nplus]) > _holdout_auc(clin[nplus], high[nplus]) + 0.1


# ---------------------------------------------------------------- image phenotype


def _render(margin=0.0, heterogeneity=0.0, echo=0.0, size=20.0, seed=3):
    latent = {"margin_irregularity": margin, "heterogeneity": heterogeneity, "echogenicity_loss": echo,
              "size_mm": size}
    return sim.render_patient(np.random.default_rng(seed), latent)


def _perimeter_ratio(mask):
    """Boundary pixels / sqrt(area): higher for irregular, spiculated margins."""
    from scipy import ndimage

    edge = mask & ~ndimage.binary_erosion(mask)
    return edge.sum() / np.sqrt(mask.sum())


@pytest.mark.parametrize("seed", [3, 4])
def test_each_latent_phenotype_moves_its_image_property_monotonically(seed):
    levels = [-2.0, 0.0, 2.0]
    per = [_perimeter_ratio(_render(margin=v, seed=seed)["mask"] > 0) for v in levels]
    assert per[0] < per[1] < per[2] and per[2] > 1.3 * per[0]

    def lesion_stats(r):
        g = r["image"][r["mask"] > 0].astype(float)
        return np.median(g), g.std()

    med = [lesion_stats(_render(echo=v, seed=seed))[0] for v in levels]
    assert med[0] > med[1] > med[2] and med[0] - med[2] > 20
    sd = [lesion_stats(_render(heterogeneity=v, seed=seed))[1] for v in levels]
    assert sd[0] < sd[1] < sd[2] and sd[2] > 1.3 * sd[0]


def test_strongly_attenuating_lesion_casts_a_posterior_shadow():
    def below_over_beside(echo):
        r = _render(echo=echo, seed=5)
        mask = r["mask"] > 0
        rows, cols = np.nonzero(mask)
        c0, c1, bottom = cols.min(), cols.max(), rows.max()
        band = r["image"][bottom + 5: bottom + 60].astype(float)
        centre = band[:, (c0 + 3 * c1) // 4 - (c1 - c0) // 2: (c0 + 3 * c1) // 4]
        side = np.concatenate([band[:, : max(1, c0 - 10)], band[:, c1 + 10:]], axis=1)
        return centre.mean() / side.mean()

    assert below_over_beside(2.0) < 0.75 * below_over_beside(-2.0)
    assert below_over_beside(2.0) < 0.8


def test_pyradiomics_features_recover_the_latent_phenotypes():
    """Shape, first-order and texture features of reader-1 masks track the three phenotypes."""
    pytest.importorskip("radiomics")
    from radiomics import featureextractor

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    ext = featureextractor.RadiomicsFeatureExtractor(binWidth=5, force2D=True, label=1)
    ext.disableAllFeatures()
    ext.enableFeaturesByName(shape2D=["Sphericity"], firstorder=["Median", "Variance"])
    rows = []
    for i in range(30):
        row, r = sim.simulate_patient(SEED, i)
        img = sitk.GetImageFromArray(r["image"].astype(np.float32))
        msk = sitk.GetImageFromArray(r["mask_r1"])
        img.SetSpacing((r["spacing"],) * 2)
        msk.SetSpacing((r["spacing"],) * 2)
        f = ext.execute(img, msk)
        rows.append({**{k: row[k] for k in ("margin_irregularity", "heterogeneity", "echogenicity_loss")},
                     **{k.split("_")[-1]: float(v) for k, v in f.items() if k.startswith("original_")}})
    d = pd.DataFrame(rows)
    assert spearmanr(d.Sphericity, d.margin_irregularity)[0] < -0.85
    assert spearmanr(d.Median, d.echogenicity_loss)[0] < -0.8
    assert spearmanr(d.Variance, d.heterogeneity)[0] > 0.5


# ---------------------------------------------------------------- comparison figure


@pytest.mark.busbra
def test_comparison_figure_shows_simulated_and_real_images(cohort, tmp_path):
    if not (BUSBRA / "bus_data.csv").is_file():
        pytest.skip(f"BUS-BRA not found at {BUSBRA}")
    out, _, _ = cohort
    png, pdf = sim.comparison_figure(out / "manifest.tsv", BUSBRA, tmp_path / "fig" / "cmp.png", n=4)
    from PIL import Image

    w, h = Image.open(png).size
    assert w > 800 and h > 500
    assert pdf.read_bytes()[:5] == b"%PDF-"


def test_comparison_figure_names_the_missing_busbra_file(cohort, tmp_path):
    out, _, _ = cohort
    with pytest.raises(UsradError) as err:
        sim.comparison_figure(out / "manifest.tsv", tmp_path / "nowhere", tmp_path / "x.png")
    assert "bus_data.csv" in err.value.problems[0].file
