"""Writing a bundle (:func:`save_bundle`) and reading it back only when every file matches its manifest and
the metadata and model types are checked (:func:`read_bundle_meta`, :func:`load_bundle`)."""
from __future__ import annotations

import json
from pathlib import Path

import skops.io as sio

from ..atomic import atomic_path, write_text
from ..errors import Problem, UsradError
from .layout import (FORMAT, MANIFEST_FILE, META_FILE, MODEL_FILE, OLD_FORMATS, REBUILD, bundle_folder, manifest_problems,
                     manifest_text, read_folder, sha256_hex)
from .metadata import check_metadata, jsonable, parse_meta
from .trust import TRUSTED_TYPES, check_types, deterministic_zip, types_in


def save_bundle(model, directory, metadata: dict) -> Path:
    """Write ``model.skops``, ``bundle.json`` and, last, ``MANIFEST.sha256`` into ``directory``; returns the
    JSON path. Metadata that :func:`load_bundle` would refuse (a NaN threshold…) is a bug: ValueError here."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / MANIFEST_FILE).unlink(missing_ok=True)  # until the new manifest is written the folder is no bundle
    data = deterministic_zip(sio.dumps(model))
    untrusted = [t for t in types_in(data) if t not in TRUSTED_TYPES]
    if untrusted:  # a bundle we could not load back is a bug: fail at save time, not at use time
        raise TypeError(f"model contains types outside usrad.bundle.TRUSTED_TYPES: {untrusted}")
    meta = dict(jsonable(metadata), format=FORMAT, model_file=MODEL_FILE, model_sha256=sha256_hex(data))
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


# ------------------------------------------------------------------------------------- the loaders
def _refuse_legacy(d: Path, files: dict[str, bytes], meta: dict) -> None:
    """A bundle of an older format (no manifest): refused; a changed or unsafe model file is named first."""
    data = files.get(MODEL_FILE)
    if data is not None:
        if sha256_hex(data) != meta.get("model_sha256"):
            raise UsradError(f"Model bundle {d} was modified after it was written; refusing to load it", [Problem(
                f"SHA-256 {sha256_hex(data)} does not match {meta.get('model_sha256')} recorded in {META_FILE}",
                file=str(d / MODEL_FILE))])
        check_types(d, data)
    raise UsradError(f"Model bundle {d} was written by an older usrad (format {meta.get('format')!r}, without "
                     f"{MANIFEST_FILE}): its metadata cannot be checked; {REBUILD}",
                     [Problem(f"format {meta.get('format')!r}, expected {FORMAT!r}", column="format",
                              file=str(d / META_FILE))])


def _verified(directory) -> tuple[Path, dict, dict[str, bytes]]:
    """``(folder, metadata, {file name: bytes})`` of a bundle whose every file matches its manifest and whose
    metadata passes :func:`check_metadata`; UsradError otherwise."""
    d = bundle_folder(directory)
    files, problems = read_folder(d)
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
        problems += manifest_problems(d, files)
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
    elif not problems and sha256_hex(files[model_file]) != meta["model_sha256"]:
        problems.append(Problem(f"does not match the SHA-256 of {model_file}", column="model_sha256",
                                file=str(meta_path)))
    if problems:
        raise UsradError(f"Model bundle {d} has invalid metadata; refusing to load it", problems)
    return d, meta, files


def read_bundle_meta(directory) -> dict:
    """The checked metadata of a bundle (see :func:`load_bundle`), without loading the model."""
    return _verified(directory)[1]


def load_bundle(directory):
    """``(model, metadata)`` of a bundle folder (or of its ``bundle.json``): UsradError if any file was changed,
    is missing or extra, the metadata is invalid, the model holds an untrusted type or is not a fitted
    classification Pipeline."""
    from sklearn.pipeline import Pipeline

    d, meta, files = _verified(directory)
    data = files[meta["model_file"]]
    untrusted = check_types(d, data)
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
