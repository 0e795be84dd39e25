"""Figures and tables: each function writes PNG + PDF at journal size, and what it plots is what
:mod:`usrad.metrics` computes (checked on synthetic predictions with a known signal)."""
from __future__ import annotations

import ast
import hashlib
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from usrad import metrics
from usrad.reporting import calibration as calibration_module
from usrad.reporting.calibration import calibration_figure
from usrad.reporting.cohort import flow_figure, table1
from usrad.reporting.curves import (
    CALIBRATION_COLUMNS, CURVE_N_BOOT, ROC_BAND_COLUMNS, ROC_CURVE_COLUMNS, calibration_tables, decision_curve_table,
    roc_tables
)
from usrad.reporting.decision import confusion_figure, decision_curve_figure
from usrad.reporting.discrimination import forest_figure, roc_figure
from usrad.reporting.explain import shap_figure
from usrad.reporting.nomogram_figure import nomogram_figure
from usrad.reporting.predictions import attach_outcome, check_predictions
from usrad.reporting.signature import icc_figure, lasso_cv_figure, lasso_path_figure, radscore_figure
from usrad.reporting.style import MM, SINGLE, new_figure, save_figure
from usrad.reporting.tables import format_performance, performance_tables, radscore_table
from usrad.errors import UsradError

N_BOOT = 200
REPORTING = Path(__file__).resolve().parents[1] / "src" / "usrad" / "reporting"
# d' of each model's score: binormal AUC = Phi(d / sqrt(2))
SIGNAL = {"clinical": 0.8, "radiomics": 1.3, "combined": 1.8, "lr": 1.6, "svm": 1.5, "rf": 1.4,
          "xgb": 1.45, "knn": 1.0, "nb": 1.2, "mlp": 1.55}


def synthetic_predictions(n_train: int = 240, n_test: int = 160, seed: int = 7, task: str = "metastasis",
                          signal: dict = SIGNAL) -> pd.DataFrame:
    """Patients with 1–2 images, y ~ Bernoulli(0.35) per patient; each model's score s = d·y + N(0, 1) − d/2
    (binormal, AUC = Φ(d/√2)) and its probability the calibrated one, logit p = d·s + logit(0.35)."""
    rng = np.random.default_rng(seed)
    rows = []
    pid = 0
    for split, n in (("train", n_train), ("test", n_test)):
        for _ in range(n):
            pid += 1
            y = int(rng.random() < 0.35)
            for img in range(1 + int(rng.random() < 0.25)):
                for m, d in signal.items():
                    score = d * y + rng.normal() - d / 2
                    p = 1 / (1 + np.exp(-(d * score + np.log(0.35 / 0.65))))
                    rows.append({"patient_id": f"P{pid:04d}", "image_id": f"P{pid:04d}_{img}", "task": task,
                                 "split": split, "model": m, "probability": p, "y": y,
                                 "rad_score": score if m == "radiomics" else np.nan})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def preds() -> pd.DataFrame:
    return synthetic_predictions()


def _sel(preds, split, model):
    d = preds[(preds["split"] == split) & (preds["model"] == model)]
    return d.sort_values(["patient_id", "image_id"])


def _only(preds, models):
    return preds[preds["model"].isin(models)]


def _table3(preds, n_boot=N_BOOT, seed=0, threshold=0.5):
    """Table 3 of the predictions, every model at one threshold."""
    return performance_tables(preds, {m: threshold for m in set(preds["model"])}, n_boot=n_boot, seed=seed)


def _roc(preds, stem, n_boot=N_BOOT, seed=0, **kw):
    """The ROC figure as the evaluation draws it: Table 3 and the ROC tables first, then the figure."""
    curve, band = roc_tables(preds, n_boot=n_boot, seed=seed, **kw)
    return roc_figure(_table3(preds, n_boot, seed), curve, band, stem, **kw)


def assert_figure_files(stem, width_mm):
    png, pdf = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")
    assert png.stat().st_size > 10_000 and pdf.stat().st_size > 2_000
    assert pdf.read_bytes()[:5] == b"%PDF-"
    with Image.open(png) as im:
        w, h = im.size
        # 300 dpi at the journal column width
        assert abs(w - width_mm / 25.4 * 300) <= 2
        # not blank: many distinct grey levels
        assert len(np.unique(np.asarray(im.convert("L")))) > 20


# ---------------------------------------------------------------------------------------------------
def test_roc_legend_auc_and_ci_are_metrics_patient_bootstrap(preds, tmp_path):
    stem = tmp_path / "roc"
    data = _roc(_only(preds, ("clinical", "radiomics", "combined")), stem, n_boot=N_BOOT, seed=3)
    assert_figure_files(stem, 183)
    assert set(data["split"]) == {"train", "test"} and len(data) == 6
    for _, r in data.iterrows():
        d = _sel(preds, r["split"], r["model"])
        expected = metrics.bootstrap_auc(d["y"], d["probability"], groups=d["patient_id"], n_boot=N_BOOT, seed=3)
        assert r["auc"] == pytest.approx(metrics.auc(d["y"], d["probability"]), abs=1e-12)
        assert (r["low"], r["high"]) == pytest.approx((expected["low"], expected["high"]), abs=1e-12)
        assert f"AUC {expected['auc']:.3f} ({expected['low']:.3f}–{expected['high']:.3f})" in r["label"]
    # the known signal ordering is visible: combined > radiomics > clinical in the test set
    test = data[data["split"] == "test"].set_index("model")["auc"]
    assert test["combined"] > test["radiomics"] > test["clinical"]
    assert test["combined"] == pytest.approx(stats.norm.cdf(SIGNAL["combined"] / np.sqrt(2)), abs=0.08)


