"""Score new patients with a trained model bundle (``usrad predict``).

One function does it all: :func:`predict_manifest` (bundle folder + manifest of new patients → table).

1. The manifest is checked by :func:`usrad.cohort.validate_manifest` — the same code and messages as
   ``usrad validate`` — with the clinical variables the model uses as the required predictors and no task
   (new patients have no outcome column). A categorical level the model never saw in training is warned
   about (:class:`UnseenLevelWarning`) and scored as the reference level, as in the training run.
2. Features are extracted with exactly the PyRadiomics parameter text recorded in the bundle (written to a
   file whose SHA-256 must equal the bundle's), reference-reader mask only. A precomputed feature table
   (``features=``) is accepted only if its parameter SHA-256 is the bundle's and it has every feature; its
   rows are matched to the new images by content (SHA-256 of image and mask, pixel spacing; recorded by
   ``usrad extract``), never by ``image_id``: a new image the table does not hold is an error.
3. The design matrix is built by :func:`usrad.models.build_design` exactly as in training and the frozen
   pipeline gives the probability; the rad-score is the bundle's LASSO signature (NaN for ``clinical``).

Output, one row per image (the modelling unit; most patients have one): ``patient_id, image_id, task,
model, probability, rad_score, threshold, decision`` (``positive`` iff probability ≥ the bundle's
threshold, chosen on training data), ``top_contributions`` (the largest terms on the log-odds scale, see
:func:`contributions`) and, for the ``nomogram`` model, ``points_<variable>`` and ``total_points`` on the
classic 0–100 nomogram scale. Floats are written with full precision (shortest round-trip repr).

A library version different from the one the bundle records (PyRadiomics, scikit-learn) gives a
:class:`VersionWarning`: features or fitted estimators may then differ slightly.
"""
from __future__ import annotations

import hashlib
import io
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from .atomic import atomic_path
from .errors import Problem, UsradError
from .nomogram import nomogram_spec
from .tables import read_table


#: Libraries whose version decides the numbers: (name in bundle.json "versions", distribution name).
CHECKED_VERSIONS = (("pyradiomics-bhklab", "pyradiomics-bhklab"), ("scikit-learn", "scikit-learn"))
TOP_K = 3
OUTPUT_COLUMNS = ("patient_id", "image_id", "task", "model", "probability", "rad_score", "threshold", "decision",
                  "top_contributions")


class VersionWarning(UserWarning):
    """The installed PyRadiomics / scikit-learn differs from the one the bundle was trained with."""


class UnseenLevelWarning(UserWarning):
    """A categorical value the model never saw in training (scored as the reference level, as in training)."""


# --------------------------------------------------------------------------------------------------
# what a bundle needs
# --------------------------------------------------------------------------------------------------
def _find_clinical_branch(pipeline) -> Pipeline | None:
    """The fitted clinical branch (ColumnPicker → ClinicalEncoder [→ ClinicalSelector]) of a pipeline."""
    from .models import RadiomicsClinicalFeatures

    first = pipeline.steps[0][1]
    if isinstance(first, RadiomicsClinicalFeatures):
        return first.clinical_
    if isinstance(first, Pipeline) and "encode" in first.named_steps:
        return first
    return None


def _signature_steps(pipeline) -> list | None:
    """The fitted signature steps (ColumnPicker … LassoSelector) of a radiomics pipeline, else None."""
    names = [n for n, _ in pipeline.steps]
    if "lasso" in names:
        return pipeline.steps[: names.index("lasso") + 1]
    return None


