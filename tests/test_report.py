"""The report: one task's figures and tables, the nomogram in raw units, DeLong table, and the summary in
which every number is read from a results file."""
from __future__ import annotations

import copy
import itertools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from usrad import metrics
from usrad.bundle import load_bundle
from usrad.cohort import read_cohort_table, write_cohort_table
from usrad.extract import provenance
from usrad.errors import UsradError
from usrad.features import write_feature_table
from usrad.models import fit_task, read_predictions, write_predictions
from usrad.reporting import summary
from usrad.reporting.calibration import calibration_figure
from usrad.reporting.cohort import cohort_report
from usrad.reporting.outputs import TASK_EXPORTS, TASK_FIGURES, TASK_TABLES
from usrad.reporting.evaluation import MAIN_MODELS, best_classifier, bundle_thresholds, default_comparisons, evaluate_task, read_bundles, task_design, task_performance
from usrad.reporting.nomogram_figure import nomogram_model
from usrad.reporting.signature import lasso_tables, short_feature
from usrad.reporting.sources import Sources, fmt_value, numbers_in, resolve_source
from usrad.reporting.style import fmt_p, model_label
from usrad.reporting.summary import write_summary
from usrad.reporting.tables import DELONG_COLUMNS, delong_table, format_delong
from usrad.reporting import workflow
from usrad.reporting.workflow import canonical_rulegraph, rulegraph_figure
from usrad.split import make_split, write_split

REPO = Path(__file__).resolve().parents[1]
TASK = "metastasis"
N_BOOT = 200  # the rule uses usrad.reporting.outputs.N_BOOT (2,000); fewer here to keep the test fast
FAST = {"classifiers": ["lr", "nb", "rf"], "combined_classifiers": ["lr"], "lasso": {"cv_folds": 5, "n_C": 12}}


@pytest.fixture(scope="module")
def workdir(small_features, small_cohort, default_config, tmp_path_factory):
    """A working directory laid out like the workflow's (results/...), evaluated and summarised."""
    table, cohort = small_features
    root = tmp_path_factory.mktemp("report_wd")
    res = root / "results"
    cfg = copy.deepcopy(default_config)
    cfg["modelling"] = {**cfg.get("modelling", {}), **FAST}
    cfg["tasks"] = [t for t in cfg["tasks"] if t["name"] == TASK]
    write_feature_table(table, res / "features" / "features.parquet", provenance(REPO / "config" / "radiomics.yaml"))
    write_cohort_table(cohort, res / "cohort" / "cohort.tsv")
    cohort = read_cohort_table(res / "cohort" / "cohort.tsv", categorical=cfg["clinical"]["categorical"])
    split = make_split(cohort, cfg["tasks"], seed=cfg["seed"])
    write_split(split, res / "split" / "split.tsv")
    task_cfg = cfg["tasks"][0]
    pred = fit_task(table, cohort, split, task_cfg, cfg["modelling"], cfg["clinical"], seed=cfg["seed"], n_jobs=2,
                    out_dir=res / TASK)
    write_predictions(pred, res / TASK / "predictions.tsv")
    out = evaluate_task(res / TASK, TASK, table, cohort, cfg, seed=cfg["seed"], n_boot=N_BOOT, n_jobs=2)
    cohort_report(cohort, split, cfg, res / "report")
    gt = small_cohort.parent / "ground_truth.tsv"
    md, sources = write_summary(root, [TASK], res / "report" / "summary.md",
                                res / "report" / "summary_sources.tsv", out_html=res / "report" / "summary.html",
                                demo=True, ground_truth=gt)
    return {"root": root, "res": res, "cfg": cfg, "out": out, "md": md, "sources": sources, "table": table,
            "cohort": cohort, "gt": gt}


def test_evaluate_task_writes_every_figure_as_png_and_pdf_at_journal_width(workdir):
    from PIL import Image

    fig_dir = workdir["res"] / TASK / "figures"
    for stem in TASK_FIGURES:
        png, pdf = fig_dir / f"{stem}.png", fig_dir / f"{stem}.pdf"
        assert png.stat().st_size > 5000, stem
        assert pdf.read_bytes()[:5] == b"%PDF-", stem
        width_px = Image.open(png).size[0]
        assert min(abs(width_px - 89 / 25.4 * 300), abs(width_px - 183 / 25.4 * 300)) < 3, (stem, width_px)
    for name in TASK_TABLES:
        assert (workdir["res"] / TASK / "tables" / f"{name}.tsv").stat().st_size > 0, name


