"""The files of a fitted task: ``models/cv_results.tsv`` and ``models/model_choice.tsv``, the selection tables and
rad-score formula, Table 2 and one bundle per model (its bundle.json metadata: versions, reproducibility,
nomogram input ranges). Gets fitted models and tables, fits nothing (:mod:`usrad.models.fitting` does)."""
from __future__ import annotations

import importlib.metadata as md
import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import write_text
from ..bundle import save_bundle
from ..features import feature_region
from ..selection import signature_steps
from .choice import fold_loglik, mean_score, standard_error
from .fitting import NestedCV, TaskPlan, json_number
from .predictions import write_table


def cv_table(plan: TaskPlan, cv: NestedCV, models: dict) -> pd.DataFrame:
    """``models/cv_results.tsv``: every grid point's outer-fold AUCs and mean log loss (the tuning CV), how many
    outer folds' inner CV chose it, whether the final model uses it, and the final model's nested CV AUC."""
    rows = []

    def row(fs, m, params, aucs, ll, chosen, n_chosen, nested):
        return dict(feature_set=fs, classifier=m, params=json.dumps(params, sort_keys=True),
                    **{f"auc_fold{k + 1}": a for k, a in enumerate(aucs)}, mean_auc=mean_score(aucs),
                    sd_auc=float(np.nanstd(aucs, ddof=1)) if np.isfinite(aucs).sum() > 1 else float("nan"),
                    se_auc=standard_error(aucs), mean_log_loss=-mean_score(ll), n_outer_folds_chosen=n_chosen,
                    chosen=chosen, nested_mean_auc=nested)

    for (fs, m), tuned in cv.tuned.items():
        final_type = fs == "radiomics" or m == cv.comb.final["chosen"]
        picks = [(m, i) for i in tuned.fold_i] if fs == "radiomics" else cv.comb.picks
        for i, params in enumerate(tuned.grid):
            chosen = final_type and i == tuned.i_final
            nested = models[m if fs == "radiomics" else "combined"]["cv_auc"] if chosen else float("nan")
            rows.append(row(fs, m, params, tuned.tune_aucs[i], tuned.tune_ll[i], chosen, sum(p == (m, i) for p in picks),
                            nested))
    outer = cv.signatures.outer
    for name, fs in (("radscore", "radiomics"), ("clinical", "clinical"), ("nomogram", "nomogram")):
        if name in models:
            rows.append(row(fs, name, {}, models[name]["fold_aucs"],
                            fold_loglik(plan.design.ytr, models[name]["oof"], outer), True, len(outer),
                            models[name]["cv_auc"]))
    table = pd.DataFrame(rows)
    table.insert(0, "task", plan.design.task)
    return table


def choice_table(plan: TaskPlan, cv: NestedCV, radiomics_best: dict) -> pd.DataFrame:
    """``models/model_choice.tsv``: every model choice, its candidates' mean and SE of the AUC, which were
    within one SE of the best, what was chosen and why — on all training rows and inside every outer fold."""
    frames = []

    def add(choice, decision, scope, basis):
        tab = choice["table"].assign(decision=decision, scope=scope, rule=choice["rule"], basis=basis)
        tab["reason"] = np.where(tab["chosen"], choice["reason"], "")
        frames.append(tab)

    add(radiomics_best, "radiomics_best_model", "all training rows", "nested CV AUC of each model")
    if plan.clinical_on:
        add(cv.comb.final, "combined classifier", "all training rows", "CV AUC of each type's best grid point")
        for f, choice in enumerate(cv.comb.per_fold):
            add(choice, "combined classifier", f"outer fold {f + 1}", "inner CV AUC (outer fold left out)")
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "task", plan.design.task)
    return out[["task", "decision", "scope", "candidate", "mean_auc", "se_auc", "within_one_se", "chosen", "rule",
                "basis", "reason"]]


def _write_selection(plan: TaskPlan, cv: NestedCV, out: Path) -> None:
    """``selection/``: ICC table, selected features, rad-score formula, LASSO path, features left per step."""
    steps = signature_steps(cv.signatures.final)
    lasso_step, icc, uni_step, task = steps["lasso"], steps["icc"], steps["univariate"], plan.design.task
    icc_tab = icc.icc_table()
    icc_tab.insert(0, "task", task)
    write_table(icc_tab, out / "selection" / "icc.tsv")
    upos = {n: i for i, n in enumerate(uni_step.feature_names_in_)}
    names = lasso_step.get_feature_names_out()
    selected = pd.DataFrame({"task": task, "feature": names, "region": [feature_region(f) for f in names],
                             "coef": lasso_step.coef_})
    selected["icc"] = selected["feature"].map(dict(zip(icc_tab["feature"], icc_tab["icc"])))
    selected["mann_whitney_p"] = [float(uni_step.pvalues_[upos[f]]) for f in selected["feature"]]
    selected["univariate_auc"] = [float(uni_step.auc_[upos[f]]) for f in selected["feature"]]
    write_table(selected, out / "selection" / "selected_features.tsv")
    lasso = plan.cfg["lasso"]
    write_text(
        out / "selection" / "radscore_formula.txt",
        lasso_step.formula() + "\n# z(f) = (f - training mean) / training SD; means/SDs in the radscore bundle "
        f"(step 'scale').\n# intercept {lasso_step.intercept_!r}, C = {lasso_step.C_!r} "
        f"({'1-SE rule' if lasso['one_se_rule'] else 'best CV'}; {lasso['scoring']}).\n")
    lp = lasso_step.path_table()
    lp.insert(0, "task", task)
    write_table(lp, out / "selection" / "lasso_path.tsv")
    counts = [("input (reference reader)", len(icc.base_features_))]
    for nm in ("icc", "nzv", "univariate", "redundancy", "mrmr", "lasso"):
        st = steps.get(nm, "passthrough")
        if st != "passthrough":
            counts.append((nm, len(st.get_feature_names_out())))
    write_table(pd.DataFrame(counts, columns=["step", "n_features_after"]).assign(task=task)[
        ["task", "step", "n_features_after"]], out / "selection" / "steps.tsv")


