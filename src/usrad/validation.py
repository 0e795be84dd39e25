"""Internal validation by Harrell's optimism-corrected bootstrap (``modelling.internal_validation: bootstrap``).

What R's ``rms::validate`` does for one model, done for the whole usrad pipeline of one task, with
:func:`usrad.models.fit_task` as the black box that refits EVERYTHING learned (ICC/NZV/Mann–Whitney/redundancy
filters, LASSO and its penalty, clinical variable selection, hyperparameter tuning, the cross-fitted second
stage) on its ``train`` rows and predicts its ``test`` rows:

1. ``apparent``: the pipeline fitted on all development rows (the task's ``split == "train"`` rows), scored on
   them (fit_task's split ``train``).
2. For resample b = 1..B: development units (patients, or ``split_group``s of patients sharing an image) are
   drawn with replacement, stratified by the unit's label, seeded ``seed + b``. Copy k of a unit's rows is
   renamed ``{patient_id}#k`` / ``{image_id}#k`` (k ≥ 1) and marked ``train``; the original development rows
   are renamed ``…#0`` and marked ``test``. All copies of one unit form one ``split_group``, so every CV inside
   fit_task (LASSO, tuning, cross-fitting) keeps duplicates of a patient in one fold — otherwise a patient
   would be in its own validation fold and the tuning would favour overfitting.
   ``training_b`` = metric on the resample's own ``train`` predictions, ``test_b`` = on the original rows.
3. ``optimism = mean_b(training_b − test_b)``, ``corrected = apparent − optimism``.

Metrics (point estimates on image rows, as Table 3): AUC, calibration slope and intercept
(:func:`usrad.metrics.calibration_intercept_slope`; its patient grouping changes only the standard errors, not
the estimates) and the Brier score. A resample whose fit fails (e.g. a class too small for the CV folds) or whose
metric is not finite is skipped and counted in ``n_failed``; the mean is over the resamples used
(``n_resamples``). Each resample is one independent job (``fit_task`` with one core), so the table is the same for
any ``n_jobs``.

Cost: one resample is one ``fit_task`` of the chosen models (:data:`DEFAULT_MODELS`), dominated by the nested
CV's signature fits (1 + k + k² LASSO signatures). docs/modelling.md gives the measured times.
"""
from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from .atomic import write_text, write_tsv
from .errors import Problem, UsradError
from .metrics import auc, brier_score, calibration_intercept_slope
from .models import CLASSIFIERS, fit_task, model_names, modelling_settings
from .settings import VALIDATION_KEYS
from .split import task_labels

log = logging.getLogger(__name__)

#: Models refitted in every resample by default: the pre-specified ones (no tuned radiomics classifier grid).
#: The combined model is included; its classifier type is chosen inside every resample unless
#: ``combined_classifier`` fixes it (the workflow fixes it to the type chosen on the full data).
DEFAULT_MODELS = ("radscore", "clinical", "nomogram", "combined")
METRICS = ("auc", "calibration_slope", "calibration_intercept", "brier")
#: Keys of ``modelling`` that configure this validation, not the models (not passed to fit_task).
OWN_KEYS = VALIDATION_KEYS
COLUMNS = ["task", "model", "metric", "apparent", "training", "test", "optimism", "corrected", "n_resamples",
           "n_failed", "n_patients", "n_images"]


def _development(cohort_df: pd.DataFrame, split_df: pd.DataFrame, task_cfg: dict) -> pd.DataFrame:
    """The task's development rows (labelled, split ``train``): ``patient_id, image_id, unit, label``."""
    cohort = cohort_df.assign(patient_id=cohort_df["patient_id"].astype(str),
                              image_id=cohort_df["image_id"].astype(str))
    labels = task_labels(cohort, task_cfg)
    sp = split_df.assign(image_id=split_df["image_id"].astype(str)).set_index("image_id")
    rows = cohort.assign(label=labels.to_numpy())[labels.notna().to_numpy()]
    rows = rows[rows["image_id"].map(sp["split"]).eq("train").to_numpy()]
    unit = rows["image_id"].map(sp["split_group"]) if "split_group" in sp.columns else rows["patient_id"]
    dev = rows[["patient_id", "image_id"]].assign(unit=unit.astype(str).to_numpy(), label=rows["label"].astype(int))
    return dev.sort_values(["patient_id", "image_id"], kind="mergesort").reset_index(drop=True)


