"""The per-image quality-control flags of the QC gallery (:func:`qc_flags`): border-touching masks, reader discordance,
outlier features and duplicate images, one row per image with the numbers behind each flag.

Rules (thresholds are the module constants below; one flag = one 0/1 column of ``qc_flags.tsv``):

* ``flag_border`` — the lesion mask of reader 1 or reader 2 has a pixel in the first or last row or column of the
  image (:func:`usrad.manifest.images.touches_border`, the test behind the validation report's warning): the lesion
  may be cut off, so its shape features describe only the visible part. Numbers: ``border_r1``, ``border_r2``.
* ``flag_discordant`` — the Dice coefficient of the two readers' masks is below :data:`DICE_MIN` (0.8). The flag is
  the Dice of the masks, not a feature-based distance, because it is what the gallery shows (two contours that do
  not overlap) and it does not depend on which features happen to be sensitive to the mask edge; the feature-based
  view is given as a number, ``reader_feature_outliers``: how many features differ between the readers by more
  than :data:`OUTLIER_Z` cohort robust standard deviations (1.4826 x MAD of reader 1's values), i.e. the features
  where this image pulls the inter-reader ICC down. Without a second reader both are empty and the flag is 0.
* ``flag_outlier`` — at least :data:`OUTLIER_FRACTION` (5 %) of the reader-1 features of the image have a robust
  z-score ``|x - median| / (1.4826 MAD)`` above :data:`OUTLIER_Z` (5) over the cohort (features with MAD 0 are not
  scored). Numbers: ``n_outlier_features`` of ``n_features_scored``. Heavy-tailed features (wavelet, LoG) give most
  images a few such values; a segmentation error moves many at once.
* ``flag_duplicate`` — the image's decoded pixels are identical to another image's of the cohort
  (:func:`usrad.imageio.pixel_digest`, as validation's ``pixel_hash``); ``duplicate_of`` names the other image(s).

With peritumoral regions (``extraction.regions``, recorded in the feature table's metadata), ``ring_clipped`` is
the largest clipped fraction of reader 1's rings of the image (:mod:`usrad.extract.regions`: the share of the ring
cut by the image edge or the black background; 0 = none). It is a number, not a flag: a clipped ring is extracted,
and the column is absent when there are no regions.

``n_flags`` counts the flags and ``flagged`` is 1 when any is set; :func:`gallery_order` puts the images with the
most flags first, then the rest by patient and image id.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import imageio
from ..extract.regions import RING, RegionSpec, region_arrays
from ..features import feature_columns
from ..manifest.images import touches_border

DICE_MIN = 0.8  # Dice of the two readers' masks below this: discordant (inter-reader Dice is typically 0.85-0.95)
OUTLIER_Z = 5.0  # |robust z| above this: an outlying feature value
OUTLIER_FRACTION = 0.05  # share of the scored features of an image that must be outlying to flag it
MAD_SCALE = 1.4826  # MAD -> standard deviation of a normal distribution
FLAGS = ("border", "discordant", "outlier", "duplicate")
#: The short words of each flag in the gallery's captions.
FLAG_WORDS = {"border": "border", "discordant": "Dice", "outlier": "outliers", "duplicate": "dup of"}
COLUMNS = ["patient_id", "image_id", "flagged", "n_flags"] + [f"flag_{f}" for f in FLAGS] + [
    "border_r1", "border_r2", "dice", "reader_feature_outliers", "n_outlier_features", "n_features_scored",
    "duplicate_of", "page"]


def read_case(row):
    """One cohort row's image (a SimpleITK image) and its reader-1 and reader-2 masks (bool arrays; reader 2 None
    when the row has none), read with :mod:`usrad.imageio`."""
    spacing = row.get("pixel_spacing_mm", np.nan)
    image = imageio.read_image(row["image"], None if pd.isna(spacing) else float(spacing))
    masks = [_mask_array(row[c], image) if _given(row, c) else None for c in ("mask", "mask_reader2")]
    return image, masks[0], masks[1]


def _mask_array(path, image) -> np.ndarray:
    """A mask as a bool array that owns its memory (a view of a SimpleITK image dies with the image)."""
    mask = imageio.read_mask(path, image)
    return np.array(imageio.pixels(mask), dtype=bool)


def _given(row, column: str) -> bool:
    value = row.get(column, "")
    return isinstance(value, str) and value != ""


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient 2|A∩B| / (|A| + |B|) of two boolean masks."""
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int(np.logical_and(a, b).sum()) / total if total else float("nan")


def ring_clipped(image, lesion: np.ndarray, spec: RegionSpec) -> float:
    """The largest clipped fraction of the rings of ``spec`` around a bool lesion mask of a SimpleITK image."""
    regions = region_arrays(imageio.pixels(image), lesion, tuple(image.GetSpacing())[::-1], spec)
    return max(r.clipped_fraction for r in regions if r.name.startswith(RING))


