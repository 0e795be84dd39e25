"""The simulated cohort on disk: per-patient generators, the NRRD files, the manifest and the ground truth.

Every patient draws from its own ``SeedSequence(seed).spawn`` child: patient ``i`` is the same whatever
``n_patients`` is, and the same seed gives byte-identical files. :func:`simulate_cohort` builds the cohort in a
temporary folder next to ``out_dir`` and moves it into place at the end (manifest last).
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from ..errors import Problem, UsradError
from .latent import MODEL, GenerativeModel, draw_latents
from .render import render_patient

log = logging.getLogger("usrad.simulate")  # the package's logger, as before the split into modules

MANIFEST_COLUMNS = [
    "patient_id", "image", "mask", "mask_reader2", "device", "age", "us_size_mm", "us_node_suspicious",
    "birads", "er", "pr", "her2", "ki67", "grade", "histology", "subtype", "n_positive_nodes",
]
GROUND_TRUTH_COLUMNS = [
    "patient_id", "z_aggressiveness", "margin_irregularity", "heterogeneity", "echogenicity_loss",
    "size_latent", "size_mm", "eta_metastasis", "eta_burden", "oracle_p_metastasis", "oracle_p_burden",
    "pixel_spacing_mm", "lesion_depth_mm",
]
DEFAULT_SEED = 20240611


def _patient_rngs(seed: int, index: int):
    """(latent rng, image rng) of patient ``index``: independent of cohort size and of chunking."""
    child = np.random.SeedSequence(seed, spawn_key=(index,))
    lat, img = child.spawn(2)
    return np.random.default_rng(lat), np.random.default_rng(img)


def simulate_patient(seed: int, index: int, model: GenerativeModel = MODEL, device_effect: float = 1.0):
    """Latents/clinical row and rendered images of patient ``index`` (0-based); ``device_effect`` scales the
    difference between the two devices (:func:`~usrad.simulate.render.device_settings`; 1.0: the demo cohort)."""
    rng_lat, rng_img = _patient_rngs(seed, index)
    row = draw_latents(rng_lat, 1, model).iloc[0].to_dict()
    row["patient_id"] = patient_id(index)
    return row, render_patient(rng_img, row, device_effect=device_effect)


def patient_id(index: int) -> str:
    return f"SIM{index + 1:04d}"


def _write_nrrd(arr: np.ndarray, spacing: float, path: Path) -> None:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((spacing, spacing))
    img.SetOrigin((0.0, 0.0))
    sitk.WriteImage(img, str(path), True)


def _out_dir_problems(out_dir: Path) -> list[Problem]:
    """Why the cohort cannot be written to ``out_dir``: a file there or on the way, or no write permission."""
    if out_dir.exists() and not out_dir.is_dir():
        return [Problem("the output folder is an existing file; give a folder", file=str(out_dir))]
    anc = out_dir.parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        return [Problem(f"the output folder cannot be created: {anc} is a file", file=str(out_dir))]
    if not os.access(anc, os.W_OK | os.X_OK) or (out_dir.is_dir() and not os.access(out_dir, os.W_OK | os.X_OK)):
        return [Problem("the output folder is not writable", file=str(out_dir))]
    if out_dir.is_dir() and any(out_dir.iterdir()) and not _is_simulated_cohort(out_dir):
        # its images/ and masks/ would be replaced: never do that to a folder that is not a simulated cohort
        names = sorted(os.listdir(out_dir))
        return [Problem(f"the output folder is not empty and holds no simulated cohort ({', '.join(names[:5])}"
                        f"{', …' if len(names) > 5 else ''}); give a new or empty folder", file=str(out_dir))]
    return []


def _is_simulated_cohort(folder: Path) -> bool:
    """An earlier output of :func:`simulate_cohort`: its ground truth, or images/masks of simulated patients only."""
    if (folder / "ground_truth.tsv").is_file():
        return True
    subs = [folder / n for n in ("images", "masks") if (folder / n).exists()]
    pattern = re.compile(r"SIM\d+(_r\d+)?\.nrrd")
    return bool(subs) and all(s.is_dir() and all(pattern.fullmatch(n) for n in os.listdir(s)) for s in subs)


def simulate_cohort(out_dir, n_patients: int = 671, seed: int = DEFAULT_SEED, progress: bool = True,
                    n_jobs: int = 1, device_effect: float = 1.0, peritumoral: float = 0.0) -> Path:
    """Write the simulated cohort to ``out_dir`` and return the manifest path.

    Files: ``manifest.tsv`` (paths relative to ``out_dir``), ``images/{pid}.nrrd``,
    ``masks/{pid}_r1.nrrd``, ``masks/{pid}_r2.nrrd``, ``ground_truth.tsv``. The cohort is built in a
    temporary folder next to ``out_dir`` and moved into place at the end (manifest last), so an
    interrupted run never leaves a half-written cohort behind a manifest.

    ``n_jobs`` > 1 renders patients in that many processes (joblib). Each patient draws from its own seeded
    generators and is written by the process that renders it, so the files are byte-identical for any
    ``n_jobs``.

    ``device_effect`` (a number >= 0) scales the differences between the two simulated devices in PSF width,
    dynamic range and gain: 1.0 (default) is the demo cohort, byte for byte; 0 makes the devices identical; 4 is
    a strong, known batch effect (docs/simulation.md). The device draw itself never depends on it.

    ``peritumoral`` (a number >= 0; 0, the default, is off and leaves the cohort unchanged) is the weight of a
    peritumoral-reaction latent on the N+ logit; the latent shows as an echogenic, distorted rim around the lesion
    (outside the mask: only peritumoral rings see it) and is written to ``ground_truth.tsv`` (column
    ``peritumoral``); the oracle probabilities include it.
    """
    problems = []
    if not isinstance(n_patients, (int, np.integer)) or isinstance(n_patients, bool) or n_patients < 1:
        problems.append(Problem(f"n_patients must be a positive integer, got {n_patients!r}", column="n_patients"))
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        problems.append(Problem(f"seed must be a non-negative integer, got {seed!r}", column="seed"))
    for name, value in (("device_effect", device_effect), ("peritumoral", peritumoral)):
        if (not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool)
                or not np.isfinite(value) or value < 0):
            problems.append(Problem(f"{name} must be a finite number >= 0, got {value!r}", column=name))
    out_dir = Path(out_dir)
    problems += _out_dir_problems(out_dir)
    if problems:
        raise UsradError("Cannot simulate the demo cohort", problems)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        rows = []
        step = max(1, n_patients // 10)
        model = replace(MODEL, peritumoral=float(peritumoral))
        for row in _render_all(seed, n_patients, tmp, n_jobs, float(device_effect), model):
            rows.append(row)
            if progress and (len(rows) % step == 0 or len(rows) == n_patients):
                log.info("simulated %d/%d patients", len(rows), n_patients)
        df = pd.DataFrame(rows)
        truth = GROUND_TRUTH_COLUMNS + (["peritumoral"] if model.peritumoral else [])
        df[truth].to_csv(tmp / "ground_truth.tsv", sep="\t", index=False, float_format="%.6f")
        df[MANIFEST_COLUMNS].to_csv(tmp / "manifest.tsv", sep="\t", index=False)
        _move_into_place(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir / "manifest.tsv"


def _render_and_write(seed: int, index: int, folder: Path, device_effect: float = 1.0,
                      model: GenerativeModel = MODEL) -> dict:
    """Render patient ``index``, write its image and reader masks under ``folder``, return its manifest row."""
    row, rend = simulate_patient(seed, index, model, device_effect)
    pid = row["patient_id"]
    _write_nrrd(rend["image"], rend["spacing"], folder / "images" / f"{pid}.nrrd")
    _write_nrrd(rend["mask_r1"], rend["spacing"], folder / "masks" / f"{pid}_r1.nrrd")
    _write_nrrd(rend["mask_r2"], rend["spacing"], folder / "masks" / f"{pid}_r2.nrrd")
    row.update(image=f"images/{pid}.nrrd", mask=f"masks/{pid}_r1.nrrd",
               mask_reader2=f"masks/{pid}_r2.nrrd", device=rend["device"],
               us_size_mm=round(float(row["size_mm"]), 1),
               pixel_spacing_mm=rend["spacing"], lesion_depth_mm=rend["lesion_depth_mm"])
    return row


def _render_chunk(seed: int, indices: range, folder: Path, device_effect: float = 1.0,
                  model: GenerativeModel = MODEL) -> list[dict]:
    return [_render_and_write(seed, i, folder, device_effect, model) for i in indices]


def _render_all(seed: int, n_patients: int, folder: Path, n_jobs: int = 1, device_effect: float = 1.0,
                model: GenerativeModel = MODEL):
    """Manifest rows of patients 0 … n_patients-1 in order, rendered in ``n_jobs`` processes (chunks of patients)."""
    n_jobs = max(1, min(int(n_jobs), n_patients))
    if n_jobs == 1:
        for i in range(n_patients):
            yield _render_and_write(seed, i, folder, device_effect, model)
        return
    from joblib import Parallel, delayed

    size = max(1, min(16, n_patients // (4 * n_jobs)))  # ~0.2 s per patient: chunks amortise the dispatch
    chunks = [range(i, min(i + size, n_patients)) for i in range(0, n_patients, size)]
    parallel = Parallel(n_jobs=n_jobs, return_as="generator")  # ordered: chunk k is yielded k-th
    for rows in parallel(delayed(_render_chunk)(seed, c, folder, device_effect, model) for c in chunks):
        yield from rows


_ENTRIES = ("images", "masks", "ground_truth.tsv", "manifest.tsv")  # manifest last: it marks completion


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    if not out_dir.exists() or (out_dir.is_dir() and not any(out_dir.iterdir())):
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
        return
    old = out_dir / "manifest.tsv"
    if old.exists():
        old.unlink()
    for name in _ENTRIES:
        dst = out_dir / name
        if dst.is_dir():
            shutil.rmtree(dst)
        os.replace(tmp / name, dst)


__all__ = ["MANIFEST_COLUMNS", "GROUND_TRUTH_COLUMNS", "DEFAULT_SEED", "simulate_patient", "simulate_cohort",
           "patient_id"]
