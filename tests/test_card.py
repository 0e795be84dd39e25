"""Model cards hold the evaluation's numbers; the printable nomogram and the browser page compute the
nomogram model exactly as `usrad predict` does (checked in headless Chromium)."""
from __future__ import annotations

import json
import re
import subprocess
import urllib.parse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from test_predict import fitted_task, new_patient_manifest

REPO = Path(__file__).resolve().parents[1]
REQUIRED = ("format", "model", "intended_use", "simulated_data", "training_cohort", "preoperative_variables",
            "radscore_formula", "threshold", "performance", "limitations", "versions")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, small_features, default_config):
    return fitted_task(tmp_path_factory, small_features, default_config)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a headless-capable Chromium, installed by ci/setup-chromium.sh when missing."""
    res = subprocess.run(["bash", str(REPO / "ci" / "setup-chromium.sh")], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.fail(f"ci/setup-chromium.sh failed:\n{res.stdout}\n{res.stderr}")
    return res.stdout.strip().splitlines()[-1]


def page_result(chromium: str, page: Path, query: dict) -> dict:
    """The page's computed probability / total points / error after loading it with ``query``."""
    url = page.resolve().as_uri() + "?" + urllib.parse.urlencode(query)
    res = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--user-data-dir=" + str(page.parent / ".chromium-profile"), "--dump-dom", url],
                         capture_output=True, text=True, timeout=120)
    dom = res.stdout
    prob = re.search(r'id="probability" data-probability="([^"]*)"', dom)
    assert prob, f"no #probability in the page's DOM; stderr: {res.stderr[-2000:]}"
    pts = re.search(r'id="total-points" data-points="([^"]*)"', dom)
    err = re.search(r'<div id="error" class="err">([^<]*)</div>', dom)
    warn = re.search(r'<div id="range-warning" class="warn"( hidden="")?>([^<]*)</div>', dom)
    assert warn, "no #range-warning in the page's DOM"
    return {"probability": float(prob.group(1)) if prob.group(1) else None,
            "total_points": float(pts.group(1)) if pts else None, "error": err.group(1) if err else "",
            "range_warning": "" if warn.group(1) else warn.group(2)}


def _nan_as_none(value):
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def test_model_card_json_holds_the_required_fields_with_the_evaluation_tables_values(fitted):
    perf = pd.read_csv(fitted["task_dir"] / "tables" / "table3_performance.tsv", sep="\t")
    pred = pd.read_csv(fitted["task_dir"] / "predictions.tsv", sep="\t", dtype={"patient_id": str})
    for bundle in sorted((fitted["task_dir"] / "models").glob("*/bundle.json")):
        name = bundle.parent.name
        meta = json.loads(bundle.read_text())
        card = json.loads((fitted["cards"] / f"{name}.json").read_text())
        assert set(REQUIRED) <= set(card), name
        assert card["model"]["name"] == name and card["model"]["model_sha256"] == meta["model_sha256"]
        assert card["threshold"]["value"] == meta["threshold"]
        for split in ("cv", "train", "test"):
            row = perf[(perf.model == name) & (perf.split == split)].iloc[0]
            got = card["performance"][split]
            assert (got["auc"]["estimate"], got["auc"]["ci_low"], got["auc"]["ci_high"]) == (
                row["auc"], row["auc_boot_low"], row["auc_boot_high"])
            for m in ("sensitivity", "specificity", "ppv", "npv"):
                # an undefined value (e.g. PPV with no positive call) is NaN in the table and null in the JSON
                assert [_nan_as_none(v) for v in (got[m]["estimate"], got[m]["ci_low"], got[m]["ci_high"])] == [
                    _nan_as_none(v) for v in (row[m], row[f"{m}_low"], row[f"{m}_high"])], (name, split, m)
            assert _nan_as_none(got["calibration"]["slope"]["estimate"]) == _nan_as_none(row["cal_slope"])
            assert got["calibration"]["brier"] == row["brier"]
            assert got["n_images"] == row["n"]
        tr = pred[(pred.model == name) & (pred.split == "train")].groupby("patient_id")["y"].max()
        assert card["training_cohort"]["n_patients"] == len(tr) == meta["n_train_patients"]
        assert card["training_cohort"]["n_positive_patients"] == int(tr.sum())
        assert card["simulated_data"] is True and card["limitations"][0].startswith("SIMULATED DATA")
        md = (fitted["cards"] / f"{name}.md").read_text()
        assert "SIMULATED DATA" in md and f"{meta['threshold']:.4f}" in md
        assert f"{row['auc']:.3f} ({row['auc_boot_low']:.3f}–{row['auc_boot_high']:.3f})" in md
        if name == "clinical":
            assert card["radscore_formula"] is None and card["preoperative_variables"]["radiomics"] == []
        else:
            assert card["radscore_formula"] == meta["radscore_formula"] and card["radscore_formula"] in md
        if name == "nomogram":
            assert card["preoperative_variables"]["clinical"] == meta["clinical_independent"]