def draw_units(dev: pd.DataFrame, seed: int) -> np.ndarray:
    """One bootstrap draw of development units: each class (a unit's label = max over its rows) resampled with
    replacement to its own size; sorted, so the draw depends only on ``seed`` and the units."""
    unit_label = dev.groupby("unit", sort=True)["label"].max()
    rng = np.random.default_rng(seed)
    drawn = [rng.choice(unit_label.index[unit_label == k].to_numpy(), size=int((unit_label == k).sum()), replace=True)
             for k in (0, 1)]
    return np.sort(np.concatenate(drawn))


def _id_map(dev: pd.DataFrame, drawn: np.ndarray | None) -> pd.DataFrame:
    """``image_id → new image_id, patient_id, split, split_group``: copies ``#k`` (k ≥ 1) of every drawn unit as
    ``train`` (all copies of a unit one split group), and, with ``drawn=None`` or in addition, the original rows
    as ``#0`` (``test`` in a resample, ``train`` for the apparent fit)."""
    originals = dev.assign(k=0, split="test" if drawn is not None else "train")
    parts = [originals]
    if drawn is not None:
        draws = pd.DataFrame({"unit": drawn})
        draws["k"] = draws.groupby("unit").cumcount() + 1
        parts.insert(0, draws.merge(dev, on="unit", how="left").assign(split="train"))
    m = pd.concat(parts, ignore_index=True)
    suffix = "#" + m["k"].astype(str)
    return pd.DataFrame({"image_id": m["image_id"], "new_image_id": m["image_id"] + suffix,
                         "new_patient_id": m["patient_id"] + suffix, "split": m["split"].to_numpy(),
                         "split_group": np.where(m["split"].eq("train") & (m["k"] > 0), "b:", "o:") + m["unit"]})