def test_roc_band_brackets_the_observed_curve_and_narrows_with_more_patients():
    rng = np.random.default_rng(0)
    widths = []
    for n in (100, 1600):
        y = (rng.random(n) < 0.4).astype(int)
        p = 1 / (1 + np.exp(-(1.5 * y + rng.normal(size=n))))
        band = metrics.roc_band(y, p, n_boot=300, seed=1)
        curve = metrics.roc_curve(y, p)
        observed = metrics.tpr_on_grid(curve["fpr"].to_numpy()[None, :], curve["tpr"].to_numpy()[None, :],
                                       band["fpr"].to_numpy())[0]
        inside = (band["tpr_low"] <= observed + 1e-12) & (observed <= band["tpr_high"] + 1e-12)
        assert inside.mean() > 0.9
        widths.append(float((band["tpr_high"] - band["tpr_low"]).iloc[10:90].mean()))
    assert widths[1] < widths[0] / 2.5  # ~ 1/sqrt(16) = 1/4


def test_forest_points_are_metrics_aucs_for_every_model_and_split(preds, tmp_path):
    stem = tmp_path / "forest"
    data = forest_figure(_table3(preds, seed=5), stem)
    assert_figure_files(stem, 183)
    assert len(data) == 2 * len(SIGNAL)
    assert list(data.drop_duplicates("model")["model"][:3]) == ["clinical", "radiomics", "combined"]
    for _, r in data.iterrows():
        d = _sel(preds, r["split"], r["model"])
        b = metrics.bootstrap_auc(d["y"], d["probability"], groups=d["patient_id"], n_boot=N_BOOT, seed=5)
        assert (r["auc"], r["low"], r["high"]) == pytest.approx((b["auc"], b["low"], b["high"]), abs=1e-12)
        assert r["low"] <= r["auc"] <= r["high"]


def test_roc_tables_hold_each_curve_and_its_band_from_the_auc_resamples(preds):
    three = _only(preds, ("clinical", "radiomics", "combined"))
    curve, band = roc_tables(three, n_boot=N_BOOT, seed=3)
    assert list(curve.columns) == list(ROC_CURVE_COLUMNS) and list(band.columns) == list(ROC_BAND_COLUMNS)
    assert set(zip(band["model"], band["split"])) == set(itertools.product(("clinical", "radiomics", "combined"),
                                                                          ("train", "test")))
    d = _sel(three, "test", "combined")
    b = band[(band["model"] == "combined") & (band["split"] == "test")]
    pd.testing.assert_frame_equal(b[["fpr", "tpr_low", "tpr_high"]].reset_index(drop=True),
                                  metrics.roc_band(d["y"], d["probability"], groups=d["patient_id"], n_boot=N_BOOT,
                                                   seed=3))
    c = curve[(curve["model"] == "combined") & (curve["split"] == "test")]
    assert (c["fpr"].iloc[0], c["tpr"].iloc[0], c["fpr"].iloc[-1], c["tpr"].iloc[-1]) == (0, 0, 1, 1)
    assert np.all(np.diff(c["fpr"]) >= 0) and np.all(np.diff(c["tpr"]) >= 0)
    assert len(b) == len(metrics.FPR_GRID) and (b["tpr_low"] <= b["tpr_high"]).all()


def _no_statistic(*args, **kwargs):
    raise AssertionError("a figure computed a statistic")


def test_figures_draw_the_numbers_of_the_tables_they_are_given_and_compute_nothing(preds, tmp_path, monkeypatch):
    """Hand-edited tables: the ROC legend, the forest points, the confusion counts and the decision curves are
    the tables' numbers, drawn with every usrad.metrics function failing."""
    three = _only(preds, ("clinical", "radiomics", "combined"))
    perf = _table3(three, n_boot=50)
    curve, band = roc_tables(three, n_boot=50)
    dca = decision_curve_table(three)
    perf.loc[(perf["model"] == "combined") & (perf["split"] == "test"),
             ["auc", "auc_boot_low", "auc_boot_high", "tp", "fp", "tn", "fn"]] = [0.5125, 0.25, 0.75, 1, 2, 3, 4]
    dca.loc[(dca["model"] == "clinical") & (dca["split"] == "train"), "net_benefit"] = 0.0123
    for name in metrics.__all__:
        if callable(getattr(metrics, name)):
            monkeypatch.setattr(metrics, name, _no_statistic)
    roc = roc_figure(perf, curve, band, tmp_path / "roc").set_index(["model", "split"])
    assert "AUC 0.512 (0.250–0.750)" in roc.loc[("combined", "test"), "label"]
    # One band, the last model's (four translucent bands merge into one mass), unless asked otherwise
    assert roc.loc[roc["band"]].index.get_level_values("model").unique().tolist() == ["combined"]
    both = roc_figure(perf, curve, band, tmp_path / "roc2", band_models=["clinical", "combined"])
    assert sorted(both.loc[both["band"], "model"].unique()) == ["clinical", "combined"]
    forest = forest_figure(perf, tmp_path / "forest").set_index(["model", "split"])
    assert tuple(forest.loc[("combined", "test"), ["auc", "low", "high"]]) == (0.5125, 0.25, 0.75)
    conf = confusion_figure(perf, tmp_path / "confusion").set_index(["model", "split"])
    assert tuple(conf.loc[("combined", "test"), ["tp", "fp", "tn", "fn"]]) == (1, 2, 3, 4)
    drawn = decision_curve_figure(dca, tmp_path / "dca")
    assert (drawn.loc[(drawn["model"] == "clinical") & (drawn["split"] == "train"), "net_benefit"] == 0.0123).all()
    monkeypatch.undo()
    by_class = radscore_table(three)
    by_class.loc[by_class["split"] == "test", "p_value"] = 0.0421
    monkeypatch.setattr(metrics, "mann_whitney_p", _no_statistic)
    rs = radscore_figure(three, by_class, tmp_path / "rs")
    assert set(rs.loc[rs["split"] == "test", "p_value"]) == {0.0421}
    with pytest.raises(UsradError, match="ROC band"):
        roc_figure(perf, curve, band[band["model"] != "clinical"], tmp_path / "x")