def test_printable_nomogram_is_written_as_png_and_pdf_at_journal_width(fitted):
    from PIL import Image

    png, pdf = fitted["cards"] / "nomogram.png", fitted["cards"] / "nomogram.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    w, h = Image.open(png).size
    assert abs(w - 183 / 25.4 * 300) < 3 and h > 600
    page = (fitted["cards"] / "nomogram.html").read_text()
    assert not re.search(r'(src|href)="(https?:)?//', page), "the page must not load anything from the network"
    assert "data:image/png;base64," in page and "SIMULATED" in page


def test_browser_page_computes_the_cli_probabilities_of_three_patients(fitted, small_cohort, chromium, tmp_path):
    from usrad.cli import main

    mem = pd.read_parquet(fitted["memory"])
    test = mem[(mem.model == "nomogram") & (mem.split == "test")].sort_values("patient_id")
    pids = list(test.drop_duplicates("probability")["patient_id"])[:3]  # patients the model tells apart
    assert len(pids) >= 2, "the nomogram gives every test patient the same probability"
    manifest = new_patient_manifest(small_cohort, pids, tmp_path / "new.csv")
    out = tmp_path / "preds.csv"
    assert main(["predict", "--model", str(fitted["task_dir"] / "models" / "nomogram"), "--manifest", str(manifest),
                 "--out", str(out), "--features", str(fitted["features_path"]), "--quiet"]) == 0
    cli = pd.read_csv(out, dtype={"patient_id": str}, float_precision="round_trip").set_index("patient_id")
    raw = pd.read_csv(manifest, dtype=str, keep_default_na=False).set_index("patient_id")
    spec = json.loads(re.search(r"const MODEL = (\{.*?\});\n", (fitted["cards"] / "nomogram.html").read_text()).group(1))
    names = [v["name"] for v in spec["variables"]]
    assert names[0] == "rad_score"
    seen = []
    for pid in pids:
        query = {"rad_score": repr(float(cli.at[pid, "rad_score"]))}
        query.update({n: raw.at[pid, n] for n in names[1:]})
        got = page_result(chromium, fitted["cards"] / "nomogram.html", query)
        assert got["error"] == ""
        assert got["probability"] == pytest.approx(cli.at[pid, "probability"], rel=1e-9, abs=0), pid
        assert got["total_points"] == pytest.approx(cli.at[pid, "total_points"], rel=1e-9, abs=1e-9), pid
        seen.append(got["probability"])
    assert len(set(seen)) == len(pids) and np.ptp(seen) > 1e-3  # different patients, not one default value
    # a missing rad-score is an error on the page, not a probability
    got = page_result(chromium, fitted["cards"] / "nomogram.html", {n: raw.at[pids[0], n] for n in names[1:]})
    assert got["probability"] is None and "value missing" in got["error"]