def test_table3_has_one_row_per_model_and_split_with_the_auc_of_the_predictions(workdir):
    res = workdir["res"]
    perf = pd.read_csv(res / TASK / "tables" / "table3_performance.tsv", sep="\t")
    pred = read_predictions(res / TASK / "predictions.tsv")
    expected = set(pred[["model", "split"]].drop_duplicates().itertuples(index=False, name=None))
    got = list(perf[["model", "split"]].itertuples(index=False, name=None))
    assert len(got) == len(set(got)) == len(expected)
    assert set(got) == expected
    assert {"cv", "train", "test"} <= set(perf["split"])
    for m, s in [("combined", "test"), ("radscore", "cv"), ("clinical", "train")]:
        d = pred[(pred.model == m) & (pred.split == s)]
        row = perf[(perf.model == m) & (perf.split == s)].iloc[0]
        assert row["auc"] == pytest.approx(metrics.auc(d["y"], d["probability"]), abs=1e-12)
        assert row["n"] == len(d)
        assert row["auc_boot_low"] <= row["auc"] <= row["auc_boot_high"]
    # thresholds are the bundles' (fixed on training data), not re-chosen on the evaluated split
    bundles = read_bundles(res / TASK / "models")
    for m, thr in bundle_thresholds(bundles).items():
        assert np.allclose(perf.loc[perf.model == m, "threshold"], thr)
    formatted = pd.read_csv(res / TASK / "tables" / "table3_performance_formatted.tsv", sep="\t")
    assert len(formatted) == len(perf)


def test_nomogram_in_raw_units_reproduces_the_bundle_probability(workdir):
    res = workdir["res"]
    pipe, _ = load_bundle(res / TASK / "models" / "nomogram")
    bundles = read_bundles(res / TASK / "models")
    pred = read_predictions(res / TASK / "predictions.tsv")
    rows = pred[(pred.model == "nomogram") & (pred.split.isin(["train", "test"]))]
    X = task_design(workdir["table"], workdir["cohort"], rows["image_id"], bundles,
                    workdir["cfg"]["clinical"]["predictors"])
    train = X.index.get_level_values("image_id").isin(rows.loc[rows.split == "train", "image_id"])
    nm = nomogram_model(pipe, X[train])
    assert nm.variables[0].name == "rad_score"
    pick = np.r_[np.flatnonzero(train)[:4], np.flatnonzero(~train)[:4]]
    ours = nm.probability(X.iloc[pick])
    theirs = pipe.predict_proba(X.iloc[pick])[:, 1]
    assert np.allclose(ours, theirs, atol=1e-6, rtol=0)
    written = rows.set_index("image_id").loc[X.index.get_level_values("image_id")[pick], "probability"].to_numpy()
    assert np.allclose(ours, written, atol=1e-6, rtol=0)
    # the drawn scales are the model's: the rad-score axis spans the training range
    scales = pd.read_csv(res / TASK / "tables" / "nomogram_points.tsv", sep="\t")
    assert {"Points", "rad_score", "Total points", "Probability"} <= set(scales["axis"])


def _preds(y, scores: dict, split="test"):
    rows = []
    for m, p in scores.items():
        rows.append(pd.DataFrame({"patient_id": [f"P{i}" for i in range(len(y))],
                                  "image_id": [f"P{i}" for i in range(len(y))], "task": TASK, "split": split,
                                  "model": m, "y": y, "probability": p}))
    return pd.concat(rows, ignore_index=True)


def test_delong_table_gives_p_one_for_a_model_against_itself_and_matches_metrics():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(60, int), np.ones(40, int)]
    good = 1 / (1 + np.exp(-(2.5 * y + rng.normal(size=100))))
    weak = rng.random(100)
    pred = _preds(y, {"combined": good, "clinical": weak})
    tab = delong_table(pred, [("combined", "combined"), ("combined", "clinical")])
    self_row = tab[(tab.model_1 == "combined") & (tab.model_2 == "combined")].iloc[0]
    assert self_row["p_value"] == 1.0 and self_row["diff"] == 0.0
    other = tab[tab.model_2 == "clinical"].iloc[0]
    ref = metrics.delong_test(y, good, weak)
    assert other["p_value"] == pytest.approx(ref["p_value"], rel=1e-12)
    assert other["p_value"] < 1e-4 and other["auc_1"] > 0.85


def test_delong_table_refuses_models_scored_on_different_images():
    y = np.r_[np.zeros(10, int), np.ones(10, int)]
    pred = _preds(y, {"combined": np.linspace(0, 1, 20), "clinical": np.linspace(1, 0, 20)})
    pred = pred[~((pred.model == "clinical") & (pred.image_id == "P3"))]
    with pytest.raises(UsradError, match="Cannot compare"):
        delong_table(pred, [("combined", "clinical")])