def _mask_measures(cohort: pd.DataFrame, log=None, spec: RegionSpec | None = None) -> pd.DataFrame:
    """Border contact, Dice, pixel digest and (with rings) the rings' clipping of every image (read once each)."""
    rows = []
    for k, (_, row) in enumerate(cohort.iterrows(), start=1):
        image, m1, m2 = read_case(row)
        rows.append({"image_id": row["image_id"], "border_r1": int(touches_border(m1)),
                     "border_r2": int(touches_border(m2)) if m2 is not None else 0,
                     "dice": dice(m1, m2) if m2 is not None else np.nan, "digest": imageio.pixel_digest(image)})
        if spec is not None and spec.on:
            rows[-1]["ring_clipped"] = ring_clipped(image, m1, spec)
        if log is not None and (k % 100 == 0 or k == len(cohort)):
            log.info("QC flags: read %d of %d images", k, len(cohort))
    extra = ["ring_clipped"] if spec is not None and spec.on else []
    return pd.DataFrame(rows, columns=["image_id", "border_r1", "border_r2", "dice", "digest", *extra])


def _robust_scale(values: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    median = values.median()
    return median, MAD_SCALE * (values - median).abs().median()


def outlier_counts(features: pd.DataFrame) -> pd.DataFrame:
    """Per image (index ``image_id``): ``n_outlier_features`` (reader-1 features with robust |z| >
    :data:`OUTLIER_Z`), ``n_features_scored`` (features with MAD > 0) and ``reader_feature_outliers`` (features
    whose reader-2 minus reader-1 difference exceeds :data:`OUTLIER_Z` robust SDs of reader 1; NaN without r2)."""
    cols = feature_columns(features)
    r1 = features[features["reader"] == "r1"].set_index("image_id")[cols].sort_index()
    median, scale = _robust_scale(r1)
    scored = scale.index[(scale > 0) & np.isfinite(scale)]
    z = (r1[scored] - median[scored]).abs() / scale[scored]
    out = pd.DataFrame({"n_outlier_features": (z > OUTLIER_Z).sum(axis=1).astype(int),
                        "n_features_scored": len(scored)}, index=r1.index)
    r2 = features[features["reader"] == "r2"].set_index("image_id")[cols]
    both = r1.index.intersection(r2.index)
    diff = (r2.loc[both, scored] - r1.loc[both, scored]).abs() / scale[scored]
    out["reader_feature_outliers"] = (diff > OUTLIER_Z).sum(axis=1).reindex(out.index)
    return out


def _duplicates(ids: pd.Series, digests: pd.Series) -> pd.Series:
    """For each image, the other image ids with the same pixel digest (comma-separated; '' when none)."""
    groups = ids.groupby(digests.values).agg(list)
    members = {d: sorted(v) for d, v in groups.items()}
    return pd.Series([",".join(i for i in members[d] if i != own) for own, d in zip(ids, digests)], index=ids.index)


def qc_flags(cohort: pd.DataFrame, features: pd.DataFrame, log=None, regions: dict | None = None) -> pd.DataFrame:
    """The flags table (columns :data:`COLUMNS`, then ``ring_clipped`` with rings, one row per cohort image, in
    gallery order, ``page`` empty until the gallery is drawn) from the cohort table, the feature table and its
    ``regions`` metadata (rules: module docstring)."""
    spec = RegionSpec.from_config(regions)
    measures = _mask_measures(cohort, log, spec)
    out = cohort[["patient_id", "image_id"]].reset_index(drop=True).copy()
    out = out.merge(measures, on="image_id", how="left")
    out = out.join(outlier_counts(features), on="image_id")
    out["n_features_scored"] = out["n_features_scored"].fillna(0).astype(int)
    out["flag_border"] = ((out["border_r1"] == 1) | (out["border_r2"] == 1)).astype(int)
    out["flag_discordant"] = (out["dice"] < DICE_MIN).astype(int)
    needed = np.ceil(OUTLIER_FRACTION * out["n_features_scored"]).clip(lower=1)
    out["flag_outlier"] = ((out["n_features_scored"] > 0) & (out["n_outlier_features"] >= needed)).astype(int)
    out["duplicate_of"] = _duplicates(out["image_id"], out["digest"])
    out["flag_duplicate"] = (out["duplicate_of"] != "").astype(int)
    out["n_flags"] = out[[f"flag_{f}" for f in FLAGS]].sum(axis=1).astype(int)
    out["flagged"] = (out["n_flags"] > 0).astype(int)
    out["page"] = np.nan
    return gallery_order(out)[COLUMNS + (["ring_clipped"] if spec.on else [])]


def gallery_order(flags: pd.DataFrame) -> pd.DataFrame:
    """Most flags first, then by patient and image id (a stable order for the unflagged rest)."""
    order = flags.assign(_neg=-flags["n_flags"]).sort_values(["_neg", "patient_id", "image_id"], kind="mergesort")
    return order.drop(columns="_neg").reset_index(drop=True)


def flag_words(row) -> list[str]:
    """The caption words of one flags row, e.g. ``['border r1', 'Dice 0.62', 'outliers 45', 'dup of SIM0002']``."""
    words = []
    if row["flag_border"]:
        which = [r for r in ("r1", "r2") if row[f"border_{r}"]]
        words.append("border " + "+".join(which))
    if row["flag_discordant"]:
        words.append(f"{FLAG_WORDS['discordant']} {row['dice']:.2f}")
    if row["flag_outlier"]:
        words.append(f"{FLAG_WORDS['outlier']} {int(row['n_outlier_features'])}")
    if row["flag_duplicate"]:
        words.append(f"{FLAG_WORDS['duplicate']} {row['duplicate_of']}")
    return words