def _metrics_uses(tree: ast.Module) -> list[int]:
    """Lines of a module that import usrad.metrics (absolute or relative) or use a name ``metrics``."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names = {a.name for a in node.names}
            if (node.module or "").split(".")[-1] == "metrics" or (node.level and "metrics" in names) \
                    or (node.module == "usrad" and "metrics" in names):
                lines.append(node.lineno)
        elif isinstance(node, ast.Import) and any(a.name.startswith("usrad.metrics") for a in node.names):
            lines.append(node.lineno)
        elif isinstance(node, ast.Name) and node.id == "metrics":
            lines.append(node.lineno)
    return lines


def test_no_reporting_module_that_draws_uses_usrad_metrics():
    """Figures read the metric tables and never recompute: a module that saves a figure does not import (or
    use) usrad.metrics, and the modules that compute the tables draw nothing."""
    drawing, computing = [], []
    for path in sorted(REPORTING.glob("*.py")):
        tree = ast.parse(path.read_text())
        draws = any(isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None))
                    in ("save_figure", "new_figure") for n in ast.walk(tree))
        uses = _metrics_uses(tree)
        assert not (draws and uses), f"{path.name} draws and uses usrad.metrics (lines {uses})"
        (drawing if draws else computing if uses else []).append(path.stem)
    assert {"calibration", "decision", "discrimination", "signature", "style"} <= set(drawing)
    assert {"curves", "tables", "evaluation"} <= set(computing)


def _overconfident(preds):
    """A copy of "combined" with its logit doubled: calibration slope about half that of "combined"."""
    over = preds[preds["model"] == "combined"].copy()
    lp = np.log(over["probability"] / (1 - over["probability"]))
    over["probability"] = 1 / (1 + np.exp(-2 * lp))
    over["model"] = "overconfident"
    return pd.concat([preds, over], ignore_index=True)


@pytest.fixture(scope="module")
def calib(preds):
    p = _overconfident(preds)
    cal, curve = calibration_tables(p, models=["combined", "overconfident", "clinical"], seed=4)
    return p, cal, curve


def test_calibration_table_numbers_are_metrics_patient_level_functions(calib):
    p, cal, curve = calib
    assert list(cal.columns) == list(CALIBRATION_COLUMNS)
    assert set(zip(cal["model"], cal["split"])) == {(m, s) for m in ("combined", "overconfident", "clinical")
                                                    for s in ("train", "test")}
    for split in ("train", "test"):
        d = _sel(p, split, "combined")
        y, prob, g = d["y"].to_numpy(), d["probability"].to_numpy(), d["patient_id"].to_numpy()
        row = cal[(cal["model"] == "combined") & (cal["split"] == split)].iloc[0]
        ref = metrics.calibration_intercept_slope(y, prob, groups=g)
        for k in ("intercept", "intercept_low", "intercept_high", "slope", "slope_low", "slope_high", "slope_p"):
            assert row[k] == pytest.approx(ref[k], abs=1e-12), k
        # patient level: the cluster-robust interval is not the image-level one (some patients have two images)
        naive = metrics.calibration_intercept_slope(y, prob)
        assert row["cov_type"] == "cluster" and abs(row["slope_high"] - naive["slope_high"]) > 1e-6
        hl = metrics.hosmer_lemeshow(y, prob, g=10, validation=split != "train")
        assert (row["hl_statistic"], row["hl_df"], row["hl_p"]) == pytest.approx(
            (hl["statistic"], hl["df"], hl["p_value"]), abs=1e-12)
        assert row["hl_df"] == len(hl["table"]) - (2 if split == "train" else 0)  # apparent: g − 2
        assert row["validation"] == (split != "train")
        assert row["brier"] == pytest.approx(metrics.brier_score(y, prob), abs=1e-15)
        assert (row["n"], row["n_patients"], row["n_pos"]) == (len(d), d["patient_id"].nunique(), int(y.sum()))
        assert (row["mean_predicted"], row["observed"]) == pytest.approx((prob.mean(), y.mean()), abs=1e-15)
        lo, hi = metrics.wilson_ci(int(y.sum()), len(y), deff=metrics.design_effect(y, g))
        assert (row["observed_low"], row["observed_high"]) == pytest.approx((lo, hi), abs=1e-12)
        sm = metrics.smoothed_calibration(y, prob, groups=g, n_boot=CURVE_N_BOOT, seed=4)
        got = curve[(curve["model"] == "combined") & (curve["split"] == split)].reset_index(drop=True)
        np.testing.assert_allclose(got[["p_grid", "observed", "lower", "upper"]].to_numpy(),
                                   sm[["p_grid", "observed", "lower", "upper"]].to_numpy(), atol=1e-12)
        assert row["curve_n_boot"] == CURVE_N_BOOT and row["curve_knots_logit"].count(";") == 2


def test_calibration_slope_flags_the_overconfident_copy(calib):
    _, cal, _ = calib
    slope = cal.set_index(["split", "model"])["slope"]
    for split in ("train", "test"):
        assert slope[(split, "overconfident")] == pytest.approx(slope[(split, "combined")] / 2, rel=1e-6)
    assert 0.7 < slope[("train", "combined")] < 1.3
    row = cal.set_index(["split", "model"]).loc[("test", "overconfident")]
    assert row["slope_high"] < 1  # its CI excludes 1: too extreme


def _fail(*args, **kwargs):
    raise AssertionError("the calibration figure computed a statistic")


def test_calibration_figure_draws_the_tables_and_computes_nothing(calib, tmp_path, monkeypatch):
    p, cal, curve = calib
    for name in dir(metrics):  # every metrics function raises while the figure is drawn
        if callable(getattr(metrics, name)) and not name.startswith("__") and name[0].islower():
            monkeypatch.setattr(metrics, name, _fail)
    stem = tmp_path / "calibration"
    data = calibration_figure(cal, curve, p, stem, models=["combined", "overconfident"])
    assert_figure_files(stem, 183)
    got = data[(data["model"] == "combined") & (data["split"] == "test")].reset_index(drop=True)
    want = curve[(curve["model"] == "combined") & (curve["split"] == "test")].reset_index(drop=True)
    np.testing.assert_array_equal(got[["p_grid", "observed", "lower", "upper"]], want[["p_grid", "observed",
                                                                                         "lower", "upper"]])
    row = cal[(cal["model"] == "combined") & (cal["split"] == "test")].iloc[0]
    text = got["text"].iloc[0]
    assert f"Slope {row['slope']:.2f} ({row['slope_low']:.2f}, {row['slope_high']:.2f})" in text
    assert f"{int(row['n_patients'])} patients, {int(row['n'])} images" in text
    assert f"Brier {row['brier']:.3f}" in text
    # an edited table is what the figure shows: new numbers in the text, a new curve, other pixels
    edited, bent = cal.copy(), curve.copy()
    pick = (edited["model"] == "combined") & (edited["split"] == "test")
    edited.loc[pick, ["slope", "slope_low", "slope_high"]] = [7.77, 6.66, 8.88]
    bent.loc[(bent["model"] == "combined") & (bent["split"] == "test"), "observed"] = 0.5
    again = calibration_figure(edited, bent, p, tmp_path / "edited", models=["combined", "overconfident"])
    moved = again[(again["model"] == "combined") & (again["split"] == "test")]
    assert "Slope 7.77 (6.66, 8.88)" in moved["text"].iloc[0] and (moved["observed"] == 0.5).all()
    assert (tmp_path / "edited.png").read_bytes() != stem.with_suffix(".png").read_bytes()


def _text_boxes(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    FigureCanvasAgg(fig)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    return [(t.get_text(), t.get_window_extent(r)) for t in fig.findobj(Text) if t.get_visible() and t.get_text()]


@pytest.mark.parametrize("models", [["clinical", "combined", "overconfident"], ["combined"]])
def test_calibration_figure_texts_stay_inside_the_figure_and_do_not_overlap(calib, tmp_path, monkeypatch, models):
    p, cal, curve = calib
    saved = {}
    real_save = save_figure

    def keep(fig, stem):
        saved["fig"] = fig
        return real_save(fig, stem)
    monkeypatch.setattr(calibration_module, "save_figure", keep)
    calibration_figure(cal, curve, p, tmp_path / "c", models=models)
    fig = saved["fig"]
    boxes = _text_boxes(fig)
    assert len(boxes) > 10
    for text, b in boxes:
        assert b.x0 >= 0 and b.y0 >= 0 and b.x1 <= fig.bbox.x1 + 0.5 and b.y1 <= fig.bbox.y1 + 0.5, text
    for (ta, a), (tb, b) in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (ta, tb)
    # the layout check can fail: a text pushed onto another one is caught
    ax = fig.axes[0]
    ax.text(0, 1, boxes[0][0], transform=ax.transAxes)
    moved = _text_boxes(fig)
    assert any(a.overlaps(b) for (_, a), (_, b) in itertools.combinations(moved, 2))


def test_calibration_figure_refuses_tables_that_do_not_match(calib, tmp_path):
    p, cal, curve = calib
    with pytest.raises(UsradError, match="'slope_low'"):
        calibration_figure(cal.drop(columns=["slope_low"]), curve, p, tmp_path / "x", models=["combined"])
    doubled = pd.concat([cal, cal[(cal["model"] == "combined") & (cal["split"] == "test")]])
    with pytest.raises(UsradError, match="'combined', split 'test': 2 calibration row"):
        calibration_figure(doubled, curve, p, tmp_path / "x", models=["combined"])
    with pytest.raises(UsradError, match="'combined', split 'test': 1 calibration row.s. and 0 curve"):
        calibration_figure(cal, curve[~((curve["model"] == "combined") & (curve["split"] == "test"))], p,
                           tmp_path / "x", models=["combined"])
    assert not (tmp_path / "x.png").exists()


def test_performance_tables_hosmer_lemeshow_df_is_g_except_on_apparent_training_predictions(tmp_path):
    small = synthetic_predictions(n_train=120, n_test=100, signal={"clinical": 0.8, "combined": 1.6})
    cv = small[small["split"] == "train"].assign(split="cv")
    perf = performance_tables(pd.concat([small, cv]), {"clinical": 0.4, "combined": 0.4}, n_boot=50)
    for _, r in perf.iterrows():
        d = _sel(pd.concat([small, cv]), r["split"], r["model"])
        hl = metrics.hosmer_lemeshow(d["y"], d["probability"], validation=r["split"] != "train")
        assert r["hl_df"] == hl["df"] and r["hl_p"] == pytest.approx(hl["p_value"], abs=1e-12)
    df = perf.set_index(["model", "split"])["hl_df"]
    assert df[("combined", "train")] == df[("combined", "cv")] - 2  # same rows, apparent vs out-of-fold


def test_decision_curve_treat_all_follows_prevalence_formula_and_models_beat_treat_none(preds, tmp_path):
    stem = tmp_path / "dca"
    data = decision_curve_figure(decision_curve_table(preds), stem)
    assert_figure_files(stem, 183)
    for split in ("train", "test"):
        d = _sel(preds, split, "combined")
        prev = d["y"].mean()
        allr = data[(data["split"] == split) & (data["model"] == "all")]
        pt = allr["threshold"].to_numpy()
        np.testing.assert_allclose(allr["net_benefit"], prev - (1 - prev) * pt / (1 - pt), atol=1e-12)
        none = data[(data["split"] == split) & (data["model"] == "none")]
        assert np.all(none["net_benefit"] == 0)
        comb = data[(data["split"] == split) & (data["model"] == "combined")].set_index("threshold")
        assert comb.loc[0.3, "net_benefit"] > 0.05


def test_radscore_separates_classes_with_small_p_and_reports_medians(preds, tmp_path):
    stem = tmp_path / "radscore"
    data = radscore_figure(preds, radscore_table(preds), stem)
    assert_figure_files(stem, 89)
    for split in ("train", "test"):
        r = data[data["split"] == split].set_index("class")
        d = _sel(preds, split, "radiomics")
        assert r.loc[1, "median"] == pytest.approx(d.loc[d["y"] == 1, "rad_score"].median())
        assert r.loc[1, "median"] > r.loc[0, "median"]
        assert r.loc[0, "p_value"] < 1e-6
        assert r["n"].sum() == len(d)
        expected = stats.mannwhitneyu(d.loc[d["y"] == 1, "rad_score"], d.loc[d["y"] == 0, "rad_score"]).pvalue
        assert r.loc[0, "p_value"] == r.loc[1, "p_value"] == pytest.approx(expected, rel=1e-12)


def test_confusion_counts_use_the_fixed_threshold_with_p_at_or_above_as_positive(preds, tmp_path):
    thresholds = {"clinical": 0.4, "radiomics": 0.5, "combined": 0.45}
    preds = _only(preds, thresholds).copy()
    tie = preds.index[(preds["split"] == "test") & (preds["model"] == "radiomics") & (preds["y"] == 0)][0]
    preds.loc[tie, "probability"] = 0.5  # exactly at the threshold: called positive (a false positive)
    stem = tmp_path / "confusion"
    data = confusion_figure(performance_tables(preds, thresholds, n_boot=20), stem)
    assert_figure_files(stem, 183)
    for _, r in data.iterrows():
        d = _sel(preds, r["split"], r["model"])
        pos = d["probability"] >= thresholds[r["model"]]
        assert r["tp"] == int((pos & (d["y"] == 1)).sum())
        assert r["fp"] == int((pos & (d["y"] == 0)).sum())
        assert r["tp"] + r["fp"] + r["tn"] + r["fn"] == len(d)
    rad_test = data[(data["split"] == "test") & (data["model"] == "radiomics")].iloc[0]
    d = _sel(preds, "test", "radiomics")
    assert rad_test["fp"] == int(((d["probability"] > 0.5) & (d["y"] == 0)).sum()) + 1
    with pytest.raises(UsradError, match="combined"):  # no threshold, no Table 3 row, no matrix
        performance_tables(preds, {"clinical": 0.4, "radiomics": 0.5}, n_boot=20)


def test_icc_counts_per_feature_class_match_the_threshold(tmp_path):
    rng = np.random.default_rng(1)
    names = ([f"original_firstorder_F{i}" for i in range(18)] + [f"wavelet-LH_glcm_G{i}" for i in range(40)]
             + [f"original_shape2D_S{i}" for i in range(9)])
    icc = rng.beta(5, 1.5, len(names))
    icc[3] = 0.75            # exactly at the threshold: kept
    icc[4] = np.nan          # undefined: dropped
    table = pd.DataFrame({"feature": names, "icc": icc})
    stem = tmp_path / "icc"
    data = icc_figure(table, stem, threshold=0.75).set_index("feature_class")
    assert_figure_files(stem, 183)
    assert data.loc["glcm", "n_features"] == 40
    assert data.loc["glcm", "n_kept"] == int((icc[18:58] >= 0.75).sum())
    assert data.loc["firstorder", "n_nan"] == 1
    assert data.loc["total", "n_kept"] == int(np.nansum(icc >= 0.75))
    assert data.loc["total", "n_kept"] + data.loc["total", "n_dropped"] == len(names)


def test_lasso_cv_requires_one_selected_penalty_and_path_highlights_nonzero_features(tmp_path):
    log_c = np.linspace(-3, 1, 25)
    cv = pd.DataFrame({"log_C": log_c, "mean_auc": 0.8 - 0.05 * (log_c + 1) ** 2, "sd": 0.03,
                       "selected": np.isclose(log_c, -1), "n_features": np.round(np.exp(log_c + 3)).astype(int)})
    stem = tmp_path / "lasso_cv"
    data = lasso_cv_figure(cv, stem)
    assert_figure_files(stem, 89)
    assert data.loc[data["selected"], "log_C"].item() == pytest.approx(-1)
    with pytest.raises(UsradError, match="exactly one"):
        lasso_cv_figure(cv.assign(selected=False), tmp_path / "bad")

    # wide path table: feature k enters when log_C > -3 + 0.4 k
    wide = pd.DataFrame({"log_C": log_c})
    for k in range(12):
        wide[f"original_firstorder_F{k}"] = np.where(log_c > -3 + 0.4 * k, (log_c + 3 - 0.4 * k) * (-1) ** k, 0.0)
    stem = tmp_path / "lasso_path"
    long = lasso_path_figure(wide, stem, selected=-1.0)
    assert_figure_files(stem, 183)
    highlighted = set(long.loc[long["highlighted"], "feature"])
    assert highlighted == {f"original_firstorder_F{k}" for k in range(5)}  # -3 + 0.4k < -1  <=>  k < 5
    assert len(long) == 25 * 12


def test_flow_counts_patients_images_and_classes_and_rejects_leaking_patient(preds, tmp_path):
    table = preds[preds["model"] == "combined"][["patient_id", "image_id", "split", "y"]]
    stem = tmp_path / "flow"
    counts = flow_figure(table, stem, exclusions=[("No visible lesion", 7), ("Prior chemotherapy", 4)])
    assert_figure_files(stem, 89)
    c = counts.set_index("split")
    assert c.loc["all", "patients"] == 400 and c.loc["train", "patients"] == 240
    assert c.loc["all", "images"] == len(table)
    assert c.loc["test", "positive"] == table[table["split"] == "test"].groupby("patient_id")["y"].max().sum()
    leak = table.copy()
    leak.iloc[1, leak.columns.get_loc("split")] = "test" if leak.iloc[1]["split"] == "train" else "train"
    leak = pd.concat([leak, leak.iloc[[1]].assign(split=table.iloc[1]["split"])])
    with pytest.raises(UsradError, match=str(leak.iloc[1]["patient_id"])):
        flow_figure(leak, tmp_path / "leak")


def test_shap_ranking_follows_mean_absolute_shap(tmp_path):
    rng = np.random.default_rng(2)
    n, f = 150, 20
    x = rng.normal(size=(n, f))
    weights = np.linspace(2.0, 0.1, f)[rng.permutation(f)]
    sv = x * weights
    names = [f"wavelet-HH_glszm_Feature{k}" for k in range(f)]
    stem = tmp_path / "shap"
    ranking = shap_figure(sv, x, names, stem, max_display=12)
    assert_figure_files(stem, 183)
    assert list(ranking["feature"]) == [names[k] for k in np.argsort(-np.abs(sv).mean(axis=0))]
    assert ranking["mean_abs_shap"].is_monotonic_decreasing
    with pytest.raises(UsradError):
        shap_figure(sv, x[:, :5], names, tmp_path / "bad")


def _nomogram_spec():
    variables = [
        {"name": "rad_score", "label": "Rad-score", "coef": 1.1, "range": (-3.0, 3.0)},
        {"name": "us_size_mm", "label": "US size (mm)", "coef": 0.045, "range": (5.0, 60.0)},
        {"name": "age", "label": "Age (years)", "coef": -0.02, "range": (25.0, 85.0)},
        {"name": "us_node_suspicious", "label": "Suspicious node on US", "levels": {"No": 0.0, "Yes": 1.3}},
        {"name": "grade", "label": "Grade", "levels": {"1": 0.0, "2": 0.35, "3": 0.6}},
    ]
    return -1.7, variables


def test_nomogram_points_read_off_the_drawn_scales_give_the_logistic_probability(tmp_path):
    intercept, variables = _nomogram_spec()
    stem = tmp_path / "nomogram"
    scales, nomo = nomogram_figure(intercept, variables, stem)
    assert_figure_files(stem, 183)
    # the widest effect (rad-score: 6.6 logit units) spans 0-100 points
    rs = scales[scales["axis"] == "rad_score"]
    assert rs["points"].min() == pytest.approx(0) and rs["points"].max() == pytest.approx(100)
    assert (scales.loc[scales["axis"] == "Points", "x"] * 100).tolist() == \
        pytest.approx(scales.loc[scales["axis"] == "Points", "points"].tolist())
    rng = np.random.default_rng(3)
    for _ in range(20):
        patient = {"rad_score": rng.uniform(-3, 3), "us_size_mm": rng.uniform(5, 60), "age": rng.uniform(25, 85),
                   "us_node_suspicious": rng.choice(["No", "Yes"]), "grade": rng.choice(["1", "2", "3"])}
        lp = intercept
        total = 0.0
        for v in variables:
            s = scales[scales["axis"] == v["name"]]
            if "levels" in v:
                lp += v["levels"][patient[v["name"]]]
                total += float(s.loc[s["value"] == patient[v["name"]], "points"].iloc[0])
            else:
                lp += v["coef"] * patient[v["name"]]
                # linear scale: interpolate between the drawn ticks (extrapolate with the tick slope)
                xv, pv = s["value"].astype(float).to_numpy(), s["points"].to_numpy()
                slope = (pv[-1] - pv[0]) / (xv[-1] - xv[0])
                total += pv[0] + slope * (patient[v["name"]] - xv[0])
        assert total == pytest.approx(nomo.total_points(patient), abs=1e-9)
        expected = 1 / (1 + np.exp(-lp))
        assert abs(nomo.probability(total) - expected) < 1e-6
        # and via the drawn probability axis: its ticks sit where logit(p) says
        prob_axis = scales[scales["axis"] == "Probability"]
        for _, t in prob_axis.iterrows():
            assert nomo.probability(t["points"]) == pytest.approx(t["value"], abs=1e-9)
    # the drawn total-points ticks and the probability ticks share one position scale
    tot = scales[scales["axis"] == "Total points"]
    k = (tot["x"] / tot["points"]).iloc[1:]
    assert np.allclose(k, k.iloc[0])
    pa = scales[scales["axis"] == "Probability"]
    np.testing.assert_allclose(pa["x"], pa["points"] * k.iloc[0], atol=1e-12)


def test_nomogram_rejects_variable_without_range(tmp_path):
    with pytest.raises(UsradError, match="age"):
        nomogram_figure(0.0, [{"name": "age", "coef": 0.1}], tmp_path / "n")


def test_table1_pvalues_detect_a_shift_and_not_identical_distributions(tmp_path):
    rng = np.random.default_rng(4)
    n = 300
    split = np.where(np.arange(n) < 200, "train", "test")
    cohort = pd.DataFrame({
        "patient_id": [f"P{i:03d}" for i in range(n)], "image_id": [f"I{i:03d}" for i in range(n)],
        "image": "x.png",
        "age": rng.normal(55, 10, n),                                    # same distribution
        "us_size_mm": np.where(split == "train", rng.gamma(4, 5, n), rng.gamma(4, 8, n)),  # shifted
        "er": (rng.random(n) < 0.7).astype(int),                         # same
        "subtype": np.where(split == "train", rng.choice(["LumA", "LumB", "HER2", "TN"], n, p=[.5, .3, .1, .1]),
                            rng.choice(["LumA", "LumB", "HER2", "TN"], n, p=[.1, .2, .3, .4])),
    })
    cohort.loc[5, "age"] = np.nan
    sp = pd.Series(split, index=cohort["patient_id"])
    t1 = table1(cohort, sp, tmp_path / "table1")
    head = t1[t1["level"].isin(["", "mean ± SD", "median [IQR]"])].set_index("variable")
    assert head.loc["us_size_mm", "p_value"] < 0.01
    assert head.loc["subtype", "p_value"] < 0.01
    assert head.loc["age", "p_value"] > 0.05 and head.loc["age", "test_used"] == "Welch t"
    assert head.loc["us_size_mm", "test_used"] == "Mann-Whitney U"
    assert head.loc["er", "p_value"] > 0.05 and head.loc["er", "test_used"] == "Chi-squared"
    assert "image" not in set(t1["variable"])
    missing = t1[(t1["variable"] == "age") & (t1["level"] == "Missing")]
    assert missing["overall (n=300)"].item() == "1"
    er1 = t1[(t1["variable"] == "er") & (t1["level"] == "Yes")]  # a 0/1 variable prints No/Yes
    k = int(cohort.loc[:199, "er"].sum())
    assert er1["train (n=200)"].item() == f"{k} ({100 * k / 200:.1f}%)"
    tsv = (tmp_path / "table1.tsv").read_text()
    assert tsv.splitlines()[0].split("\t")[0] == "variable"
    with pytest.raises(UsradError, match="P299"):
        table1(cohort, sp.drop("P299"))


def test_table1_uses_fisher_for_sparse_2x2():
    cohort = pd.DataFrame({"patient_id": [str(i) for i in range(40)],
                           "rare": [1] * 3 + [0] * 27 + [1] * 2 + [0] * 8})
    sp = {str(i): ("train" if i < 30 else "test") for i in range(40)}
    t1 = table1(cohort, sp)
    head = t1[(t1["variable"] == "rare") & (t1["level"] == "")]
    assert head["test_used"].item() == "Fisher exact"
    assert head["p_value"].item() == pytest.approx(stats.fisher_exact([[27, 8], [3, 2]]).pvalue)


def test_performance_tables_one_row_per_task_model_split_from_metrics(tmp_path):
    small = synthetic_predictions(n_train=80, n_test=60, signal={"clinical": 0.8, "combined": 1.6})
    both = pd.concat([small, synthetic_predictions(n_train=80, n_test=60, seed=9, task="burden",
                                                   signal={"clinical": 0.5, "combined": 1.0})])
    thr = {("metastasis", "clinical"): 0.4, ("metastasis", "combined"): 0.5, "clinical": 0.3, "combined": 0.35}
    perf = performance_tables(both, thr, tmp_path / "table3", n_boot=100, seed=1)
    assert len(perf) == 2 * 2 * 2
    r = perf[(perf["task"] == "burden") & (perf["model"] == "combined") & (perf["split"] == "test")].iloc[0]
    d = both[(both["task"] == "burden") & (both["model"] == "combined") & (both["split"] == "test")]
    assert r["auc"] == pytest.approx(metrics.auc(d["y"], d["probability"]), abs=1e-12)
    assert r["threshold"] == 0.35  # task-specific key absent for burden -> model key
    text = format_performance(perf, tmp_path / "table3_text")
    assert text.loc[0, "AUC (95% CI)"].startswith(f"{perf.loc[0, 'auc']:.3f} (")
    assert (tmp_path / "table3.tsv").exists() and (tmp_path / "table3_text.tsv").exists()


def test_same_inputs_give_byte_identical_png_pdf_and_tsv(tmp_path):
    small = synthetic_predictions(n_train=60, n_test=40, signal={"clinical": 0.8, "radiomics": 1.2,
                                                                "combined": 1.6})
    digests = []
    for run in ("a", "b"):
        stem = tmp_path / run / "roc"
        _roc(small, stem, n_boot=50, seed=1)
        t = performance_tables(small, {"clinical": .4, "radiomics": .4, "combined": .4},
                               tmp_path / run / "t3", n_boot=50)
        del t
        digests.append([hashlib.sha256(p.read_bytes()).hexdigest() for p in
                        (stem.with_suffix(".png"), stem.with_suffix(".pdf"), tmp_path / run / "t3.tsv")])
    assert digests[0] == digests[1]


def test_save_figure_refuses_small_fonts_and_off_column_widths(tmp_path):
    fig = new_figure(SINGLE, 50 * MM)
    ax = fig.subplots()
    ax.text(0.5, 0.5, "tiny", fontsize=5)
    with pytest.raises(ValueError, match="below 7 pt"):
        save_figure(fig, tmp_path / "tiny")
    wide = new_figure(120 * MM, 50 * MM)
    wide.subplots()
    with pytest.raises(ValueError, match="120.0 mm"):
        save_figure(wide, tmp_path / "wide")


def test_bad_predictions_table_names_column_and_patient():
    bad = synthetic_predictions(n_train=5, n_test=5).drop(columns=["y"])
    with pytest.raises(UsradError, match="'y'"):
        check_predictions(bad)
    bad = synthetic_predictions(n_train=5, n_test=5)
    bad.loc[0, "probability"] = 1.5
    bad.loc[3, "split"] = "validation"
    with pytest.raises(UsradError) as exc:
        check_predictions(bad, file="predictions.tsv")
    msg = str(exc.value)
    assert "P0001" in msg and "'probability'" in msg and "'validation'" in msg and "predictions.tsv" in msg


def test_models_py_names_and_external_split_are_drawn_with_defaults(tmp_path):
    """models.py writes clinical/radscore/nomogram/combined and cv/train/test/external splits."""
    sig = {"clinical": 0.8, "radscore": 1.3, "nomogram": 1.7, "combined": 1.6, "svm": 1.4}
    p = synthetic_predictions(n_train=90, n_test=60, signal=sig)
    ext = synthetic_predictions(n_train=0, n_test=50, seed=11, signal=sig).assign(split="external")
    ext["patient_id"] = "X" + ext["patient_id"]
    ext["image_id"] = "X" + ext["image_id"]
    p = pd.concat([p, ext], ignore_index=True)
    p["rad_score"] = np.where(p["model"] == "radscore", np.log(p["probability"] / (1 - p["probability"])), np.nan)
    roc = _roc(p, tmp_path / "roc3", splits=("train", "test", "external"), n_boot=100)
    assert_figure_files(tmp_path / "roc3", 183)
    assert list(roc.drop_duplicates("model")["model"]) == ["clinical", "radscore", "nomogram", "combined"]
    assert list(roc.drop_duplicates("split")["split"]) == ["train", "test", "external"]
    d = _sel(p, "external", "nomogram")
    assert roc.set_index(["split", "model"]).loc[("external", "nomogram"), "auc"] == \
        pytest.approx(metrics.auc(d["y"], d["probability"]))
    three = ("train", "test", "external")
    rs = radscore_figure(p, radscore_table(p, splits=three), tmp_path / "rs3", splits=three)
    assert_figure_files(tmp_path / "rs3", 183)
    assert set(rs["split"]) == {"train", "test", "external"}
    fo = forest_figure(_table3(p, n_boot=100), tmp_path / "forest3", splits=("train", "test", "external"))
    assert_figure_files(tmp_path / "forest3", 183)
    assert len(fo) == 3 * len(sig)
    with pytest.raises(UsradError, match="external"):
        flow_figure(p[p["model"] == "svm"], tmp_path / "flow")


def test_attach_outcome_joins_on_image_and_task_and_names_unmatched_images():
    p = synthetic_predictions(n_train=10, n_test=5)
    outcomes = p.drop_duplicates(["task", "image_id"])[["task", "image_id", "y"]]
    joined = attach_outcome(p.drop(columns="y"), outcomes)
    pd.testing.assert_series_equal(joined["y"].astype(int), p["y"].reset_index(drop=True), check_names=False)
    with pytest.raises(UsradError, match="P0003_0"):
        attach_outcome(p.drop(columns="y"), outcomes[outcomes["image_id"] != "P0003_0"])