MALIGNANCY = {"name": "malignancy", "label": "malignant == 1", "description": "Malignant vs benign lesion",
              "outcome": "malignancy of a thyroid nodule (malignant vs benign)", "outcome_short": "malignancy",
              "population": "adults with a thyroid nodule", "decision": "the decision on fine-needle aspiration",
              "harms": "a missed carcinoma versus an unnecessary aspiration", "positive_label": "Malignant",
              "negative_label": "Benign"}
OLD_WORDING = re.compile(r"ALN|breast|axillary|lymph|women|N\+|N0", re.IGNORECASE)


def _page_text(path: Path) -> str:
    """A card file's text without the nomogram page's embedded PNG (base64 letters could spell anything)."""
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]*", "", path.read_text())


def test_cards_and_nomogram_page_take_their_wording_from_the_task_config(fitted, default_config, tmp_path):
    from usrad.reporting.card import write_task_cards

    written = write_task_cards(fitted["task_dir"], tmp_path / "card", demo=False, task=MALIGNANCY)
    assert {"nomogram.md", "nomogram.json", "radscore.json", "nomogram.html"} <= set(written)
    for name, path in written.items():
        if path.suffix in (".md", ".json", ".html"):
            hit = OLD_WORDING.search(_page_text(path))
            assert hit is None, f"{name} says {hit.group(0)!r} for a malignancy task"
    card = json.loads((tmp_path / "card" / "nomogram.json").read_text())
    assert card["intended_use"].startswith("Research use: preoperative estimate of the probability of malignancy of "
                                           "a thyroid nodule (malignant vs benign) in adults with a thyroid nodule,")
    assert "to support (not replace) the decision on fine-needle aspiration." in card["intended_use"]
    assert any("a missed carcinoma versus an unnecessary aspiration" in x for x in card["limitations"])
    assert "<title>Nomogram — malignancy of a thyroid nodule (malignant vs benign)</title>" in (
        tmp_path / "card" / "nomogram.html").read_text()
    # the demo's config words the metastasis task as the reference study does (the cards of the demo run)
    demo = json.loads((fitted["cards"] / "radscore.json").read_text())
    assert demo["intended_use"] == (
        "Research use: preoperative estimate of the probability of axillary lymph node metastasis (N+ vs N0) in women "
        "with breast cancer, from a B-mode ultrasound image with a lesion mask, to support (not replace) the decision "
        "on axillary surgery. Only for patients like those of the training cohort.")


def test_browser_page_shows_training_ranges_and_warns_outside_them(fitted, chromium):
    meta = json.loads((fitted["task_dir"] / "models" / "nomogram" / "bundle.json").read_text())
    page = fitted["cards"] / "nomogram.html"
    text = page.read_text()
    numeric = {k: r for k, r in meta["nomogram_inputs"].items() if not r["binary"]}
    assert "rad_score" in numeric
    for name, r in numeric.items():  # the range printed next to each field is the bundle's training range
        assert f'<span class="range" id="range-{name}">training range {r["min"]:.4g} to {r["max"]:.4g}</span>' in text
    spec = json.loads(re.search(r"const MODEL = (\{.*?\});\n", text).group(1))
    inside = {}
    for v in spec["variables"]:
        inside[v["name"]] = (v["reference"] if v["kind"] == "categorical" else "0" if v["kind"] == "binary"
                             else repr((v["range"][0] + v["range"][1]) / 2))
    got = page_result(chromium, page, inside)
    assert got["error"] == "" and got["probability"] is not None and got["range_warning"] == ""
    lo, hi = numeric["rad_score"]["min"], numeric["rad_score"]["max"]
    got = page_result(chromium, page, {**inside, "rad_score": "25"})
    assert got["probability"] is not None  # still computed, but flagged
    assert "Rad-score 25 is outside the training range" in got["range_warning"], got
    assert f"{lo:.4g}"[:4] in got["range_warning"] and "extrapolated" in got["range_warning"]
    assert got["total_points"] > 100  # what the warning is about: beyond the 0-100 scale of the training data
