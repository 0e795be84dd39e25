"""The one model-bundle format: a folder with ``model.skops``, ``bundle.json`` and ``MANIFEST.sha256``.

* ``model.skops``: :func:`skops.io.dumps` of the whole fitted Pipeline, re-packed with fixed names and
  timestamps so that the same model gives byte-identical files. Loading never executes arbitrary code:
  every type named in the file's schema must be in :data:`TRUSTED_TYPES` (an explicit allowlist, stricter
  than skops' own default, which trusts any scikit-learn class); anything else → :class:`~usrad.errors.UsradError`.
  XGBoost models persist inside skops (the booster as its own raw bytes; checked in tests).
* ``bundle.json``: everything a reader needs without loading the model — task, model name, selected
  features, rad-score formula, Youden threshold chosen on training data, tuned hyperparameters, CV AUC,
  library versions, PyRadiomics parameters, reproducibility source — plus ``model_sha256``, the SHA-256
  of ``model.skops``.
* ``MANIFEST.sha256`` (written last, atomically, in ``sha256sum`` format): the SHA-256 of every other file
  of the folder. :func:`read_bundle_meta` and :func:`load_bundle` refuse a bundle with any file changed,
  missing or extra (or a symbolic link, or a sub-folder), then check every value of ``bundle.json``
  (:func:`check_metadata`: types, finite numbers, ``threshold`` in [0, 1], ``model_file`` a plain name inside
  the folder, the PyRadiomics text matching its SHA-256). Files are read once: the bytes that were hashed are
  the bytes that are parsed and loaded. Bundles of the previous format (``usrad-bundle/1``, no manifest) are
  refused with a message to rebuild them.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import skops.io as sio

from .atomic import atomic_path, write_text
from .errors import Problem, UsradError

FORMAT = "usrad-bundle/2"
OLD_FORMATS = ("usrad-bundle/1",)
MODEL_FILE = "model.skops"
META_FILE = "bundle.json"
MANIFEST_FILE = "MANIFEST.sha256"
BUNDLE_FILES = (META_FILE, MODEL_FILE)
REBUILD = "rebuild it with the workflow (e.g. snakemake --cores 2 --forcerun fit_task)"
_MANIFEST_HEADER = f"# usrad model bundle ({FORMAT}): SHA-256 of every file of this folder; any change is refused"

#: Every non-default type the bundles of usrad contain; skops refuses anything else.
TRUSTED_TYPES = sorted({
    "usrad.selection.ColumnPicker", "usrad.selection.ICCFilter", "usrad.selection.NearZeroVariance",
    "usrad.selection.UnivariateFilter", "usrad.selection.RedundancyFilter", "usrad.selection.MRMR",
    "usrad.selection.LassoSelector", "usrad.selection.RadScore",
    "usrad.models.RadiomicsClinicalFeatures", "usrad.clinical.ClinicalEncoder", "usrad.clinical.ClinicalSelector",
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
    """Every ``module.Class`` a skops file (a path, or the file's bytes) would construct (read from its schema,
    nothing is loaded)."""
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

    with zipfile.ZipFile(io.BytesIO(path) if isinstance(path, (bytes, bytearray)) else path) as zf:
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


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_text(files: dict[str, bytes]) -> str:
    """``MANIFEST.sha256`` of ``{file name: bytes}`` (``sha256sum`` format, names sorted)."""
    return _MANIFEST_HEADER + "\n" + "".join(f"{_digest(files[n])}  {n}\n" for n in sorted(files))


def save_bundle(model, directory, metadata: dict) -> Path:
    """Write ``model.skops``, ``bundle.json`` and, last, ``MANIFEST.sha256`` into ``directory``; returns the
    JSON path. Metadata that :func:`load_bundle` would refuse (a NaN threshold…) is a bug: ValueError here."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / MANIFEST_FILE).unlink(missing_ok=True)  # until the new manifest is written the folder is no bundle
    data = _deterministic_zip(sio.dumps(model))
    untrusted = [t for t in types_in(data) if t not in TRUSTED_TYPES]
    if untrusted:  # a bundle we could not load back is a bug: fail at save time, not at use time
        raise TypeError(f"model contains types outside usrad.bundle.TRUSTED_TYPES: {untrusted}")
    meta = dict(_jsonable(metadata), format=FORMAT, model_file=MODEL_FILE, model_sha256=_digest(data))
    bad = check_metadata(meta, d / META_FILE, required=False)
    if bad:
        raise ValueError("bundle metadata that load_bundle would refuse: " + "; ".join(map(str, bad)))
    text = (json.dumps(meta, indent=2, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")
    with atomic_path(d / MODEL_FILE) as tmp:
        tmp.write_bytes(data)
    meta_path = d / META_FILE
    with atomic_path(meta_path) as tmp:
        tmp.write_bytes(text)
    write_text(d / MANIFEST_FILE, manifest_text({MODEL_FILE: data, META_FILE: text}))
    return meta_path


# ------------------------------------------------------------------------------------- reading a bundle
def bundle_folder(path) -> Path:
    """The bundle folder a user named: the folder itself, or the folder of its ``bundle.json`` (or other file)."""
    p = Path(path)
    if p.is_file() and p.name in (META_FILE, MODEL_FILE, MANIFEST_FILE):
        return p.parent
    if not p.exists():
        raise UsradError(f"Model bundle not found: {p}", [Problem("model bundle folder not found", file=str(p))])
    if not p.is_dir():
        raise UsradError(f"Not a model bundle: {p} is a file", [Problem(
            f"is a file; give the bundle's folder (with {META_FILE}, {MODEL_FILE} and {MANIFEST_FILE}), "
            "e.g. results/metastasis/models/nomogram", file=str(p))])
    if not any(os.path.lexists(p / n) for n in (META_FILE, MANIFEST_FILE)):
        raise UsradError(f"Model bundle not found: {p}", [Problem(
            f"the folder has no {META_FILE}: not a model bundle (e.g. results/metastasis/models/nomogram)",
            file=str(p))])
    return p


def _read_folder(d: Path) -> tuple[dict[str, bytes], list[Problem]]:
    """The bytes of every regular file of the folder; a symbolic link, sub-folder or unreadable entry is a problem."""
    files: dict[str, bytes] = {}
    problems: list[Problem] = []
    try:
        entries = sorted(os.scandir(d), key=lambda e: e.name)
    except OSError as exc:
        raise UsradError(f"Cannot read model bundle {d}", [Problem(f"cannot list the folder ({exc.strerror or exc})",
                                                                   file=str(d))]) from None
    for e in entries:
        where = str(d / e.name)
        if e.is_symlink():
            problems.append(Problem("is a symbolic link; a bundle holds its own regular files only (copy it with "
                                    "cp -rL)", file=where))
        elif e.is_dir():
            problems.append(Problem("unexpected folder inside the bundle", file=where))
        elif not e.is_file():
            problems.append(Problem("not a regular file", file=where))
        else:
            try:
                files[e.name] = Path(where).read_bytes()
            except OSError as exc:
                problems.append(Problem(f"cannot read it ({exc.strerror or exc})", file=where))
    return files, problems


_MANIFEST_LINE = re.compile(r"([0-9a-f]{64})  (.+)")


def _plain_name(name) -> bool:
    """A file name of the bundle folder itself: no folder part, not absolute, not '.' or '..'."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\0" not in name and name.strip() == name)


def _manifest_problems(d: Path, files: dict[str, bytes]) -> list[Problem]:
    """Every difference between the folder and its manifest (changed, missing, extra, malformed)."""
    mpath = str(d / MANIFEST_FILE)
    try:
        lines = files[MANIFEST_FILE].decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return [Problem("the manifest is not UTF-8 text", file=mpath)]
    listed: dict[str, str] = {}
    problems = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = _MANIFEST_LINE.fullmatch(line)
        if m is None or not _plain_name(m.group(2)):
            problems.append(Problem(f"line {n} is not '<sha256>  <file name of this folder>': {line[:80]!r}",
                                    file=mpath))
        elif m.group(2) in listed or m.group(2) == MANIFEST_FILE:
            problems.append(Problem(f"line {n} lists {m.group(2)!r} again", file=mpath))
        else:
            listed[m.group(2)] = m.group(1)
    for name in BUNDLE_FILES:
        if name not in listed:
            problems.append(Problem("the manifest does not list this file of every bundle", file=str(d / name)))
    for name, want in listed.items():
        if name not in files:
            problems.append(Problem(f"file listed in {MANIFEST_FILE} is missing", file=str(d / name)))
        elif _digest(files[name]) != want:
            problems.append(Problem(f"SHA-256 {_digest(files[name])} differs from {want} recorded in {MANIFEST_FILE}: "
                                    "the file (or the manifest) was changed", file=str(d / name)))
    for name in sorted(set(files) - set(listed) - {MANIFEST_FILE}):
        problems.append(Problem(f"extra file, not listed in {MANIFEST_FILE} (remove it)", file=str(d / name)))
    return problems


def parse_meta(data: bytes | None, path) -> dict:
    """The JSON object of a ``bundle.json`` (bytes), or UsradError naming the file (missing, not UTF-8, not
    JSON, not an object). ``NaN``/``Infinity`` are parsed here and refused by :func:`check_metadata`, which
    names their key."""
    path = str(path)
    if data is None:
        raise UsradError(f"Model bundle is incomplete: {path} is missing", [Problem("file is missing", file=path)])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsradError(f"Model bundle metadata is not UTF-8 text: {path}",
                         [Problem(f"byte {exc.start} is not UTF-8", file=path)]) from None
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise UsradError(f"Model bundle metadata is not valid JSON: {path}",
                         [Problem(str(exc) or type(exc).__name__, file=path)]) from None
    if not isinstance(meta, dict):
        raise UsradError(f"Model bundle metadata is not a JSON object: {path}", [Problem(
            f"found {_json_type(meta)}; {META_FILE} holds one object {{...}}", file=path)])
    return meta


def _json_type(v) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null",
            int: "a number", float: "a number"}.get(type(v), type(v).__name__)


# ------------------------------------------------------------------------------------- checking bundle.json
def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _hex64(v) -> str | None:
    return None if isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) else "must be a SHA-256 (64 hex digits)"


def _in_unit(v) -> str | None:
    return None if _num(v) and 0.0 <= v <= 1.0 else "must be a number from 0 to 1"


def _opt(check):
    return lambda v: None if v is None else check(v)


def _text(v) -> str | None:
    return None if isinstance(v, str) else "must be a string"


def _name(v) -> str | None:
    return None if isinstance(v, str) and v.strip() else "must be a non-empty string"


def _count(v) -> str | None:
    return None if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else "must be a whole number >= 0"


def _texts(v) -> str | None:
    return None if isinstance(v, list) and all(isinstance(x, str) for x in v) else "must be a list of strings"


def _scalar(v) -> bool:
    return v is None or isinstance(v, (str, bool)) or _num(v)


def _hyper(v) -> str | None:
    ok = isinstance(v, dict) and all(_scalar(x) or (isinstance(x, list) and all(map(_scalar, x))) for x in v.values())
    return None if ok else "must be an object of numbers, strings, true/false, null or lists of them"


def _versions(v) -> str | None:
    ok = isinstance(v, dict) and all(x is None or isinstance(x, str) for x in v.values())
    return None if ok else "must be an object of version strings"


def _reproducibility(v) -> str | None:
    if not isinstance(v, dict):
        return "must be an object"
    for key, check in (("copy_reader", _opt(_name)), ("icc_form", _opt(_text)), ("icc_threshold", _opt(_in_unit)),
                       ("source", _opt(_text))):
        why = check(v.get(key))
        if why:
            return f"key {key!r} {why}"
    return None


def _nomogram_inputs(v) -> str | None:
    if not isinstance(v, dict):
        return "must be an object {input: {min, max, binary}}"
    for name, r in v.items():
        if not (isinstance(r, dict) and _num(r.get("min")) and _num(r.get("max")) and r["min"] <= r["max"]
                and isinstance(r.get("binary"), bool)):
            return f"input {name!r} must be {{'min': number, 'max': number >= min, 'binary': true/false}}"
        if max(abs(r["min"]), abs(r["max"])) > _MAX_RANGE:
            return f"input {name!r}: a training range beyond ±{_MAX_RANGE:g} is not a nomogram scale"
    return None


_MAX_RANGE = 1e15  # rad-score and clinical values; beyond it the nomogram arithmetic would overflow


def _model_file(v) -> str | None:
    return None if _plain_name(v) else "must be the name of a file inside the bundle folder (no folder, no '..')"


#: key -> (required by load_bundle, check returning why the value is wrong or None).
META_SCHEMA = {
    "format": (True, _text), "model_file": (True, _model_file), "model_sha256": (True, _hex64),
    "threshold": (True, _in_unit), "task": (True, _name), "model": (True, _name),
    "kind": (False, lambda v: None if v in ("radiomics", "clinical", "combined") else
             "must be 'radiomics', 'clinical' or 'combined'"),
    "classifier": (False, _name), "radscore_formula": (False, _text), "threshold_basis": (False, _text),
    "radiomics_best_model": (False, _name), "seed": (False, _count), "n_train_images": (False, _count),
    "n_train_patients": (False, _count), "cv_auc": (False, _opt(_in_unit)), "selected_features": (False, _texts),
    "clinical_selected": (False, _texts), "clinical_independent": (False, _texts), "input_columns": (False, _texts),
    "versions": (False, _versions), "pyradiomics": (False, _opt(_text)),
    "pyradiomics_params_sha256": (False, _opt(_hex64)), "reproducibility": (False, _reproducibility),
    "hyperparameters": (False, _hyper), "nomogram_inputs": (False, _nomogram_inputs),
}


def _non_finite(v, where: str) -> list[str]:
    """Keys (dotted) of every number that is not finite, anywhere in ``v``."""
    if isinstance(v, dict):
        return [k for key, x in v.items() for k in _non_finite(x, f"{where}.{key}" if where else str(key))]
    if isinstance(v, list):
        return [k for i, x in enumerate(v) for k in _non_finite(x, f"{where}[{i}]")]
    return [where] if isinstance(v, float) and not math.isfinite(v) else []


def check_metadata(meta: dict, path, required: bool = True) -> list[Problem]:
    """Every problem of a bundle's metadata (key named in ``column``): a required key missing (``required``),
    a value of the wrong type or range, a non-finite number anywhere, PyRadiomics text and SHA-256 disagreeing."""
    file = str(path)
    problems = [Problem("number is not finite", column=k, file=file) for k in _non_finite(meta, "")]
    for key, (needed, check) in META_SCHEMA.items():
        if key not in meta:
            if needed and required:
                problems.append(Problem("key is missing", column=key, file=file))
            continue
        why = check(meta[key])
        if why:
            problems.append(Problem(f"{why}, got {json.dumps(meta[key], default=str)[:60]}", column=key, file=file))
    text, sha = meta.get("pyradiomics"), meta.get("pyradiomics_params_sha256")
    if isinstance(text, str) and isinstance(sha, str) and _digest(text.encode("utf-8")) != sha:
        problems.append(Problem("the PyRadiomics parameter text ('pyradiomics') does not match this SHA-256",
                                column="pyradiomics_params_sha256", file=file))
    return problems


# ------------------------------------------------------------------------------------- the loaders
def _refuse_legacy(d: Path, files: dict[str, bytes], meta: dict) -> None:
    """A bundle of an older format (no manifest): refused; a changed or unsafe model file is named first."""
    data = files.get(MODEL_FILE)
    if data is not None:
        if _digest(data) != meta.get("model_sha256"):
            raise UsradError(f"Model bundle {d} was modified after it was written; refusing to load it", [Problem(
                f"SHA-256 {_digest(data)} does not match {meta.get('model_sha256')} recorded in {META_FILE}",
                file=str(d / MODEL_FILE))])
        _check_types(d, data)
    raise UsradError(f"Model bundle {d} was written by an older usrad (format {meta.get('format')!r}, without "
                     f"{MANIFEST_FILE}): its metadata cannot be checked; {REBUILD}",
                     [Problem(f"format {meta.get('format')!r}, expected {FORMAT!r}", column="format",
                              file=str(d / META_FILE))])


def _verified(directory) -> tuple[Path, dict, dict[str, bytes]]:
    """``(folder, metadata, {file name: bytes})`` of a bundle whose every file matches its manifest and whose
    metadata passes :func:`check_metadata`; UsradError otherwise."""
    d = bundle_folder(directory)
    files, problems = _read_folder(d)
    meta_path = d / META_FILE
    named = {p.file for p in problems}
    if MANIFEST_FILE not in files and str(d / MANIFEST_FILE) not in named and str(meta_path) not in named:
        if META_FILE not in files:
            raise UsradError(f"Model bundle not found: {d}", [Problem(f"the folder has no {META_FILE}",
                                                                      file=str(meta_path))])
        meta = parse_meta(files[META_FILE], meta_path)
        if meta.get("format") in OLD_FORMATS:
            _refuse_legacy(d, files, meta)
        if meta.get("format") != FORMAT:
            raise UsradError(f"Unknown model bundle format in {meta_path}", [Problem(
                f"format {meta.get('format')!r}, expected {FORMAT!r}", column="format", file=str(meta_path))])
        problems.append(Problem(f"{MANIFEST_FILE} is missing (its writing was interrupted, or it was deleted)",
                                file=str(d / MANIFEST_FILE)))
    elif MANIFEST_FILE in files:
        problems += _manifest_problems(d, files)
    if problems:
        raise UsradError(f"Model bundle {d} was modified after it was written (or is incomplete); refusing to load "
                         f"it; {REBUILD}", problems)
    meta = parse_meta(files.get(META_FILE), meta_path)
    if "format" in meta and meta["format"] != FORMAT:
        raise UsradError(f"Unknown model bundle format in {meta_path}", [Problem(
            f"format {meta.get('format')!r}, expected {FORMAT!r}", column="format", file=str(meta_path))])
    problems = check_metadata(meta, meta_path)
    model_file = meta.get("model_file")
    if not problems and model_file not in files:
        problems.append(Problem(f"names {model_file!r}, which the bundle does not hold", column="model_file",
                                file=str(meta_path)))
    elif not problems and _digest(files[model_file]) != meta["model_sha256"]:
        problems.append(Problem(f"does not match the SHA-256 of {model_file}", column="model_sha256",
                                file=str(meta_path)))
    if problems:
        raise UsradError(f"Model bundle {d} has invalid metadata; refusing to load it", problems)
    return d, meta, files


def read_bundle_meta(directory) -> dict:
    """The checked metadata of a bundle (see :func:`load_bundle`), without loading the model."""
    return _verified(directory)[1]


def _check_types(d: Path, data: bytes) -> list[str]:
    """The types skops itself does not trust in the model file; UsradError if any is not in TRUSTED_TYPES."""
    try:
        present = types_in(data)  # stricter than skops' default: sklearn types must be listed too
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:  # noqa: BLE001 - a corrupt file is the user's problem, reported as such
        raise UsradError(f"Model bundle {d} cannot be read", [Problem(
            f"{MODEL_FILE} is not a skops file ({type(exc).__name__}: {exc})", file=str(d / MODEL_FILE))]) from None
    refused = sorted({t for t in present + untrusted if t not in TRUSTED_TYPES})
    if refused:
        raise UsradError(f"Model bundle {d} contains types usrad does not trust; refusing to load it",
                         [Problem(f"untrusted type {t}", file=str(d / MODEL_FILE)) for t in refused])
    return untrusted


def load_bundle(directory):
    """``(model, metadata)`` of a bundle folder (or of its ``bundle.json``): UsradError if any file was changed,
    is missing or extra, the metadata is invalid, the model holds an untrusted type or is not a fitted
    classification Pipeline."""
    from sklearn.pipeline import Pipeline

    d, meta, files = _verified(directory)
    data = files[meta["model_file"]]
    untrusted = _check_types(d, data)
    try:
        model = sio.loads(data, trusted=list(untrusted))
    except Exception as exc:  # noqa: BLE001 - a corrupt file is the user's problem, reported as such
        raise UsradError(f"Model bundle {d} cannot be read", [Problem(
            f"skops cannot load it ({type(exc).__name__}: {exc})", file=str(d / meta["model_file"]))]) from None
    if not (isinstance(model, Pipeline) and hasattr(model, "predict_proba")):
        raise UsradError(f"Model bundle {d} does not hold a usrad model", [Problem(
            f"holds a {type(model).__name__}, not a fitted scikit-learn Pipeline with predict_proba",
            file=str(d / meta["model_file"]))])
    return model, meta