def test_delong_table_of_the_task_compares_combined_and_best_classifier(workdir):
    tab = pd.read_csv(workdir["res"] / TASK / "tables" / "delong.tsv", sep="\t")
    pairs = set(zip(tab.model_1, tab.model_2))
    assert {("combined", "clinical"), ("combined", "radscore")} <= pairs
    best = workdir["out"]["best"]
    assert {(best, m) for m in FAST["classifiers"] if m != best} <= pairs


def _unsourced(md: str, sources: pd.DataFrame) -> set[str]:
    allowed = {n for t in sources["text"] for n in numbers_in(str(t))}
    return set(numbers_in(md)) - allowed


def test_every_number_in_the_summary_is_read_from_a_results_file(workdir):
    root, md = workdir["root"], (workdir["res"] / "report" / "summary.md").read_text()
    sources = pd.read_csv(workdir["res"] / "report" / "summary_sources.tsv", sep="\t", dtype=str,
                          keep_default_na=False)
    assert len(sources) > 40
    assert _unsourced(md, sources) == set()
    # the check can fail: a typed number is caught
    assert _unsourced(md + "\nAUC 0.987 on new data.\n", sources) == {"0.987"}
    for r in sources.itertuples():
        assert (root / r.file).exists() and r.file.startswith("results/"), r.file
        assert fmt_value(resolve_source(root, r.file, r.locator), r.format) == r.text, r.key
        assert r.text in md, r.key
    # spot check against the file directly: the combined model's test AUC
    perf = pd.read_csv(root / f"results/{TASK}/tables/table3_performance.tsv", sep="\t")
    auc = perf[(perf.model == "combined") & (perf.split == "test")]["auc"].iloc[0]
    assert sources.set_index("key").loc[f"{TASK}_combined_test_auc", "text"] == f"{auc:.3f}"
    assert f"{auc:.3f}" in md
    assert "Simulated data" in md and "<table>" in (workdir["res"] / "report" / "summary.html").read_text()


def test_summary_oracle_auc_is_the_auc_of_the_ground_truth_on_the_test_images(workdir):
    if not workdir["gt"].exists():
        pytest.skip("simulated cohort has no ground_truth.tsv")
    gt = pd.read_csv(workdir["gt"], sep="\t", dtype={"patient_id": str})
    pred = read_predictions(workdir["res"] / TASK / "predictions.tsv")
    te = pred[pred.split == "test"].drop_duplicates("image_id").merge(gt, on="patient_id")
    oracle = pd.read_csv(workdir["res"] / "report" / "oracle_auc.tsv", sep="\t")
    assert oracle.loc[oracle.task == TASK, "auc"].iloc[0] == pytest.approx(
        metrics.auc(te["y"], te[f"oracle_p_{TASK}"]), abs=1e-12)
    assert oracle.loc[oracle.task == TASK, "auc"].iloc[0] > 0.75  # the simulation's known signal


