"""The one model-bundle format: ``model.skops`` (the fitted Pipeline) + ``bundle.json`` (metadata).

* ``model.skops``: :func:`skops.io.dumps` of the whole fitted Pipeline, re-packed with fixed names and
  timestamps so that the same model gives byte-identical files. Loading never executes arbitrary code:
  every type named in the file's schema must be in :data:`TRUSTED_TYPES` (an explicit allowlist, stricter
  than skops' own default, which trusts any scikit-learn class); anything else → :class:`~usrad.errors.UsradError`.
  XGBoost models persist inside skops (the booster as its own raw bytes; checked in tests).
* ``bundle.json``: everything a reader needs without loading the model — task, model name, selected
  features, rad-score formula, Youden threshold chosen on training data, tuned hyperparameters, CV AUC,
  library versions, PyRadiomics parameters, reproducibility source — plus ``model_sha256``, the SHA-256
  of ``model.skops``. :func:`load_bundle` refuses a bundle whose file does not match it.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import skops.io as sio

from .atomic import atomic_path, write_text
from .errors import Problem, UsradError

FORMAT = "usrad-bundle/1"
MODEL_FILE = "model.skops"
META_FILE = "bundle.json"

#: Every non-default type the bundles of usrad contain; skops refuses anything else.
TRUSTED_TYPES = sorted({
    "usrad.selection.ColumnPicker", "usrad.selection.ICCFilter", "usrad.selection.NearZeroVariance",
    "usrad.selection.UnivariateFilter", "usrad.selection.RedundancyFilter", "usrad.selection.MRMR",
    "usrad.selection.LassoSelector", "usrad.selection.RadScore",
    "usrad.models.ClinicalEncoder", "usrad.models.ClinicalSelector", "usrad.models.RadiomicsClinicalFeatures",
    "sklearn.pipeline.Pipeline", "sklearn.preprocessing._data.StandardScaler",
    "sklearn.linear_model._logistic.LogisticRegression", "sklearn.svm._classes.SVC",
    "sklearn.ensemble._forest.RandomForestClassifier", "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree", "sklearn.neighbors._classification.KNeighborsClassifier",
    "sklearn.neighbors._kd_tree.KDTree", "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.naive_bayes.GaussianNB", "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.utils._bunch.Bunch", "sklearn.preprocessing._label.LabelBinarizer", "builtins.bytearray", "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.calibration.CalibratedClassifierCV", "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration", "sklearn.frozen._frozen.FrozenEstimator",
    "xgboost.sklearn.XGBClassifier", "xgboost.core.Booster",
    "numpy.dtype", "numpy.ndarray", "numpy.float64", "numpy.int64", "numpy.bool_", "numpy.random.mtrand.RandomState",
    "builtins.slice", "builtins.tuple", "builtins.float", "builtins.int", "builtins.str", "builtins.bool",
    "builtins.list", "builtins.dict", "builtins.NoneType", "builtins.set",
})


def types_in(path) -> list[str]:
    """Every ``module.Class`` a skops file would construct (read from its schema, nothing is loaded)."""
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            if "__class__" in node and "__module__" in node:
                found.add(f"{node['__module__']}.{node['__class__']}")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    with zipfile.ZipFile(path) as zf:
        walk(json.loads(zf.read("schema.json")))
    return sorted(found)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_ID = re.compile(r'("__id__": )(\d+)')
_FILE = re.compile(r'("file": ")([^"]+)(")')


def _deterministic_zip(data: bytes) -> bytes:
    """Re-pack skops' zip so that the same model gives the same bytes.

    skops names objects by ``id()`` (memory addresses, ``"__id__": 1400…``) and stores arrays and XGBoost
    boosters in members named by address or a random UUID (``"file": "1400….npy"``); both are renumbered
    in order of first appearance in ``schema.json``, and members are written sorted with fixed timestamps.
    """
    src = zipfile.ZipFile(io.BytesIO(data))
    schema = src.read("schema.json").decode()
    ids: dict[str, str] = {}
    for m in _ID.finditer(schema):
        ids.setdefault(m.group(2), str(len(ids) + 1))
    files: dict[str, str] = {}
    for m in _FILE.finditer(schema):
        ext = m.group(2).rpartition(".")[2]
        files.setdefault(m.group(2), f"m{len(files) + 1}.{ext}")
    schema = _ID.sub(lambda m: m.group(1) + ids[m.group(2)], schema)
    schema = _FILE.sub(lambda m: m.group(1) + files[m.group(2)] + m.group(3), schema)
    members = {"schema.json": schema.encode()}
    for name in src.namelist():
        if name == "schema.json":
            continue
        if name not in files:
            raise ValueError(f"skops member {name!r} is not referenced by its schema")
        members[files[name]] = src.read(name)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, members[name], compresslevel=6)
    return out.getvalue()


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def save_bundle(model, directory, metadata: dict) -> Path:
    """Write ``model.skops`` + ``bundle.json`` into ``directory``; returns the JSON path."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    model_path = d / MODEL_FILE
    with atomic_path(model_path) as tmp:
        tmp.write_bytes(_deterministic_zip(sio.dumps(model)))
    untrusted = [t for t in types_in(model_path) if t not in TRUSTED_TYPES]
    if untrusted:  # a bundle we could not load back is a bug: fail at save time, not at use time
        raise TypeError(f"model contains types outside usrad.bundle.TRUSTED_TYPES: {untrusted}")
    meta = dict(_jsonable(metadata), format=FORMAT, model_file=MODEL_FILE, model_sha256=_sha256(model_path))
    meta_path = d / META_FILE
    write_text(meta_path, json.dumps(meta, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return meta_path


def read_bundle_meta(directory) -> dict:
    path = Path(directory) / META_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsradError(f"Model bundle not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise UsradError(f"Model bundle metadata is not valid JSON: {path}",
                         [Problem(str(exc), file=str(path))]) from None
    if meta.get("format") != FORMAT:
        raise UsradError(f"Unknown model bundle format in {path}",
                         [Problem(f"format {meta.get('format')!r}, expected {FORMAT!r}", file=str(path))])
    return meta


def load_bundle(directory):
    """(model, metadata) of a bundle; UsradError if the file was changed or holds an untrusted type."""
    d = Path(directory)
    meta = read_bundle_meta(d)
    model_path = d / meta.get("model_file", MODEL_FILE)
    if not model_path.exists():
        raise UsradError(f"Model bundle is incomplete: {d}", [Problem("model file is missing", file=str(model_path))])
    digest = _sha256(model_path)
    if digest != meta.get("model_sha256"):
        raise UsradError(f"Model bundle {d} was modified after it was written; refusing to load it", [Problem(
            f"SHA-256 {digest} does not match {meta.get('model_sha256')} recorded in {META_FILE}",
            file=str(model_path))])
    try:
        present = types_in(model_path)  # stricter than skops' default: sklearn types must be listed too
        untrusted = sio.get_untrusted_types(file=model_path)
    except Exception as exc:  # noqa: BLE001 - a corrupt file is the user's problem, reported as such
        raise UsradError(f"Model bundle {d} cannot be read", [Problem(str(exc), file=str(model_path))]) from None
    refused = sorted({t for t in present + untrusted if t not in TRUSTED_TYPES})
    if refused:
        raise UsradError(f"Model bundle {d} contains types usrad does not trust; refusing to load it",
                         [Problem(f"untrusted type {t}", file=str(model_path)) for t in refused])
    model = sio.load(model_path, trusted=list(untrusted))
    return model, meta