def common_meta(plan: TaskPlan, cv: NestedCV, feature_meta, sel_vars, indep, radiomics_best: dict) -> dict:
    """The bundle.json keys every model of the task shares."""
    design, rep, lasso_step = plan.design, plan.design.rep, cv.signatures.final.named_steps["lasso"]
    return dict(
        task=design.task, seed=int(plan.seed), n_train_images=int(design.tr.sum()),
        n_train_patients=len(set(design.Xtr.index.get_level_values("patient_id"))),
        reproducibility=dict(copy_reader=design.copy_reader, icc_form=rep["icc_form"],
                             icc_threshold=rep["icc_threshold"] if design.copy_reader else None,
                             source=("second reader" if design.copy_reader == "r2" else
                                     "perturbed mask" if design.copy_reader else "none")),
        selected_features=list(map(str, lasso_step.get_feature_names_out())),
        radscore_formula=lasso_step.formula(), versions=package_versions(),
        pyradiomics=(feature_meta or {}).get("params") or (feature_meta or {}).get("params_text"),
        pyradiomics_params_sha256=(feature_meta or {}).get("params_sha256"),
        clinical_selected=sel_vars, clinical_independent=indep, radiomics_best_model=radiomics_best["chosen"],
        radiomics_best_reason=f"{radiomics_best['reason']} (rule {radiomics_best['rule']}, nested CV AUCs)",
        class_weight=plan.cw, probabilities=("balanced class weights, recalibrated to the training prevalence (grouped "
                                          "Platt scaling)"
                                          if plan.cw == "balanced" else "unweighted: at the training prevalence"),
        threshold_basis="out-of-fold CV predictions on training rows" if plan.cfg["threshold_from"] == "cv"
        else "apparent predictions on training rows")


def nomogram_inputs(pipeline, X_train: pd.DataFrame) -> dict:
    """``{input column: {min, max, binary}}`` of a nomogram pipeline's logistic inputs on the training rows."""
    Z = pipeline.named_steps["features"].transform(X_train)
    out = {}
    for c in Z.columns:
        v = Z[c].to_numpy(float)
        v = v[np.isfinite(v)]
        out[str(c)] = {"min": float(v.min()), "max": float(v.max()), "binary": bool(set(np.unique(v)) <= {0.0, 1.0})}
    return out


def package_versions() -> dict:
    """The installed versions of usrad and the packages its results depend on (None: not installed)."""
    out = {}
    for pkg in ("usrad", "scikit-learn", "xgboost-cpu", "numpy", "pandas", "scipy", "statsmodels", "skops",
                "pyradiomics-bhklab", "simpleitk"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def write_task_files(out_dir, plan: TaskPlan, cv: NestedCV, models: dict, thresholds: dict, radiomics_best: dict,
                     table2: tuple, feature_meta) -> None:
    """Stage 8: selection tables, Table 2 (``table2``: :func:`usrad.models.clinical_tables`), cv_results,
    model_choice and one bundle per model under ``out_dir``."""
    out, design = Path(out_dir), plan.design
    _write_selection(plan, cv, out)
    uni, multi, sel_vars, indep = table2
    if plan.clinical_on:  # Table 2's univariable and multivariable odds ratios
        write_table(uni.assign(task=design.task), out / "tables" / "univariable.tsv")
        write_table(multi.assign(task=design.task), out / "tables" / "multivariable.tsv")
    write_table(cv_table(plan, cv, models), out / "models" / "cv_results.tsv")
    write_table(choice_table(plan, cv, radiomics_best), out / "models" / "model_choice.tsv")
    common = common_meta(plan, cv, feature_meta, sel_vars, indep, radiomics_best)
    for name, m in models.items():
        extra = {k: (json_number(v) if isinstance(v, float) else v) for k, v in m["meta"].items()}
        meta = dict(common, model=name, kind=m["kind"], classifier=m["classifier"], hyperparameters=m["params"],
                    cv_auc=json_number(m["cv_auc"]), threshold=thresholds[name],
                    input_columns=list(map(str, design.X.columns)), **extra)
        if name == "nomogram":  # training ranges of its inputs: the nomogram scales (usrad.nomogram, usrad.predict)
            meta["nomogram_inputs"] = nomogram_inputs(m["pipeline"], design.Xtr)
        save_bundle(m["pipeline"], out / "models" / name, meta)
