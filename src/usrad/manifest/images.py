"""The images and masks of a manifest: read them (in threads), check each lesion against the PyRadiomics
minimum ROI, and find images with identical pixels."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .. import imageio
from ..config_checks import region_type_problems, roi_size_ok
from ..errors import Problem, UsradError
from .reading import PATH_COLUMNS

REPO_ROOT = Path(__file__).resolve().parents[3]
_MAX_WORKERS = 4


# --------------------------------------------------------------------------------------------------
# The PyRadiomics parameters

def params_file(value) -> Path:
    """The PyRadiomics params file of the config: as given (relative to the working directory), else relative
    to the repository (the shipped ``config/radiomics.yaml``)."""
    path = Path(os.path.expanduser(str(value)))
    if path.is_absolute() or path.exists():
        return path
    return REPO_ROOT / path if (REPO_ROOT / path).exists() else path


def roi_limits(cfg: dict) -> tuple[dict, list[Problem]]:
    """Minimum ROI of the configured PyRadiomics parameters: ``{"size": int | None, "dims": int, "params": str}``
    (empty when the config names no params file) and the problems reading it."""
    value = cfg.get("radiomics_params")
    if not value:
        return {}, []
    path = params_file(value)
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, [Problem("PyRadiomics parameter file (config key 'radiomics_params') not found", file=str(path))]
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        return {}, [Problem(f"PyRadiomics parameter file (config key 'radiomics_params') cannot be read as YAML ({reason})",
                            file=str(path))]
    setting = params.get("setting") if isinstance(params, dict) else None
    setting = setting if isinstance(setting, dict) else {}
    problems = _region_type_problems(cfg, params, path)
    size, dims = setting.get("minimumROISize"), setting.get("minimumROIDimensions", 2)
    size = int(size) if isinstance(size, (int, float)) and not isinstance(size, bool) and size > 0 else None
    dims = int(dims) if isinstance(dims, (int, float)) and not isinstance(dims, bool) and 1 <= dims <= 2 else 2
    return {"size": size, "dims": dims, "params": str(path)}, problems


def _region_type_problems(cfg: dict, params, path: Path) -> list[Problem]:
    """:func:`usrad.config_checks.region_type_problems` of the config's regions and the params' ``imageType``
    (PyRadiomics enables ``Original`` alone when it is absent)."""
    enabled = params.get("imageType") if isinstance(params, dict) else None
    enabled = list(enabled) if isinstance(enabled, dict) else ["Original"]
    why = region_type_problems((cfg.get("extraction") or {}).get("regions"), enabled)
    return [Problem(w, file=str(path)) for w in why]


# --------------------------------------------------------------------------------------------------
# Images and masks

def _mask_findings(arr: np.ndarray, limits: dict) -> tuple[list[str], list[str]]:
    """(errors, warnings) about the lesion of a 0/1 mask array: too small for PyRadiomics, touching the border."""
    errors, warnings = [], []
    n = int(arr.sum())
    if limits:
        extent = sum(int(np.any(arr, axis=1 - a).sum() > 1) for a in (0, 1))  # axes along which the ROI spans > 1 px
        if limits["size"] is not None and not roi_size_ok(n, limits["size"]):
            errors.append(f"lesion has {n} pixels, not more than minimumROISize {limits['size']} of the PyRadiomics "
                          f"parameters ({limits['params']}; PyRadiomics needs more): too small for texture features; "
                          "check the mask")
        elif extent < limits["dims"]:
            errors.append(f"lesion ({n} pixels) spans only {extent} dimension(s); PyRadiomics needs minimumROIDimensions "
                          f"{limits['dims']} (a line or a single pixel is not a lesion outline)")
    if touches_border(arr):
        warnings.append("lesion mask touches the image border: the lesion may be cut off, so its shape features "
                        "describe only the visible part")
    return errors, warnings


def touches_border(arr: np.ndarray) -> bool:
    """Whether a 0/1 mask array has a lesion pixel in the first or last row or column of the image."""
    return bool(arr[0].any() or arr[-1].any() or arr[:, 0].any() or arr[:, -1].any())


def _check_images(row: int, patient: str, paths: dict[str, str], spacing: float,
                  limits: dict | None = None) -> tuple[list[Problem], list[Problem], str]:
    """Read image and masks of one row; (problems, warnings, pixel digest of the image or ''), the problems and
    warnings each naming row/patient/column/file."""
    def tag(problems, column):
        return [replace(p, row=row, patient=patient, column=p.column or column) for p in problems]

    problems, warnings = [], []
    ref = None
    try:
        if paths["image"]:  # an empty cell (or no image column) is reported by the caller
            ref = imageio.read_image(paths["image"], None if np.isnan(spacing) else spacing)
    except UsradError as err:
        problems += tag(err.problems, "image")
        ref = None
        if any(p.column == imageio.SPACING_COLUMN for p in err.problems):
            try:  # the pixels may be fine: check the masks against them with a placeholder spacing
                ref = imageio.read_image(paths["image"], 1.0)
                ref.SetSpacing((1.0, 1.0))
            except UsradError:
                ref = None
    for col in ("mask", "mask_reader2"):
        path = paths.get(col)
        if not path:
            continue
        if ref is None:
            if not os.path.isfile(path):
                problems.append(Problem("file not found", patient=patient, column=col, file=path, row=row))
            continue
        try:
            mask = imageio.read_mask(path, ref)
        except UsradError as err:
            problems += tag([replace(p, column=None) if p.column == imageio.SPACING_COLUMN else p for p in err.problems], col)
            continue
        errors, warns = _mask_findings(imageio.pixels(mask), limits or {})
        problems += [Problem(m, patient=patient, column=col, file=path, row=row) for m in errors]
        warnings += [Problem(m, patient=patient, column=col, file=path, row=row) for m in warns]
    return problems, warnings, imageio.pixel_digest(ref) if ref is not None else ""


def pixel_findings(df: pd.DataFrame, cfg: dict, check_images: bool) -> tuple[list[Problem], list[Problem], list[str]]:
    """Read every image and mask (or, without ``check_images``, check the files exist): problems, warnings and
    the pixel digest of each row's image ('' where it was not read)."""
    limits, problems = roi_limits(cfg) if check_images else ({}, [])
    jobs = [(int(df.at[i, "_row"]), df.at[i, "patient_id"] or None, {c: df.at[i, c] for c in PATH_COLUMNS},
             float(df.at[i, "pixel_spacing_mm"]), limits) for i in df.index]
    warnings: list[Problem] = []
    digests = [""] * len(jobs)
    if check_images:
        workers = max(1, min(_MAX_WORKERS, os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for k, (found, warned, digest) in enumerate(pool.map(lambda j: _check_images(*j), jobs)):  # in row order
                problems += found
                warnings += warned
                digests[k] = digest
    else:
        for row, pid, paths, _, _ in jobs:
            for col, path in paths.items():
                if path and not os.path.isfile(path):
                    problems.append(Problem("file not found", patient=pid, column=col, file=path, row=row))
    return problems, warnings, digests


def duplicate_pixel_findings(df: pd.DataFrame, digests: list[str], labels: dict[str, pd.Series],
                              mfile: str) -> tuple[list[Problem], list[Problem]]:
    """Images with identical pixels in different files: an error when a task labels them differently, else a
    warning (the split keeps their patients together: column ``pixel_hash``)."""
    groups: dict[str, list] = {}
    for idx, digest in zip(df.index, digests):
        if digest:
            groups.setdefault(digest, []).append(idx)
    problems, warnings = [], []
    for idxs in (g for g in groups.values() if len(g) > 1):
        first = idxs[0]
        f_row, f_pid, f_img = int(df.at[first, "_row"]), df.at[first, "patient_id"], df.at[first, "image"]
        for idx in idxs[1:]:
            img, pid, row = df.at[idx, "image"], df.at[idx, "patient_id"], int(df.at[idx, "_row"])
            if os.path.realpath(img) == os.path.realpath(f_img):
                continue  # the same file twice: already refused
            where = f"row {f_row} (patient {f_pid!r}, file {f_img})"
            conflicts = [f"task {t!r} labels this one {int(lab[idx])} and that one {int(lab[first])}"
                         for t, lab in labels.items() if idx in lab.index and first in lab.index and lab[idx] != lab[first]]
            if conflicts:
                problems.append(Problem(f"image has the same pixels as {where}, but {'; '.join(conflicts)}: one image cannot "
                                        "have two labels; find out which is right and remove the other row",
                                        patient=pid or None, column="image", file=img, row=row))
            elif pid == f_pid:
                warnings.append(Problem(f"image has the same pixels as row {f_row} of the same patient (file {f_img}): the "
                                        "image is counted twice", patient=pid or None, column="image", file=img, row=row))
            else:
                warnings.append(Problem(f"image has the same pixels as {where}: probably one image under two patient ids; "
                                        "both patients are kept on the same side of the train/test split",
                                        patient=pid or None, column="image", file=img, row=row))
    return problems, warnings
