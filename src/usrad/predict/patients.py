"""The new patients: their manifest checked as ``usrad validate`` checks one, their reference-reader features
(extracted with the bundle's PyRadiomics parameters, or matched by content in a feature table), the design
matrix."""
from __future__ import annotations

import hashlib
import io
import tempfile
import warnings
from pathlib import Path

import pandas as pd

from ..cohort import validate_manifest
from ..errors import Problem, UsradError
from ..extract import pixel_spacing
from ..extract import content_sha256, extract_cohort, file_sha256
from ..features import read_feature_table
from ..models import build_design, harmonize_levels
from .model import VersionWarning


class UnseenLevelWarning(UserWarning):
    """A categorical value the model never saw in training (scored as the reference level, as in training)."""


def validate_new_patients(manifest, inputs: dict) -> pd.DataFrame:
    """The normalised cohort table of a manifest of new patients, or UsradError listing every problem.

    Same checks and messages as ``usrad validate`` (files, masks, spacing, clinical values), with the
    model's clinical variables as the required predictors and no outcome. A categorical value the model never
    saw in training gives an :class:`UnseenLevelWarning`: the frozen encoder scores it as the reference level,
    exactly as the training run scored such test patients.
    """
    used = list(inputs["clinical_used"])
    cfg = {"clinical": {"predictors": used, "categorical": [c for c in used if c in inputs["categorical"]],
                        "missing": "impute" if inputs["impute"] else "refuse"},
           "modelling": {"harmonize": inputs.get("harmonize") or {}}, "tasks": []}  # its batch column is required
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
                                 pixel_spacing(rec.get("pixel_spacing_mm")))
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
    if (inputs.get("harmonize") or {}).get("by"):  # the ComBat step reads its batch and covariates as index levels
        X = harmonize_levels(X, cohort.reset_index(drop=True), inputs["harmonize"])
    return X


UnseenLevelWarning.__module__ = "usrad.predict"  # its public home