def model_inputs(pipeline, meta: dict) -> dict:
    """What the bundle's pipeline reads: radiomics columns, the copy reader, clinical variables.

    ``clinical``: every predictor the pipeline's design matrix carries; ``clinical_used``: the variables
    whose value changes the prediction (selected by the model); ``categorical``, ``impute`` and the encoder's
    ``fill``/``levels`` (training levels incl. the reference).
    """
    from .models import RadiomicsClinicalFeatures

    first = pipeline.steps[0][1]
    sig = _signature_steps(pipeline)
    if sig is not None:
        radiomics = list(sig[0][1].feature_names_in_)
    elif isinstance(first, RadiomicsClinicalFeatures):
        radiomics = list(first.radiomics_.steps[0][1].feature_names_in_)
    else:
        radiomics = []
    suffixes = sorted({c.rsplit("@", 1)[1] for c in radiomics if "@" in c})
    copy_reader = (meta.get("reproducibility") or {}).get("copy_reader")
    if len(suffixes) == 1:  # the fitted pipeline decides which copy columns it reads ("@none": no copy reader)
        copy_reader = None if suffixes[0] == "none" else suffixes[0]
    out = {"radiomics": [c for c in radiomics if "@" not in c], "copy_reader": copy_reader, "copy_suffixes": suffixes,
           "clinical": [], "clinical_used": [], "categorical": [], "impute": False, "fill": {}, "levels": {}}
    branch = _find_clinical_branch(pipeline)
    if branch is not None:
        enc = branch.named_steps["encode"]
        out["clinical"] = [str(c) for c in enc.feature_names_in_]
        sel = branch.named_steps.get("select")
        out["clinical_used"] = list(sel.variables_) if sel is not None else list(out["clinical"])
        out["categorical"] = [c for c in out["clinical"] if c in enc.levels_]
        out["impute"] = bool(enc.impute)
        out["fill"] = {str(k): (v if isinstance(v, str) else float(v)) for k, v in enc.fill_.items()}
        out["levels"] = {c: sorted([str(enc.reference_[c])] + [str(v) for v in enc.levels_[c]])
                         for c in out["categorical"]}
    return out


def _lasso_features(pipeline) -> list[str] | None:
    """The LASSO features of a pipeline's radiomics signature (None: the pipeline has none)."""
    sig = _signature_steps(pipeline)
    if sig is None and hasattr(pipeline.steps[0][1], "radiomics_"):
        sig = pipeline.steps[0][1].radiomics_.steps
    if sig is None:
        return None
    lasso = sig[-1][1]
    return [str(n) for n in getattr(lasso, "selector_", lasso).get_feature_names_out()]


def load_model(model_dir):
    """``(pipeline, metadata)`` of a bundle folder or its ``bundle.json`` (every file checked against the
    bundle's manifest, metadata values and trusted types checked by :mod:`usrad.bundle`), after checking that
    the pipeline is a usrad model that agrees with its metadata (model kind, LASSO features)."""
    from .bundle import META_FILE, MODEL_FILE, bundle_folder, load_bundle

    pipeline, meta = load_bundle(model_dir)
    d = bundle_folder(model_dir)
    try:
        inputs = model_inputs(pipeline, meta)
        lasso = _lasso_features(pipeline)
    except (AttributeError, KeyError, TypeError, IndexError, ValueError) as exc:
        raise UsradError(f"Model bundle {d} does not hold a usrad model", [Problem(
            f"the pipeline is not one usrad fits ({type(exc).__name__}: {exc})", file=str(d / MODEL_FILE))]) from None
    problems = []
    if not inputs["radiomics"] and not inputs["clinical"]:
        problems.append(Problem("the pipeline reads neither radiomics features nor clinical variables",
                                file=str(d / MODEL_FILE)))
    kind, selected = meta.get("kind"), meta.get("selected_features")
    if kind is not None and (lasso is None) != (kind == "clinical"):
        problems.append(Problem(f"bundle.json says kind {kind!r} but the model {'has no' if lasso is None else 'has a'} "
                                "radiomics signature", column="kind", file=str(d / META_FILE)))
    recorded = (meta.get("reproducibility") or {}).get("copy_reader")
    if len(inputs["copy_suffixes"]) > 1 or (inputs["copy_suffixes"] and recorded != inputs["copy_reader"]):
        problems.append(Problem(f"copy reader {recorded!r} but the model reads the copy columns "
                                f"{['@' + x for x in inputs['copy_suffixes']]}", column="reproducibility",
                                file=str(d / META_FILE)))
    ranges = meta.get("nomogram_inputs")
    if meta.get("model") == "nomogram" and ranges and hasattr(pipeline.steps[0][1], "get_feature_names_out"):
        names = {str(n) for n in pipeline.steps[0][1].get_feature_names_out()}
        if set(ranges) != names:
            problems.append(Problem(f"lists {sorted(ranges)} but the model's inputs are {sorted(names)}",
                                    column="nomogram_inputs", file=str(d / META_FILE)))
    if lasso is not None and selected is not None and lasso != selected:
        problems.append(Problem("differ from the LASSO features of the model", column="selected_features",
                                file=str(d / META_FILE)))
    if problems:
        raise UsradError(f"Model bundle {d}: {MODEL_FILE} and {META_FILE} do not belong together; refusing it",
                         problems)
    return pipeline, meta


