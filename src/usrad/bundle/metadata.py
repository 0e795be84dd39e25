"""``bundle.json``: what a reader needs without loading the model, made JSON-safe when written, parsed and
checked value by value (:data:`META_SCHEMA`, :func:`check_metadata`) when read."""
from __future__ import annotations

import json
import math
import re

import numpy as np

from ..errors import Problem, UsradError
from .layout import META_FILE, plain_name, sha256_hex


def jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


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
    return None if plain_name(v) else "must be the name of a file inside the bundle folder (no folder, no '..')"


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
    if isinstance(text, str) and isinstance(sha, str) and sha256_hex(text.encode("utf-8")) != sha:
        problems.append(Problem("the PyRadiomics parameter text ('pyradiomics') does not match this SHA-256",
                                column="pyradiomics_params_sha256", file=file))
    return problems
