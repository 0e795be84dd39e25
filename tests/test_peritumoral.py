"""The simulator's peritumoral reaction on known truth: off (the default) changes nothing; on, the same patients
get the same latents, masks and lesion pixels, a rim brighter in proportion to the latent, an N+ logit raised by
weight x latent (in the oracle), and peritumoral-ring features that follow the latent while the lesion's do not."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml
from scipy import ndimage
from scipy.stats import spearmanr

from usrad.cohort import load_cohort
from usrad.errors import UsradError
from usrad.extract import extract_cohort
from usrad.simulate import simulate_cohort

REPO = Path(__file__).resolve().parents[1]
WEIGHT = 2.0


def _array(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same 40 patients simulated without and with the peritumoral reaction."""
    root = tmp_path_factory.mktemp("peritumoral")
    off = simulate_cohort(root / "off", n_patients=40, seed=5, progress=False, n_jobs=2)
    on = simulate_cohort(root / "on", n_patients=40, seed=5, progress=False, n_jobs=2, peritumoral=WEIGHT)
    return off.parent, on.parent


def test_off_writes_no_peritumoral_column_and_on_puts_it_in_the_oracle(pair):
    off, on = pair
    g_off, g_on = (pd.read_csv(d / "ground_truth.tsv", sep="\t") for d in pair)
    assert "peritumoral" not in g_off and "peritumoral" in g_on
    assert g_on["peritumoral"].std() > 0.7  # an N(0, 1) latent
    keep = ["z_aggressiveness", "margin_irregularity", "heterogeneity", "echogenicity_loss", "size_mm", "eta_burden"]
    pd.testing.assert_frame_equal(g_off[keep], g_on[keep])  # the same patients
    np.testing.assert_allclose(g_on["eta_metastasis"] - g_off["eta_metastasis"], WEIGHT * g_on["peritumoral"],
                               atol=2e-6)  # the TSV keeps 6 decimals
    m_off, m_on = (pd.read_csv(d / "manifest.tsv", sep="\t") for d in pair)
    assert list(m_off["device"]) == list(m_on["device"]) and list(m_off["age"]) == list(m_on["age"])


def test_on_the_rim_brightens_with_the_latent_and_nothing_else_changes(pair):
    off, on = pair
    truth = pd.read_csv(on / "ground_truth.tsv", sep="\t")
    rows = []
    for pid in truth["patient_id"]:
        a, b = (_array(d / "images" / f"{pid}.nrrd").astype(float) for d in pair)
        m = _array(on / "masks" / f"{pid}_r1.nrrd") > 0
        assert hashlib.sha256(m.tobytes()).digest() == hashlib.sha256(
            (_array(off / "masks" / f"{pid}_r1.nrrd") > 0).tobytes()).digest()
        spacing = sitk.ReadImage(str(on / "images" / f"{pid}.nrrd")).GetSpacing()[0]
        dist = ndimage.distance_transform_edt(~m) * spacing
        rows.append(dict(inside=np.abs(b - a)[ndimage.binary_erosion(m, iterations=5)].mean(),
                         ring=(b - a)[(dist > 0) & (dist <= 3)].mean(), far=np.abs(b - a)[dist > 10].mean()))
    r = pd.DataFrame(rows)
    # measured (40 patients): inside 0.20 grey levels, 0-3 mm ring +8.7, beyond 10 mm 0.03; Spearman 0.99
    assert r["inside"].mean() < 0.5 and r["far"].max() < 0.3
    assert r["ring"].mean() > 4 and (r["ring"] > 0).all()
    assert spearmanr(r["ring"], truth["peritumoral"])[0] > 0.9


def test_ring_features_follow_the_latent_and_the_lesions_do_not(pair, default_config, tmp_path):
    _, on = pair
    params = yaml.safe_load((REPO / "config" / "radiomics.yaml").read_text())
    params["imageType"], params["featureClass"] = {"Original": {}}, {"firstorder": []}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    cfg = {**default_config, "tasks": [t for t in default_config["tasks"] if t["name"] == "metastasis"]}
    cohort = load_cohort(on / "manifest.tsv", cfg)
    cohort["mask_reader2"] = ""
    feats = extract_cohort(cohort, tmp_path / "p.yaml", progress=False, regions={"rings_mm": [3]})
    latent = pd.read_csv(on / "ground_truth.tsv", sep="\t").set_index("patient_id").loc[feats["patient_id"],
                                                                                          "peritumoral"]
    ring = spearmanr(feats["ring3mm__original_firstorder_Mean"], latent)[0]
    lesion = spearmanr(feats["original_firstorder_Mean"], latent)[0]
    assert ring > 0.4 and abs(lesion) < 0.35, (ring, lesion)  # measured: 0.563 and 0.188 (p loads 0.3 on z)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), True, "2"])
def test_a_bad_peritumoral_weight_is_refused_by_name(tmp_path, bad):
    with pytest.raises(UsradError, match="peritumoral must be a finite number >= 0"):
        simulate_cohort(tmp_path / "c", n_patients=2, peritumoral=bad, progress=False)