def version_mismatches(meta: dict) -> list[str]:
    """One sentence per checked library whose installed version differs from the bundle's."""
    import importlib.metadata as md

    recorded = meta.get("versions") or {}
    out = []
    for key, dist in CHECKED_VERSIONS:
        try:
            have = md.version(dist)
        except md.PackageNotFoundError:
            have = None
        want = recorded.get(key)
        if want is not None and have != want:
            out.append(f"{key} {have} is installed but the model was trained with {want}; "
                       "features or predictions may differ slightly from the training run")
    return out


# --------------------------------------------------------------------------------------------------
# the new patients
# --------------------------------------------------------------------------------------------------
def validate_new_patients(manifest, inputs: dict) -> pd.DataFrame:
    """The normalised cohort table of a manifest of new patients, or UsradError listing every problem.

    Same checks and messages as ``usrad validate`` (files, masks, spacing, clinical values), with the
    model's clinical variables as the required predictors and no outcome. A categorical value the model never
    saw in training gives an :class:`UnseenLevelWarning`: the frozen encoder scores it as the reference level,
    exactly as the training run scored such test patients.
    """
    from .cohort import validate_manifest

    used = list(inputs["clinical_used"])
    cfg = {"clinical": {"predictors": used, "categorical": [c for c in used if c in inputs["categorical"]],
                        "missing": "impute" if inputs["impute"] else "refuse"},
           "tasks": []}
    df, problems = validate_manifest(manifest, cfg, check_images=True)
    if not problems and df.empty:
        problems.append(Problem("the manifest has no patient rows: nothing to score", file=str(manifest)))
    if not problems:
        for col in cfg["clinical"]["categorical"]:
            known = inputs["levels"][col]
            for i in df.index:
                v = df.at[i, col]
                if pd.isna(v) or str(v) in known:
                    continue
                warnings.warn(f"row {int(i) + 1}, patient {str(df.at[i, 'patient_id'])!r}, column {col!r}, file "
                              f"{manifest}: level {str(v)!r} was not seen in training (known: {', '.join(known)}); "
                              "it is scored as the reference level, as the training run scored it", UnseenLevelWarning,
                              stacklevel=2)
    if problems:
        raise UsradError(f"Manifest {manifest} has problems", problems)
    return df


def _params_file(meta: dict, directory: Path) -> Path:
    text = meta.get("pyradiomics")
    sha = meta.get("pyradiomics_params_sha256")
    if not text or not sha:
        raise UsradError("The model bundle does not record its PyRadiomics parameters; re-run fit_task", [
            Problem("bundle.json lacks 'pyradiomics' (params text) or 'pyradiomics_params_sha256'", column="pyradiomics")])
    if hashlib.sha256(text.encode("utf-8")).hexdigest() != sha:
        raise UsradError("The model bundle's PyRadiomics parameter text does not match its SHA-256", [
            Problem("bundle.json was edited", column="pyradiomics_params_sha256")])
    path = directory / f"radiomics-{sha[:12]}.yaml"
    path.write_bytes(text.encode("utf-8"))
    return path