def _renamed(table: pd.DataFrame, ids: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``table`` (feature or cohort table) once per entry of ``ids``, with the new ids."""
    t = table.assign(image_id=table["image_id"].astype(str)).drop(columns="patient_id")
    out = ids[["image_id", "new_image_id", "new_patient_id"]].merge(t, on="image_id", how="inner", sort=False)
    out = out.drop(columns="image_id").rename(columns={"new_image_id": "image_id", "new_patient_id": "patient_id"})
    return out[["patient_id", "image_id"] + [c for c in t.columns if c != "image_id"]]


def resample_inputs(features_df, cohort_df, dev: pd.DataFrame, drawn: np.ndarray | None):
    """Feature table, cohort table and split table of one resample (``drawn``) or of the apparent fit (None)."""
    ids = _id_map(dev, drawn)
    feats = _renamed(features_df, ids)
    feats = feats.sort_values(["patient_id", "image_id", "reader"], kind="mergesort").reset_index(drop=True)
    cohort = _renamed(cohort_df, ids).reset_index(drop=True)
    split = pd.DataFrame({"patient_id": ids["new_patient_id"], "image_id": ids["new_image_id"],
                          "split": ids["split"], "split_group": ids["split_group"]})
    return feats, cohort, split


def model_metrics(y, p) -> dict[str, float]:
    """AUC, calibration slope and intercept, Brier of probabilities ``p`` for outcomes ``y`` (NaN if undefined)."""
    y, p = np.asarray(y, int), np.asarray(p, float)
    if len(set(y)) < 2 or not np.isfinite(p).all():
        return dict.fromkeys(METRICS, float("nan"))
    cal = calibration_intercept_slope(y, p)
    return {"auc": auc(y, p), "calibration_slope": float(cal["slope"]),
            "calibration_intercept": float(cal["intercept"]), "brier": brier_score(y, p)}


def _scores(pred: pd.DataFrame, models, split: str) -> dict[str, dict[str, float]]:
    out = {}
    for m in models:
        g = pred[(pred["model"] == m) & (pred["split"] == split)]
        out[m] = model_metrics(g["y"], g["probability"]) if len(g) else dict.fromkeys(METRICS, float("nan"))
    return out


def _too_few_units(dev: pd.DataFrame, drawn: np.ndarray | None, k: int) -> str | None:
    """Why a resample cannot be cross-validated: fewer distinct units (patients / split groups: the CV groups)
    of a class than ``modelling.cv_folds``; None when it can."""
    if drawn is None:
        return None
    unit_label = dev.groupby("unit")["label"].max()
    distinct = unit_label.loc[np.unique(drawn)]
    for k_class, name in ((0, "negative"), (1, "positive")):
        n = int((distinct == k_class).sum())
        if n < k:
            return f"only {n} distinct {name} patients drawn; modelling.cv_folds = {k} needs at least {k}"
    return None


def _job(b, features_df, cohort_df, dev, task_cfg, mcfg, clinical_cfg, seed, models) -> dict:
    """Resample ``b`` (0 = the apparent fit on the original rows): its metrics or why it failed."""
    clock = time.perf_counter()
    drawn = None if b == 0 else draw_units(dev, seed + b)
    short = _too_few_units(dev, drawn, int(modelling_settings(mcfg)["cv_folds"]))
    if short:
        return dict(b=b, error=short, seconds=time.perf_counter() - clock)
    feats, cohort, split = resample_inputs(features_df, cohort_df, dev, drawn)
    try:
        pred = fit_task(feats, cohort, split, task_cfg, mcfg, clinical_cfg, seed=seed, n_jobs=1)
    except (UsradError, ValueError, ArithmeticError, np.linalg.LinAlgError) as err:
        return dict(b=b, error=f"{type(err).__name__}: {str(err).splitlines()[0][:200]}",
                    seconds=time.perf_counter() - clock)
    res = dict(b=b, error=None, train=_scores(pred, models, "train"), seconds=time.perf_counter() - clock)
    if b:
        res["test"] = _scores(pred, models, "test")
    return res


def resample_config(modelling_cfg: dict | None, models, combined_classifier: str | None = None) -> dict:
    """The ``modelling`` section fit_task gets in every resample: grids, CV and selection as configured; only the
    requested radiomics classifiers; the combined model's candidate types as configured (or ``combined_classifier``
    alone; the cheapest, ``lr``, when the combined model is not validated)."""
    mcfg = {k: copy.deepcopy(v) for k, v in (modelling_cfg or {}).items() if k not in OWN_KEYS}
    mcfg["classifiers"] = [m for m in models if m in CLASSIFIERS]
    if combined_classifier is not None:
        mcfg["combined_classifiers"] = [combined_classifier]
    elif "combined" not in models:
        mcfg["combined_classifiers"] = ["lr"]
    return mcfg


def _check_models(models, modelling_cfg, clinical_cfg, combined_classifier) -> list[str]:
    """The models to validate (default :data:`DEFAULT_MODELS` the config fits; radiomics only: the rad-score);
    every unknown model and a combined classifier type that does not exist, listed at once."""
    available = model_names({"modelling": modelling_cfg, "clinical": clinical_cfg})
    if models is None:
        models = [m for m in DEFAULT_MODELS if m in available]
    models = list(dict.fromkeys(models))
    problems = [Problem(f"model {m!r} is not fitted with this config; choose from {', '.join(available)}",
                        column="models") for m in models if m not in available]
    if combined_classifier is not None and combined_classifier not in CLASSIFIERS:
        problems.append(Problem(f"combined classifier {combined_classifier!r} is not one of {', '.join(CLASSIFIERS)}",
                                column="combined_classifier"))
    if not models:
        problems.append(Problem("no model to validate", column="models"))
    if problems:
        raise UsradError("Cannot run the optimism-corrected bootstrap", problems)
    return models


def _summary(task, models, apparent, results, dev) -> pd.DataFrame:
    """The validate table: per model and metric, apparent, mean training/test over the usable resamples,
    optimism, corrected, how many resamples were used and how many failed."""
    rows = []
    for m in models:
        for metric in METRICS:
            tr = np.array([r["train"][m][metric] if r["error"] is None else np.nan for r in results], float)
            te = np.array([r["test"][m][metric] if r["error"] is None else np.nan for r in results], float)
            ok = np.isfinite(tr) & np.isfinite(te)
            opt = float(np.mean(tr[ok] - te[ok])) if ok.any() else float("nan")
            app = apparent[m][metric]
            rows.append(dict(task=task, model=m, metric=metric, apparent=app,
                             training=float(np.mean(tr[ok])) if ok.any() else float("nan"),
                             test=float(np.mean(te[ok])) if ok.any() else float("nan"), optimism=opt,
                             corrected=app - opt, n_resamples=int(ok.sum()), n_failed=int(len(results) - ok.sum()),
                             n_patients=int(dev["patient_id"].nunique()), n_images=len(dev)))
    return pd.DataFrame(rows, columns=COLUMNS)


def optimism_bootstrap(features_df: pd.DataFrame, cohort_df: pd.DataFrame, split_df: pd.DataFrame, task_cfg: dict,
                       modelling_cfg: dict | None, clinical_cfg: dict, seed: int, n_resamples: int, models=None,
                       n_jobs: int = 1, progress: Callable[[str], None] | None = None,
                       combined_classifier: str | None = None) -> pd.DataFrame:
    """Harrell's optimism-corrected bootstrap of one task's models (module docstring); one row per model and
    metric with columns :data:`COLUMNS`. ``models``: default :data:`DEFAULT_MODELS` (those the config fits);
    ``progress``: called with one line per resample (default: the module logger)."""
    if int(n_resamples) < 1:
        raise UsradError("Cannot run the optimism-corrected bootstrap",
                         [Problem(f"n_resamples is {n_resamples}; give at least 1", column="bootstrap_resamples")])
    models = _check_models(models, modelling_cfg, clinical_cfg, combined_classifier)
    say = progress or log.info
    dev = _development(cohort_df, split_df, task_cfg)
    mcfg = resample_config(modelling_cfg, models, combined_classifier)
    jobs = (delayed(_job)(b, features_df, cohort_df, dev, task_cfg, mcfg, clinical_cfg, seed, models)
            for b in range(int(n_resamples) + 1))
    results, clock = [], time.perf_counter()
    for res in Parallel(n_jobs=n_jobs, prefer="processes", return_as="generator")(jobs):
        if res["b"] == 0:
            if res["error"] is not None:
                raise UsradError(f"Task {task_cfg['name']!r}: the models cannot be fitted on the development rows",
                                 [Problem(f"fit_task on all {dev['patient_id'].nunique()} development patients: "
                                          f"{res['error']}", column="split")])
            apparent = res["train"]
            say(f"task {task_cfg['name']}: apparent fit on {dev['patient_id'].nunique()} patients in "
                f"{res['seconds']:.1f} s")
            continue
        results.append(res)
        status = "failed, skipped: " + res["error"] if res["error"] else " ".join(
            f"{m} AUC {res['train'][m]['auc']:.3f}/{res['test'][m]['auc']:.3f}" for m in models[:2])
        say(f"task {task_cfg['name']}: resample {res['b']}/{n_resamples} in {res['seconds']:.1f} s "
            f"(elapsed {time.perf_counter() - clock:.0f} s): {status}")
    if all(r["error"] is not None for r in results):
        raise UsradError(f"Task {task_cfg['name']!r}: every bootstrap resample failed",
                         [Problem(f"resample {r['b']}: {r['error']}", column="bootstrap_resamples")
                          for r in results][:20])
    return _summary(task_cfg["name"], models, apparent, results, dev)


# --------------------------------------------------------------------------- output
METRIC_LABELS = {"auc": "AUC", "calibration_slope": "calibration slope", "calibration_intercept":
                 "calibration intercept", "brier": "Brier score"}


def validation_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown (rms::validate's index.orig / training / test / optimism / index.corrected / n)."""
    head = ("| model | metric | apparent | training | test | optimism | corrected | resamples used | failed |\n"
            "|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(f"| {r.model} | {METRIC_LABELS.get(r.metric, r.metric)} | {r.apparent:.3f} | {r.training:.3f} | "
                   f"{r.test:.3f} | {r.optimism:+.3f} | **{r.corrected:.3f}** | {r.n_resamples} | {r.n_failed} |\n"
                   for r in table.itertuples())
    first = table.iloc[0] if len(table) else None
    intro = (f"Optimism-corrected bootstrap (Harrell), task {first.task}: {first.n_patients} development patients "
             f"({first.n_images} images); the whole pipeline refitted on every resample. corrected = apparent − "
             "optimism; optimism = mean over resamples of (training − test).\n\n") if first is not None else ""
    return intro + head + body


def write_validation(table: pd.DataFrame, tsv_path, md_path) -> None:
    """``internal_validation.tsv`` and its Markdown version, written atomically."""
    write_tsv(table, tsv_path, float_format="%.6g")
    write_text(md_path, validation_markdown(table))
