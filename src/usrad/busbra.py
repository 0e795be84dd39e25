"""The BUS-BRA dataset (1,875 real breast-US images with lesion masks, 1,064 patients) as a usrad cohort.

BUS-BRA (Gómez-Flores et al., Medical Physics 2023) has no lymph-node labels; it is the real-pixel cohort
for the generic binary task ``malignancy`` (malignant vs benign). :func:`write_manifest` turns its
``bus_data.csv`` into a usrad manifest:

* ``patient_id`` = ``Case`` (several patients have two views, ``-l``/``-r``: they stay together in every
  split, CV fold and bootstrap), ``image_id`` = ``ID``;
* ``image``/``mask`` = absolute paths of ``Images/bus_*.png`` / ``Masks/mask_*.png`` (masks are 0/255);
* ``pixel_spacing_mm``: the PNG files carry no pixel size, so one nominal spacing is assumed for every
  image (default 0.1 mm, typical of a 10–14 MHz linear probe at 3–5 cm depth on these 240–579 px wide
  exports). Shape features in mm and the LoG sigmas (in mm) scale with this choice; the same value for
  every image keeps them comparable between images;
* ``device`` (scanner, for external validation by device), ``birads`` (the radiologist's BI-RADS
  category: a clinical-like predictor, never part of the radiomics-only models), ``histology``,
  ``pathology`` (benign/malignant) and ``malignant`` (0/1, the outcome of task ``malignancy``).

``n_images`` picks a fixed, reproducible subset of whole patients (stratified by pathology) for tests and
quick runs.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from .atomic import write_tsv
from .errors import Problem, UsradError
from .imageio import read_image, read_mask

COLUMNS = ["patient_id", "image_id", "image", "mask", "pixel_spacing_mm", "device", "birads", "histology",
           "pathology", "malignant"]
DEFAULT_SPACING_MM = 0.1


def _rank(key: str, seed: int) -> str:
    return hashlib.sha256(f"{int(seed)}:{key}".encode("utf-8")).hexdigest()


def read_busbra(busbra_dir, pixel_spacing_mm: float = DEFAULT_SPACING_MM) -> pd.DataFrame:
    """The whole dataset as a manifest frame (see module doc); UsradError if the folder is incomplete."""
    root = Path(busbra_dir).resolve()
    table = root / "bus_data.csv"
    if not table.is_file():
        raise UsradError("BUS-BRA dataset not found", [Problem(
            "bus_data.csv is missing: set busbra_dir to the BUS-BRA folder (with Images/, Masks/, bus_data.csv)",
            file=str(table))])
    meta = pd.read_csv(table, dtype={"ID": str, "Case": str, "BIRADS": str})
    missing_cols = [c for c in ("ID", "Case", "Pathology", "BIRADS", "Device", "Histology") if c not in meta.columns]
    if missing_cols:
        raise UsradError("BUS-BRA table has an unexpected layout",
                         [Problem("column is missing", column=c, file=str(table)) for c in missing_cols])
    df = pd.DataFrame({
        "patient_id": meta["Case"].str.strip(),
        "image_id": meta["ID"].str.strip(),
        "image": [str(root / "Images" / f"{i}.png") for i in meta["ID"].str.strip()],
        "mask": [str(root / "Masks" / f"{i.replace('bus_', 'mask_', 1)}.png") for i in meta["ID"].str.strip()],
        "pixel_spacing_mm": float(pixel_spacing_mm),
        "device": meta["Device"].str.strip(),
        "birads": meta["BIRADS"].str.strip(),
        "histology": meta["Histology"].str.strip(),
        "pathology": meta["Pathology"].str.strip(),
    })
    df["malignant"] = (df["pathology"] == "malignant").astype(int)
    problems = [Problem("file not found", patient=r.patient_id, column=col, file=getattr(r, col))
                for r in df.itertuples() for col in ("image", "mask") if not Path(getattr(r, col)).is_file()]
    if problems:
        raise UsradError(f"BUS-BRA folder {root} is incomplete", problems)
    return df[COLUMNS]


def subset(df: pd.DataFrame, n_images: int | None, seed: int) -> pd.DataFrame:
    """About ``n_images`` images made of whole patients, the same share of malignant patients as the dataset.

    Patients are ranked by a hash of (seed, patient_id) within each pathology and taken in that order until
    each pathology has its share of images, so the subset depends only on seed and n_images.
    """
    if n_images is None or n_images >= len(df):
        return df
    per_patient = df.groupby("patient_id").agg(images=("image_id", "size"), malignant=("malignant", "max"))
    per_patient["rank"] = [_rank(p, seed) for p in per_patient.index]
    keep: list[str] = []
    for _, group in per_patient.groupby("malignant"):
        quota = round(n_images * group["images"].sum() / len(df))
        taken = 0
        for pid, row in group.sort_values("rank").iterrows():
            if taken >= quota:
                break
            keep.append(pid)
            taken += int(row["images"])
    return df[df["patient_id"].isin(set(keep))]


def write_manifest(busbra_dir, out, n_images: int | None = None, seed: int = 0,
                   pixel_spacing_mm: float = DEFAULT_SPACING_MM) -> pd.DataFrame:
    """Write the BUS-BRA manifest (TSV, sorted by patient and image) and return it."""
    df = subset(read_busbra(busbra_dir, pixel_spacing_mm), n_images, seed)
    df = df.sort_values(["patient_id", "image_id"], key=lambda s: s.str.zfill(8) if s.name == "patient_id" else s,
                        kind="mergesort").reset_index(drop=True)
    write_tsv(df, out)
    return df


# ------------------------------------------------------------------------ burned-in annotations (leakage)
def annotation_pixels(grey, tophat_size: int = 5, contrast: float = 60.0, min_grey: float = 140.0):
    """Boolean map of burned-in annotation pixels (calliper crosses, text) of an 8-bit B-mode image.

    Annotations are thin, bright overlays: a white top-hat (grey − grey opening with a ``tophat_size``
    square) above ``contrast`` on pixels brighter than ``min_grey``, dilated by one pixel. Bright speckle
    gives some false positives; the map is a probe for leakage, not a segmentation.
    """
    import numpy as np
    from scipy import ndimage

    a = np.asarray(grey, dtype=float)
    tophat = a - ndimage.grey_opening(a, size=(tophat_size, tophat_size))
    return ndimage.binary_dilation((tophat > contrast) & (a > min_grey))


def inpaint_annotations(grey, annotations, size: int = 7):
    """The image with annotation pixels replaced by the median of their neighbourhood (marks removed)."""
    import numpy as np
    from scipy import ndimage

    a = np.asarray(grey, dtype=float)
    return np.where(annotations, ndimage.median_filter(a, size=size), a)


def annotation_counts(df: pd.DataFrame, ring_px: int = 5) -> pd.DataFrame:
    """Per image: annotation pixels inside the mask, in a ``ring_px`` ring around it, and elsewhere."""
    import SimpleITK as sitk
    from scipy import ndimage

    rows = []
    for r in df.itertuples():
        image = read_image(r.image, r.pixel_spacing_mm)
        grey = sitk.GetArrayFromImage(image)
        mask = sitk.GetArrayFromImage(read_mask(r.mask, image)).astype(bool)
        ann = annotation_pixels(grey)
        ring = ndimage.binary_dilation(mask, iterations=ring_px) & ~mask
        rows.append({"patient_id": r.patient_id, "image_id": r.image_id,
                     "inside": int((ann & mask).sum()), "ring": int((ann & ring).sum()),
                     "outside": int((ann & ~mask & ~ring).sum()), "mask_pixels": int(mask.sum())})
    return pd.DataFrame(rows)