def new_patient_features(cohort: pd.DataFrame, meta: dict, inputs: dict, features=None, cache_dir=None,
                         progress: bool = False) -> pd.DataFrame:
    """Reference-reader features of the new patients, extracted with the bundle's PyRadiomics parameters.

    ``features``: an already extracted feature table (path); used only if it was extracted with the same
    parameters (SHA-256) and holds every feature the model reads; its rows are matched to the new images by
    content (:func:`features_by_content`), never by id.
    """
    if not inputs["radiomics"]:
        return pd.DataFrame(columns=["patient_id", "image_id", "reader"])
    if features is not None:
        return features_by_content(cohort, features, meta, inputs)
    from .extract import extract_cohort

    ref_only = cohort.assign(mask_reader2="")  # the copy reader only feeds the ICC filter, fitted in training
    with tempfile.TemporaryDirectory(prefix="usrad-predict-") as tmp:
        params = _params_file(meta, Path(tmp))
        sink = io.StringIO()
        table = extract_cohort(ref_only, params, cache_dir=cache_dir, progress=progress,
                               log=None if progress else sink)
    missing = [c for c in inputs["radiomics"] if c not in table.columns]
    if missing:
        raise UsradError(f"Extraction gave a different feature set: {len(missing)} feature(s) of the model are missing",
                         [Problem("feature not extracted (different PyRadiomics version?)", column=c)
                          for c in missing[:20]])
    return table


def _content_index(fmeta: dict, table: pd.DataFrame, features) -> dict[str, int]:
    """``{content SHA-256: position of its row in table}`` from a feature table's ``content_sha256`` records."""
    records = fmeta.get("content_sha256")
    ok = isinstance(records, list) and all(
        isinstance(r, list) and len(r) == 4 and all(isinstance(x, str) for x in r) for r in records)
    if not ok:
        raise UsradError(f"Feature table {features} does not record the content of its rows", [Problem(
            "no valid 'content_sha256' in its metadata, so its rows cannot be matched to the new patients by image "
            "content (an image_id may belong to another patient); extract the new patients' table with `usrad "
            "extract MANIFEST --out TABLE` (it records them), or leave out --features to extract the images",
            column="content_sha256", file=str(features))])
    pos = {(str(p), str(i), str(r)): n for n, (p, i, r) in
           enumerate(zip(table["patient_id"], table["image_id"], table["reader"]))}
    index: dict[str, int] = {}
    for pid, iid, reader, sha in records:
        if (pid, iid, reader) in pos:
            index.setdefault(sha, pos[(pid, iid, reader)])
    return index


def features_by_content(cohort: pd.DataFrame, features, meta: dict, inputs: dict) -> pd.DataFrame:
    """Reference-reader feature rows of the new patients taken from an already extracted feature table.

    A row is matched by what was extracted — the SHA-256 of the image and mask files and the pixel spacing
    (:func:`usrad.extract.content_sha256`) with the bundle's PyRadiomics parameters (the table's params SHA-256
    must be the bundle's) — never by patient or image id, which may belong to other patients in that table. A
    new image without such a row is an error naming row, patient and file.
    """
    from .extract import _spacing, content_sha256, file_sha256
    from .features import read_feature_table

    table, fmeta = read_feature_table(features)
    if fmeta.get("params_sha256") != meta.get("pyradiomics_params_sha256"):
        raise UsradError("The feature table was extracted with different PyRadiomics settings than the model", [
            Problem(f"params SHA-256 {fmeta.get('params_sha256')} but the model was trained on "
                    f"{meta.get('pyradiomics_params_sha256')}", column="params_sha256", file=str(features))])
    have = (fmeta.get("versions") or {}).get("pyradiomics")
    want = (meta.get("versions") or {}).get("pyradiomics-bhklab")
    if want and have and str(have) != str(want):
        warnings.warn(f"the feature table was extracted with PyRadiomics {have} but the model was trained with "
                      f"{want}; features may differ", VersionWarning, stacklevel=3)
    missing = [c for c in inputs["radiomics"] if c not in table.columns]
    if missing:
        raise UsradError(f"The feature table lacks {len(missing)} feature(s) the model was trained on", [
            Problem("feature column missing", column=c, file=str(features)) for c in missing[:20]])
    index = _content_index(fmeta, table, features)
    picked, problems = [], []
    for i, rec in enumerate(cohort.to_dict("records")):
        pid = str(rec["patient_id"])
        try:
            sha = content_sha256(file_sha256(rec["image"]), file_sha256(rec["mask"]),
                                 _spacing(rec.get("pixel_spacing_mm")))
        except OSError as exc:
            problems.append(Problem(f"cannot read file ({exc.strerror or exc})", patient=pid, row=i + 1,
                                    column="image", file=str(exc.filename or rec["image"])))
            continue
        if sha not in index:
            problems.append(Problem(
                f"no row of the feature table {features} was extracted from this image and mask with this pixel "
                "spacing (rows are matched by the files' SHA-256, never by image_id); leave out --features to "
                "extract it", patient=pid, row=i + 1, column="image", file=str(rec["image"])))
        picked.append(index.get(sha))
    if problems:
        raise UsradError(f"{len(problems)} new image(s) are not in the feature table {features}", problems)
    rows = table.iloc[picked].reset_index(drop=True)
    rows["patient_id"] = list(cohort["patient_id"].astype(str))
    rows["image_id"] = list(cohort["image_id"].astype(str))
    rows["reader"] = "r1"
    return rows


