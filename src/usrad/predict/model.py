"""What a bundle's pipeline needs: its inputs (radiomics columns, copy reader, clinical variables), loading a
bundle that is a usrad model agreeing with its metadata, and the library versions it was trained with."""
from __future__ import annotations

from sklearn.pipeline import Pipeline

from ..bundle import META_FILE, MODEL_FILE, bundle_folder, load_bundle
from ..errors import Problem, UsradError
from ..models import RadiomicsClinicalFeatures
from ..selection import ComBatHarmonizer

#: Libraries whose version decides the numbers: (name in bundle.json "versions", distribution name).
CHECKED_VERSIONS = (("pyradiomics-bhklab", "pyradiomics-bhklab"), ("scikit-learn", "scikit-learn"))


class VersionWarning(UserWarning):
    """The installed PyRadiomics / scikit-learn differs from the one the bundle was trained with."""


def _find_clinical_branch(pipeline) -> Pipeline | None:
    """The fitted clinical branch (ColumnPicker → ClinicalEncoder [→ ClinicalSelector]) of a pipeline."""
    first = pipeline.steps[0][1]
    if isinstance(first, RadiomicsClinicalFeatures):
        return first.clinical_
    if isinstance(first, Pipeline) and "encode" in first.named_steps:
        return first
    return None


def fitted_signature_steps(pipeline) -> list | None:
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
    first = pipeline.steps[0][1]
    sig = fitted_signature_steps(pipeline)
    if sig is not None:
        radiomics = list(sig[0][1].feature_names_in_)
    elif isinstance(first, RadiomicsClinicalFeatures):
        radiomics = list(first.radiomics_.steps[0][1].feature_names_in_)
    else:
        radiomics = []
    steps = sig if sig is not None else first.radiomics_.steps if isinstance(first, RadiomicsClinicalFeatures) else []
    harm = next((s for _, s in steps if isinstance(s, ComBatHarmonizer)), None)
    suffixes = sorted({c.rsplit("@", 1)[1] for c in radiomics if "@" in c})
    copy_reader = (meta.get("reproducibility") or {}).get("copy_reader")
    if len(suffixes) == 1:  # the fitted pipeline decides which copy columns it reads ("@none": no copy reader)
        copy_reader = None if suffixes[0] == "none" else suffixes[0]
    out = {"radiomics": [c for c in radiomics if "@" not in c], "copy_reader": copy_reader, "copy_suffixes": suffixes,
           "clinical": [], "clinical_used": [], "categorical": [], "impute": False, "fill": {}, "levels": {},
           "harmonize": {"by": harm.by, "covariates": list(harm.covariates)} if harm is not None else {}}
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
    sig = fitted_signature_steps(pipeline)
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


VersionWarning.__module__ = "usrad.predict"  # its public home