def test_cohort_report_counts_the_split_and_table1_compares_train_and_test(workdir):
    res = workdir["res"]
    counts = pd.read_csv(res / "report" / "cohort_counts.tsv", sep="\t").set_index("split")
    split = pd.read_csv(res / "split" / "split.tsv", sep="\t", dtype=str)
    for s in ("train", "test"):
        assert counts.loc[s, "patients"] == split.loc[split.split == s, "patient_id"].nunique()
    assert counts.loc["all", "patients"] == counts.loc["train", "patients"] + counts.loc["test", "patients"]
    t1 = pd.read_csv(res / "report" / "table1.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert t1.columns[3] == f"train (n={counts.loc['train', 'patients']})"
    assert "Age (years)" in set(t1["variable"])
    assert (res / "report" / "figures" / "flow.png").exists()


def test_the_docx_md_and_tex_of_the_task_tables_hold_the_tsv_numbers(workdir):
    """Table 3's .docx (opened with python-docx) has the numbers of table3_performance.tsv; every formatted row
    of Tables 2, 3 and DeLong is in the Markdown, LaTeX and HTML copies; Table 1's too."""
    import docx

    tab = workdir["res"] / TASK / "tables"
    perf = pd.read_csv(tab / "table3_performance.tsv", sep="\t")
    doc = docx.Document(str(tab / "table3_performance.docx"))
    rows = [[c.text for c in r.cells] for r in doc.tables[0].rows]
    head, body = rows[0], rows[1:]
    assert len(body) == len(perf)
    for cells, (_, p) in zip(body, perf.iterrows()):
        auc = re.fullmatch(r"(\d\.\d{3}) \((\d\.\d{3})–(\d\.\d{3})\)", cells[head.index("AUC (95% CI)")])
        assert [float(x) for x in auc.groups()] == pytest.approx(
            [p["auc"], p["auc_boot_low"], p["auc_boot_high"]], abs=5e-4)
        sens = cells[head.index("Sensitivity (95% CI)")]
        assert float(sens.split()[0]) == pytest.approx(p["sensitivity"], abs=5e-4)
        assert float(cells[head.index("Brier")]) == pytest.approx(p["brier"], abs=5e-4)
        assert cells[head.index("Model")] == model_label(p["model"])
    for stem, source in TASK_EXPORTS.items():
        formatted = pd.read_csv(tab / f"{source}.tsv", sep="\t", dtype=str, keep_default_na=False)
        md, tex = (tab / f"{stem}.md").read_text(), (tab / f"{stem}.tex").read_text()
        assert md.count("\n| ") == len(formatted) + 1 and tex.count(r" \\") == len(formatted) + 1, stem
        last = formatted.columns[-1]
        assert all(v in md for v in formatted[last]), stem
        assert (tab / f"{stem}.html").read_text().count("<tr>") == len(formatted) + 1
    t1 = pd.read_csv(workdir["res"] / "report" / "table1.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert (workdir["res"] / "report" / "table1.md").read_text().count("\n| ") == len(t1) + 1
    assert "n_patients" in perf and perf["n_patients"].dtype.kind == "i"


def test_lasso_tables_convert_log_loss_to_deviance_and_flag_the_chosen_penalty():
    lp = pd.DataFrame({"C": [0.1, 0.1, 1.0, 1.0], "feature": ["a", "b", "a", "b"], "coef": [0.0, 0.2, 0.5, -0.3],
                       "cv_mean_score": [-0.6, -0.6, -0.5, -0.5], "cv_se": [0.01, 0.01, 0.02, 0.02],
                       "chosen": [False, False, True, True]})
    cv, path, sel = lasso_tables(lp)
    assert cv["mean_deviance"].tolist() == pytest.approx([1.2, 1.0])
    assert cv["sd"].tolist() == pytest.approx([0.02, 0.04])
    assert cv["n_features"].tolist() == [1, 2] and sel == 1.0
    assert list(path.columns) == ["C", "feature", "coefficient"]
    assert cv["best"].tolist() == [False, True]  # λ.min: the best mean CV score (here also the chosen one)
    # glmnet's axis when the table has it: log λ = ln(1 / (n C)); λ.min and the chosen λ.1se can differ
    lp = lp.assign(log_lambda=-np.log(lp["C"] * 100), chosen=[True, True, False, False])
    cv, path, sel = lasso_tables(lp)
    assert list(path.columns) == ["log_lambda", "feature", "coefficient"]
    assert sel == pytest.approx(-np.log(0.1 * 100))
    assert cv.loc[cv["best"], "log_lambda"].item() == pytest.approx(-np.log(100))


def test_feature_names_are_readable_in_legends():
    assert short_feature("log-sigma-3-0-mm-3D_firstorder_Range") == "LoG σ=3.0 mm firstorder Range"
    assert short_feature("wavelet-LH_glcm_Contrast") == "wavelet-LH glcm Contrast"
    long = "original_gldm_SmallDependenceLowGrayLevelEmphasis"
    assert short_feature(long) == long.replace("_", " ")  # not truncated any more (49 characters)


@pytest.fixture(scope="module")
def graphviz():
    """Graphviz's dot, installed by ci/setup-graphviz.sh (as `make install` does) when missing."""
    subprocess.run(["bash", str(Path(__file__).resolve().parents[1] / "ci" / "setup-graphviz.sh")], check=False)
    if shutil.which("dot") is None:
        pytest.fail("Graphviz (dot) is not installed and ci/setup-graphviz.sh could not install it")


def test_rulegraph_figure_puts_each_rule_below_its_inputs(tmp_path, monkeypatch, graphviz):
    dot = """digraph snakemake_dag {
        0[label = "paper", color = "0.1 0.6 0.85", style="rounded"];
        1[label = "evaluate_task", color = "0.2 0.6 0.85", style="rounded"];
        2[label = "fit_task", color = "0.3 0.6 0.85", style="rounded"];
        3[label = "split", color = "0.4 0.6 0.85", style="rounded"];
        1 -> 0
        2 -> 1
        3 -> 2
        3 -> 0
    }"""
    drawn = rulegraph_figure(dot, tmp_path / "wf")
    layers = drawn.set_index("rule")["layer"].to_dict()
    assert layers == {"split": 0, "fit_task": 1, "evaluate_task": 2, "paper": 3}
    assert (tmp_path / "wf.png").exists() and (tmp_path / "wf.pdf").exists()
    assert set(drawn["layout"]) == {"graphviz"}  # installed by `make install` (ci/setup-graphviz.sh)
    with monkeypatch.context() as m:  # without Graphviz: the layered layout, same layers
        m.setattr(workflow.shutil, "which", lambda name: None)
        drawn = rulegraph_figure(dot, tmp_path / "wf2")
    assert set(drawn["layout"]) == {"layered"} and drawn.set_index("rule")["layer"].to_dict() == layers


def test_graphviz_routes_no_edge_through_another_rule_box(graphviz):
    """The real rule graph of the workflow: every edge, sampled along its Bézier curve, stays out of every box
    but its own two rules' (the hand-made layered layout drew edges through boxes)."""
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--rulegraph", "dot", "paper"], cwd=repo,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dot = canonical_rulegraph(proc.stdout)
    lay = workflow.graphviz_layout(dot)
    assert lay is not None and len(lay.boxes) >= 10 and len(lay.edges) >= 15
    t = np.linspace(0, 1, 25)[:, None]
    crossings = []
    for tail, head, pts in lay.edges:
        p = np.asarray(pts)
        for i in range(0, len(p) - 1, 3):
            a, b, c, d = p[i:i + 4]
            curve = (1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * b + 3 * (1 - t) * t ** 2 * c + t ** 3 * d
            for n, (x, y, w, h) in lay.boxes.items():
                inside = (np.abs(curve[:, 0] - x) < w / 2 - 0.01) & (np.abs(curve[:, 1] - y) < h / 2 - 0.01)
                if n not in (tail, head) and inside.any():
                    crossings.append((tail, head, n))
    assert crossings == []


def test_performance_in_parallel_equals_serial():
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(40, int), np.ones(30, int)]
    pred = _preds(y, {m: rng.random(70) * 0.5 + 0.5 * y * rng.random(70) for m in ("clinical", "radscore", "lr")})
    thr = {"clinical": 0.4, "radscore": 0.5, "lr": 0.3}
    a = task_performance(pred, thr, 100, 5, 1)
    b = task_performance(pred, thr, 100, 5, 2)
    pd.testing.assert_frame_equal(a.sort_values(["model", "split"]).reset_index(drop=True),
                                  b.sort_values(["model", "split"]).reset_index(drop=True))


def test_best_classifier_is_the_highest_cv_auc_among_classifiers():
    bundles = {"radscore": {"cv_auc": 0.99}, "lr": {"cv_auc": 0.8}, "rf": {"cv_auc": 0.85}, "nb": {"cv_auc": 0.85}}
    assert best_classifier(bundles) == "rf"  # radscore is not a classifier; ties: CLASSIFIERS order
    assert list(itertools.islice(default_comparisons(["combined", "clinical", "radscore", "rf", "lr"], "rf"), 2)) \
        == [("combined", "clinical"), ("combined", "radscore")]


def test_best_classifier_is_the_one_the_fit_chose_when_it_chose_a_classifier():
    """fit_task's choice (1-SE rule on nested CV AUCs) wins over the highest mean; radscore chosen: highest."""
    chose = lambda m: {"radscore": {"cv_auc": 0.8, "radiomics_best_model": m}, "lr": {"cv_auc": 0.81,
                       "radiomics_best_model": m}, "rf": {"cv_auc": 0.83, "radiomics_best_model": m}}  # noqa: E731
    assert best_classifier(chose("lr")) == "lr"
    assert best_classifier(chose("radscore")) == "rf"


def _twin_preds(n_patients: int = 120, seed: int = 3, split: str = "test") -> tuple[pd.DataFrame, np.ndarray]:
    """Two near-identical images per patient (the second view = the first plus noise of SD 0.01 on the logit)."""
    rng = np.random.default_rng(seed)
    y_pat = (rng.random(n_patients) < 0.4).astype(int)
    rows = []
    lat = {m: d * y_pat + rng.normal(size=n_patients) for m, d in (("combined", 1.6), ("clinical", 0.9),
                                                                  ("nomogram", 1.4), ("radscore", 1.1))}
    for view in (0, 1):
        for m, s in lat.items():
            p = 1 / (1 + np.exp(-(s - 0.6 + rng.normal(scale=0.01, size=n_patients))))
            rows.append(pd.DataFrame({"patient_id": [f"P{i:03d}" for i in range(n_patients)],
                                      "image_id": [f"P{i:03d}_{view}" for i in range(n_patients)], "task": TASK,
                                      "split": split, "model": m, "y": y_pat, "probability": p}))
    return pd.concat(rows, ignore_index=True), y_pat


def test_delong_table_ci_is_the_patient_level_one_with_two_near_identical_images_per_patient():
    pred, _ = _twin_preds()
    tab = delong_table(pred, [("combined", "clinical"), ("nomogram", "clinical")])
    assert list(tab.columns) == list(DELONG_COLUMNS)
    for _, row in tab.iterrows():
        wide = pred.pivot_table(index=["patient_id", "image_id", "y"], columns="model", values="probability")
        y = wide.index.get_level_values("y").to_numpy()
        g = wide.index.get_level_values("patient_id").to_numpy()
        ref = metrics.delong_test(y, wide[row["model_1"]], wide[row["model_2"]], groups=g)
        naive = metrics.delong_test(y, wide[row["model_1"]], wide[row["model_2"]])
        assert (row["diff"], row["diff_low"], row["diff_high"], row["p_value"]) == pytest.approx(
            (ref["diff"], ref["diff_low"], ref["diff_high"], ref["p_value"]), abs=1e-12)
        # the image-level CI would be too narrow: each patient's two views are one patient's information
        assert row["diff_high"] - row["diff_low"] > 1.3 * (naive["diff_high"] - naive["diff_low"])
        assert row["p_value"] != pytest.approx(naive["p_value"], rel=1e-3)
        assert (row["n"], row["n_patients"]) == (240, 120) and row["method"].startswith("clustered DeLong")


def test_delong_formatted_table_puts_the_difference_and_its_ci_next_to_p():
    pred, _ = _twin_preds()
    tab = delong_table(pred, [("combined", "clinical")])
    text = format_delong(tab)
    r, t = tab.iloc[0], text.iloc[0]
    assert list(text.columns)[-3:] == ["AUC difference (95% CI)", "P", "Method"]
    assert t["Comparison"] == "Combined vs Clinical" and t["Patients (images)"] == "120 (240)"
    assert t["AUC difference (95% CI)"] == (f"{r['diff']:.3f} ({r['diff_low']:.3f} to {r['diff_high']:.3f})"
                                            .replace("-", "−"))
    assert t["P"] == fmt_p(r["p_value"])


def test_default_comparisons_are_those_whose_models_exist_radiomics_only_has_classifiers_only():
    full = default_comparisons(["clinical", "radscore", "nomogram", "combined", "lr", "nb"], "lr")
    assert full[:5] == [("combined", "clinical"), ("combined", "radscore"), ("nomogram", "clinical"),
                        ("combined", "nomogram"), ("nomogram", "radscore")]
    assert default_comparisons(["radscore", "lr", "nb"], "nb") == [("nb", "lr")]
    pred, _ = _twin_preds()
    only = pred[pred["model"] == "radscore"]
    only = pd.concat([only, only.assign(model="lr"), only.assign(model="nb", probability=1 - only["probability"])])
    tab = delong_table(only, default_comparisons(["radscore", "lr", "nb"], "nb"))
    assert list(zip(tab.model_1, tab.model_2)) == [("nb", "lr")] and tab["diff"].iloc[0] < 0


def _no_statistics(*args, **kwargs):
    raise AssertionError("the calibration figure computed a statistic")


def test_calibration_tables_of_the_task_equal_table3_and_the_figure_is_drawn_from_them(workdir, monkeypatch, tmp_path):
    from usrad.tables import read_table

    tabs = workdir["res"] / TASK / "tables"
    cal = read_table(tabs / "calibration.tsv", text=("model", "split", "task"), float_precision="round_trip")
    curve = read_table(tabs / "calibration_curve.tsv", text=("model", "split", "task"), float_precision="round_trip")
    perf = read_table(tabs / "table3_performance.tsv", text=("model", "split", "task"))
    both = cal.merge(perf, on=["task", "model", "split"], suffixes=("", "_t3"))
    assert len(both) == len(perf) == len(cal)  # every model and split of Table 3
    for a, b in (("intercept", "cal_intercept"), ("slope_low", "cal_slope_low"), ("slope_high", "cal_slope_high"),
                 ("brier", "brier"), ("hl_p", "hl_p"), ("hl_df", "hl_df")):
        np.testing.assert_allclose(both[a], both[b], rtol=1e-9, atol=1e-12, err_msg=a)
    # patient-level numbers, recomputed from the predictions
    pred = read_predictions(workdir["res"] / TASK / "predictions.tsv")
    d = pred[(pred.model == "combined") & (pred.split == "test")].sort_values(["patient_id", "image_id"])
    ref = metrics.calibration_intercept_slope(d["y"], d["probability"], groups=d["patient_id"])
    row = cal[(cal.model == "combined") & (cal.split == "test")].iloc[0]
    assert (row["slope"], row["slope_low"], row["slope_high"]) == pytest.approx(
        (ref["slope"], ref["slope_low"], ref["slope_high"]), abs=1e-9)
    assert set(cal.loc[cal.split == "train", "validation"]) == {False} and cal.loc[cal.split != "train",
                                                                                    "validation"].all()
    # the task's figure is these tables: drawn again from the files with every metrics function failing
    for name in ("calibration_intercept_slope", "smoothed_calibration", "hosmer_lemeshow", "brier_score",
                 "reliability_curve", "wilson_ci", "design_effect"):
        monkeypatch.setattr(metrics, name, _no_statistics)
    data = calibration_figure(cal, curve, pred, tmp_path / "again", task=TASK,
                              models=[m for m in MAIN_MODELS if m in set(cal.model)],
                              splits=["train", "test"])
    assert (tmp_path / "again.png").read_bytes() == (workdir["res"] / TASK / "figures" / "calibration.png").read_bytes()
    assert set(data["model"]) == set(MAIN_MODELS)


def test_the_task_figures_are_their_tables_drawn_again_with_every_metric_failing(workdir, monkeypatch, tmp_path):
    """ROC, forest, decision curve, confusion and rad-score figures of the task, redrawn from the tables as
    written with every usrad.metrics function failing, are byte-identical; the legends are Table 3's numbers."""
    from usrad.reporting.decision import confusion_figure, decision_curve_figure
    from usrad.reporting.discrimination import forest_figure, roc_figure
    from usrad.reporting.signature import radscore_figure
    from usrad.tables import read_table

    tabs, figs = workdir["res"] / TASK / "tables", workdir["res"] / TASK / "figures"

    def table(name):
        return read_table(tabs / f"{name}.tsv", text=("model", "split", "task"), float_precision="round_trip")

    pred = read_predictions(workdir["res"] / TASK / "predictions.tsv")
    perf = table("table3_performance")
    for name in metrics.__all__:
        if callable(getattr(metrics, name)):
            monkeypatch.setattr(metrics, name, _no_statistics)
    main, splits = [m for m in MAIN_MODELS if m in set(perf.model)], ["train", "test"]
    roc = roc_figure(perf, table("roc_curve"), table("roc_band"), tmp_path / "roc", task=TASK, models=main,
                     splits=splits)
    forest_figure(perf, tmp_path / "forest", task=TASK, splits=splits)
    decision_curve_figure(table("decision_curve"), tmp_path / "decision_curve", task=TASK, models=main, splits=splits)
    confusion_figure(perf, tmp_path / "confusion", task=TASK, models=main, splits=splits)
    radscore_figure(pred, table("radscore_by_class"), tmp_path / "radscore", task=TASK, splits=splits,
                    seed=workdir["cfg"]["seed"])
    for stem in ("roc", "forest", "decision_curve", "confusion", "radscore"):
        assert (tmp_path / f"{stem}.png").read_bytes() == (figs / f"{stem}.png").read_bytes(), stem
    row = perf[(perf.model == "combined") & (perf.split == "test")].iloc[0]
    label = roc.set_index(["model", "split"]).loc[("combined", "test"), "label"]
    assert f"{row['auc']:.3f} ({row['auc_boot_low']:.3f}–{row['auc_boot_high']:.3f})" in label


def test_summary_reports_the_patient_level_difference_ci_and_calibration_cis(workdir):
    md = (workdir["res"] / "report" / "summary.md").read_text()
    sources = workdir["sources"].set_index("key")
    key = f"{TASK}_delong_combined_clinical"
    assert sources.loc[f"{key}_diff_low", "file"] == f"results/{TASK}/tables/delong.tsv"
    assert (f"AUC difference {sources.loc[f'{key}_diff', 'text']} (95% CI {sources.loc[f'{key}_diff_low', 'text']} "
            f"to {sources.loc[f'{key}_diff_high', 'text']})") in md
    assert sources.loc[f"{TASK}_cal_slope_low", "file"] == f"results/{TASK}/tables/calibration.tsv"
    assert "Wilson intervals widened by the design effect" in md and "clustered (Obuchowski) variance" in md


def test_summary_lines_of_the_internal_validation_come_from_its_table(tmp_path):
    """Harrell's bootstrap table (modelling.internal_validation: bootstrap) → a summary table whose every number
    is a recorded source; no table → no lines."""
    from usrad.validation import COLUMNS, write_validation

    rows = [dict(task="metastasis", model=m, metric=k, apparent=a, training=a, test=a - o, optimism=o,
                 corrected=a - o, n_resamples=10, n_failed=0, n_patients=100, n_images=120)
            for m, base in (("radscore", 0.8), ("nomogram", 0.9))
            for k, a, o in (("auc", base, 0.0312), ("calibration_slope", 1.0, 0.1875), ("calibration_intercept", 0, 0),
                            ("brier", 0.2, -0.01))]
    (tmp_path / "results" / "metastasis" / "tables").mkdir(parents=True)
    src = Sources(tmp_path)
    assert summary._internal_validation_lines(tmp_path, src, "results", "metastasis") == []
    write_validation(pd.DataFrame(rows, columns=COLUMNS), tmp_path / "results/metastasis/tables/internal_validation.tsv",
                     tmp_path / "results/metastasis/tables/internal_validation.md")
    text = "\n".join(summary._internal_validation_lines(tmp_path, src, "results", "metastasis"))
    assert "10 resamples" in text
    assert "| 0.900 | 0.031 | 0.869 | 1.000 | 0.812 |" in text  # nomogram: AUC apparent/optimism/corrected, slope
    recorded = set(src.table()["text"])
    assert set(numbers_in(text)) <= recorded


def test_summary_words_each_task_from_its_config_and_has_no_clinical_comparison_without_clinical_model(
        workdir, tmp_path):
    root, gt = workdir["root"], workdir["gt"]
    other = {"name": TASK, "label": "n_positive_nodes >= 1", "outcome": "malignancy of a thyroid nodule (malignant "
             "vs benign)"}
    md, _ = write_summary(root, [TASK], tmp_path / "summary.md", tmp_path / "sources.tsv", demo=True,
                          ground_truth=gt, task_configs=[other])
    assert f"### Task `{TASK}`: malignancy of a thyroid nodule (malignant vs benign)" in md
    hit = re.search(r"ALN|breast|axillary|lymph|women", md, re.IGNORECASE)
    assert hit is None, hit
    demo_task = next(t for t in workdir["cfg"]["tasks"] if t["name"] == TASK)
    md, _ = write_summary(root, [TASK], tmp_path / "summary.md", tmp_path / "sources.tsv", demo=True,
                          ground_truth=gt, task_configs=[demo_task])
    assert f"### Task `{TASK}`: axillary lymph node metastasis (N+ vs N0)" in md  # the demo config's wording
    assert "combined vs clinical (test set)" in md  # the DeLong table has the pair: with a clinical model it is shown
    md, _ = write_summary(root, [TASK], tmp_path / "summary.md", tmp_path / "sources.tsv", demo=True,
                          ground_truth=gt, radiomics_only=True, task_configs=[demo_task])
    assert "vs clinical" not in md and "combined vs" not in md


def test_summary_shows_the_study_texts_that_are_set_escaped_in_html(workdir, tmp_path):
    root, gt = workdir["root"], workdir["gt"]
    study = {"eligibility": "Women with T1-2 invasive\n  breast cancer, 2019-2022", "ethics": "IRB <b>2024-17</b>",
             "funding": "", "fully_automated_segmentation": False}
    md, _ = write_summary(root, [TASK], tmp_path / "summary.md", tmp_path / "sources.tsv", demo=True,
                          ground_truth=gt, out_html=tmp_path / "summary.html", study=study)
    section = md.split("## Study\n", 1)[1].split("## Methods", 1)[0]
    assert "**Eligibility.** Women with T1-2 invasive breast cancer, 2019-2022" in section  # one line
    assert section.index("Eligibility") < section.index("Ethics") and "Funding" not in section
    html_text = (tmp_path / "summary.html").read_text()
    assert "IRB &lt;b&gt;2024-17&lt;/b&gt;" in html_text and "<b>2024-17" not in html_text
    md, _ = write_summary(root, [TASK], tmp_path / "summary.md", tmp_path / "sources.tsv", demo=True,
                          ground_truth=gt, study={})
    assert "## Study" not in md