def design_matrix(cohort: pd.DataFrame, features: pd.DataFrame, inputs: dict) -> pd.DataFrame:
    """The design matrix the bundle's pipeline takes, as :func:`usrad.models.build_design` builds it in training.

    Clinical predictors the model does not use (not selected) are filled with the training fill value: the
    pipeline drops them, so they cannot change a prediction.
    """
    from .models import build_design

    cohort = cohort.copy()
    for c in inputs["clinical"]:
        if c not in inputs["clinical_used"]:
            cohort[c] = inputs["fill"][c]
    image_ids = list(cohort["image_id"].astype(str))
    if inputs["radiomics"]:
        X, _ = build_design(features, cohort, image_ids, inputs["clinical"], inputs["copy_reader"],
                            source="feature table of the new patients")
    else:
        X = cohort.set_index(["patient_id", "image_id"])[inputs["clinical"]]
    return X


# --------------------------------------------------------------------------------------------------
# scores, contributions, nomogram points
# --------------------------------------------------------------------------------------------------
def rad_scores(pipeline, X: pd.DataFrame) -> np.ndarray:
    """The rad-score of every row (the bundle's LASSO signature, as in training); NaN without a signature."""
    from .models import RadiomicsClinicalFeatures, fitted_radscore_branch

    first = pipeline.steps[0][1]
    if isinstance(first, RadiomicsClinicalFeatures):
        return first.radiomics_.transform(X)["rad_score"].to_numpy(float)
    sig = _signature_steps(pipeline)
    if sig is None:
        return np.full(len(X), np.nan)
    return fitted_radscore_branch(Pipeline(sig)).transform(X)["rad_score"].to_numpy(float)


def contributions(pipeline, X: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Each term's contribution to the log-odds: coefficient × standardized value.

    Linear models (``radscore``: LASSO on z-scores; ``lr``, ``clinical``, ``nomogram`` and a logistic
    ``combined``: logistic regression on standardized inputs) give their own terms. For the other
    classifiers (SVM, RF, XGBoost, k-NN, naive Bayes, MLP) there is no additive decomposition: the terms of
    the rad-score (its LASSO features) are given instead. Returns ``(table rows × terms, basis)``.
    """
    from .selection import LassoSelector

    final = pipeline.steps[-1][1]
    if isinstance(final, (LassoSelector, LogisticRegression)):
        head = Pipeline(pipeline.steps[:-1])
        Z = head.transform(X)
        if isinstance(final, LassoSelector):
            Z = final.transform(Z)
            coef, names = np.asarray(final.coef_, float), list(final.get_feature_names_out())
        else:
            coef = np.asarray(final.coef_, float).ravel()
            names = [str(n) for n in head.get_feature_names_out()]
        Z = np.asarray(Z, dtype=float)
        return pd.DataFrame(Z * coef, index=X.index, columns=names), "log-odds of the model"
    sig = _signature_steps(pipeline)
    if sig is None and hasattr(pipeline.steps[0][1], "radiomics_"):
        sig = pipeline.steps[0][1].radiomics_.steps
    if sig is None:
        return pd.DataFrame(index=X.index), "none"
    lasso = sig[-1][1]
    selector = getattr(lasso, "selector_", lasso)  # RadScore wraps the fitted LassoSelector
    Z = selector.transform(Pipeline(sig[:-1]).transform(X))
    terms = np.asarray(Z, dtype=float) * np.asarray(selector.coef_, float)
    return pd.DataFrame(terms, index=X.index, columns=list(selector.get_feature_names_out())), "rad-score terms"


def _top_text(row: pd.Series, k: int = TOP_K) -> str:
    if row.empty:
        return ""
    order = np.argsort(-np.abs(row.to_numpy(float)), kind="mergesort")[:k]
    return "; ".join(f"{row.index[i]} {row.iloc[i]:+.3f}" for i in order)


def nomogram_points(pipeline, meta: dict, X: pd.DataFrame) -> pd.DataFrame | None:
    """``points_<variable>`` and ``total_points`` of each row on the nomogram scales (nomogram bundles only)."""
    if meta.get("model") != "nomogram" or "nomogram_inputs" not in meta:
        return None
    spec = nomogram_spec(pipeline, meta)
    nomo = spec["nomogram"]
    values = spec["values"](X)
    rows = []
    for vals in values:
        pts = {f"points_{v.name}": nomo.points(v, vals[v.name]) for v in nomo.variables}
        pts["total_points"] = float(sum(pts.values()))
        rows.append(pts)
    return pd.DataFrame(rows, index=X.index)


# --------------------------------------------------------------------------------------------------
# the whole thing
# --------------------------------------------------------------------------------------------------
def predict_manifest(model_dir, manifest, out=None, features=None, cache_dir=None, progress: bool = False,
                     top_k: int = TOP_K) -> pd.DataFrame:
    """Score every image of ``manifest`` with the bundle in ``model_dir``; write ``out`` (CSV if it ends in
    ``.csv``, else TSV) atomically when given. See the module docstring for the columns."""
    pipeline, meta = load_model(model_dir)
    for msg in version_mismatches(meta):
        warnings.warn(msg, VersionWarning, stacklevel=2)
    inputs = model_inputs(pipeline, meta)
    cohort = validate_new_patients(manifest, inputs)
    feats = new_patient_features(cohort, meta, inputs, features=features, cache_dir=cache_dir, progress=progress)
    X = design_matrix(cohort, feats, inputs)
    return score(pipeline, meta, X, out=out, top_k=top_k)


def score(pipeline, meta: dict, X: pd.DataFrame, out=None, top_k: int = TOP_K) -> pd.DataFrame:
    """The output table for design matrix ``X`` (index ``patient_id, image_id``)."""
    p = pipeline.predict_proba(X)[:, 1]
    thr = float(meta["threshold"])
    contrib, basis = contributions(pipeline, X)
    table = pd.DataFrame({
        "patient_id": X.index.get_level_values("patient_id").astype(str),
        "image_id": X.index.get_level_values("image_id").astype(str),
        "task": meta.get("task"), "model": meta.get("model"), "probability": p, "rad_score": rad_scores(pipeline, X),
        "threshold": thr, "decision": np.where(p >= thr, "positive", "negative"),
        "top_contributions": [_top_text(contrib.iloc[i], top_k) for i in range(len(X))],
    })
    table.attrs["contribution_basis"] = basis
    pts = nomogram_points(pipeline, meta, X)
    if pts is not None:
        table = pd.concat([table, pts.reset_index(drop=True)], axis=1)
    if out is not None:
        write_predictions_table(table, out)
    return table


def write_predictions_table(table: pd.DataFrame, path) -> Path:
    """CSV (``.csv``) or TSV, full float precision (round-trip repr), written atomically."""
    path = Path(path)
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep=sep, index=False, na_rep="", lineterminator="\n")
    return path


def read_predictions_table(path) -> pd.DataFrame:
    path = Path(path)
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    return read_table(path, sep=sep, float_precision="round_trip")
