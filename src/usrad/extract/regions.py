"""Peritumoral regions of a lesion mask: rings of physical widths around it and the lesion plus a ring, clipped to the image and to the imaged tissue.

``extraction.regions`` (:class:`RegionSpec`) names the regions extracted besides the lesion, for every reader's
mask (``r1``, ``r2``, ``p1`` … ``pk``), in the same :meth:`~usrad.extract.extractor.Extractor.extract_many` call
as the lesion (the filtered images are shared):

* ``ring{w}mm`` — the pixels whose physical distance to the lesion is in (0, w] mm: the Euclidean distance of
  pixel centres with the image's pixel spacing (anisotropic allowed; ``scipy.ndimage.distance_transform_edt``
  with ``sampling``), minus the lesion. ``w`` is written without a dot (3 → ``ring3mm``, 2.5 → ``ring2p5mm``).
* ``lesionring{w}mm`` — the lesion plus that ring (``lesion_plus_ring: true``).

**Clipping.** A ring is clipped to the image (pixels beyond the edge do not exist) and to the imaged tissue
(:func:`tissue_mask`): the *background* is the dark pixels (grey level ≤ ``tissue_threshold``) that survive an
opening by a disc of radius :data:`OPENING_PX` pixels (so that dark speckle inside tissue does not count) and
are connected to the image border (the black outside an ultrasound sector); the tissue is the rest, restricted
to its connected component(s) that contain the lesion (annotation text on the background is not tissue). The
lesion always counts as tissue. Each region records its pixel count and its clipped fraction: the share of the
unclipped ring (computed on a padded grid) lost to the edge or the background. A clipped ring is allowed (its
fraction goes to the QC flags, :mod:`usrad.reporting.qc_flags`); a ring left with no more pixels than the
parameters' ``minimumROISize`` is a :class:`~usrad.errors.Problem` (:func:`size_problem`).

**Image types.** A region gets the features of the PyRadiomics image types ``image_types`` (default
``Original``: the unfiltered image) of the parameters, not of every filtered image: the per-mask feature classes
cost about in proportion to a mask's cropped bounding box, three rings of 1, 3 and 5 mm have about five times the
lesion's box, and a filtered image (LoG sigma, wavelet band) costs as much as the original, so rings on all eight
images of ``config/radiomics.yaml`` cost 3.75 times the lesion alone, on the original image 1.51 times (README,
"Peritumoral regions", measured).

A region gets no shape features either: a ring's outline is the lesion's grown by the ring's width (and cut by
the image edge), so its shape says nothing the lesion's does not, and shape2D was 37 % of a ring's cost.

Each region's features are cached per image, base mask, region, tissue rule and image types
(:meth:`RegionSpec.region_sha`).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..config import section_defaults
from ..config_checks import region_type_problems, roi_size_ok
from ..features import LESION, image_type_key, is_shape, region_feature_name

REGIONS_FORMAT = 2  # bump when a rule below changes: it is part of every region's cache key
OPENING_PX = 2  # radius (pixels) of the disc opening the dark pixels before the border-connected ones are background
RING, LESION_RING = "ring", "lesionring"


def width_text(width_mm: float) -> str:
    """A ring width as written in a region name: 3 → ``'3'``, 2.5 → ``'2p5'``."""
    return f"{float(width_mm):g}".replace(".", "p")


def region_name(kind: str, width_mm: float) -> str:
    """``ring3mm`` / ``lesionring3mm`` for ``kind`` :data:`RING` / :data:`LESION_RING`."""
    return f"{kind}{width_text(width_mm)}mm"


@dataclass(frozen=True)
class RegionSpec:
    """The regions extracted besides the lesion (``extraction.regions``); no rings: off."""

    rings_mm: tuple[float, ...]
    lesion_plus_ring: bool
    tissue_threshold: int
    image_types: tuple[str, ...] = ("Original",)

    @classmethod
    def from_config(cls, regions: dict | None) -> RegionSpec:
        """The spec of an ``extraction.regions`` dict (None or ``{}``: off; a key not given: the schema's
        default); widths sorted."""
        regions = {**section_defaults("extraction")["regions"], **(regions or {})}
        return cls(tuple(sorted(float(w) for w in regions["rings_mm"])), bool(regions["lesion_plus_ring"]),
                   int(regions["tissue_threshold"]), tuple(sorted(str(t) for t in regions["image_types"])))

    @property
    def on(self) -> bool:
        return bool(self.rings_mm)

    def regions(self) -> list[tuple[str, str, float]]:
        """``[(name, kind, width_mm)]`` in column order: by width, each ring before its lesion + ring."""
        kinds = (RING, LESION_RING) if self.lesion_plus_ring else (RING,)
        return [(region_name(k, w), k, w) for w in self.rings_mm for k in kinds]

    def names(self) -> list[str]:
        return [name for name, _, _ in self.regions()]

    def settings(self) -> dict:
        """The settings a feature table records (``usrad`` metadata ``regions``)."""
        return {"rings_mm": list(self.rings_mm), "lesion_plus_ring": self.lesion_plus_ring,
                "tissue_threshold": self.tissue_threshold, "image_types": list(self.image_types),
                "opening_px": OPENING_PX, "format": REGIONS_FORMAT, "regions": self.names()}

    def region_sha(self, mask_sha: str, region: str) -> str:
        """The digest standing for ``region``'s mask file (of the base mask ``mask_sha``) in its cache key."""
        blob = json.dumps(["region", REGIONS_FORMAT, mask_sha, region, self.tissue_threshold, OPENING_PX,
                           list(self.image_types)])
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def region_features(self, names: list[str]) -> list[str]:
        """The PyRadiomics features (of the lesion's ``names``) a region gets: those of :attr:`image_types`, no
        shape."""
        return [n for n in names if image_type_key(n) in self.image_types and not is_shape(n)]

    def columns(self, names: list[str]) -> list[str]:
        """The feature columns of a table: the lesion's ``names``, then each region's, prefixed."""
        kept = self.region_features(names)
        return list(names) + [region_feature_name(r, n) for r in self.names() for n in kept]

    def type_problems(self, enabled) -> list[str]:
        """Why :attr:`image_types` cannot be extracted with parameters enabling the image types ``enabled``."""
        return region_type_problems({"rings_mm": self.rings_mm, "image_types": self.image_types}, enabled)

    def row(self, by_region: dict[str, dict[str, float]]) -> dict[str, float]:
        """One feature row from ``{region: features}`` (the lesion's unprefixed), in :meth:`columns` order."""
        out = dict(by_region[LESION])
        for region in self.names():
            out.update({region_feature_name(region, n): v for n, v in by_region[region].items()})
        return out


@dataclass
class RegionMask:
    """One region of one mask: its pixels (bool array), its count and the share of the unclipped region lost."""

    name: str
    pixels: np.ndarray
    n_pixels: int
    clipped_fraction: float


def _disc(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return xx ** 2 + yy ** 2 <= radius ** 2


def tissue_mask(grey: np.ndarray, lesion: np.ndarray, threshold: int) -> np.ndarray:
    """The imaged tissue of an image (rule: module docstring): not the border-connected dark background, the
    component(s) containing the lesion."""
    pad = OPENING_PX + 1  # the dark pixels continue beyond the edge: an opening does not round the image corners
    dark = np.pad(np.asarray(grey) <= threshold, pad, mode="edge")
    dark = ndimage.binary_opening(dark, structure=_disc(OPENING_PX))[pad:-pad, pad:-pad] & ~lesion
    labels, _ = ndimage.label(dark)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    tissue = ~np.isin(labels, edge[edge > 0])
    labels, _ = ndimage.label(tissue, structure=np.ones((3, 3), bool))
    keep = np.unique(labels[lesion])
    return np.isin(labels, keep[keep > 0])


def region_arrays(grey: np.ndarray, lesion: np.ndarray, spacing_yx, spec: RegionSpec) -> list[RegionMask]:
    """The regions of ``spec`` around the bool ``lesion`` of an image ``grey`` with pixel spacing ``spacing_yx``
    (mm, rows then columns): one distance transform on the lesion's bounding box grown by the widest ring (beyond
    the image edge too), so that the unclipped ring is known and its clipped fraction measured."""
    if not spec.on:
        return []
    shape = lesion.shape
    rows, cols = np.nonzero(lesion)
    if not len(rows):  # no lesion: every region empty (a size problem)
        return [RegionMask(name, np.zeros(shape, bool), 0, 0.0) for name, _, _ in spec.regions()]
    grow = [int(math.ceil(max(spec.rings_mm) / s)) + 1 for s in spacing_yx]
    lo = (rows.min() - grow[0], cols.min() - grow[1])
    hi = (rows.max() + grow[0] + 1, cols.max() + grow[1] + 1)
    inside = tuple(slice(max(lo[a], 0), min(hi[a], shape[a])) for a in (0, 1))  # the window's part in the image
    local = tuple(slice(inside[a].start - lo[a], inside[a].stop - lo[a]) for a in (0, 1))
    window = np.zeros((hi[0] - lo[0], hi[1] - lo[1]), bool)
    window[local] = lesion[inside]
    dist = ndimage.distance_transform_edt(~window, sampling=spacing_yx)
    tissue = tissue_mask(grey, lesion, spec.tissue_threshold)[inside]
    out = []
    for name, kind, width in spec.regions():
        full = (dist > 0) & (dist <= width + 1e-9)
        ring = np.zeros(shape, bool)
        ring[inside] = full[local] & tissue
        n_full, n_ring = int(full.sum()), int(ring.sum())
        clipped = 1.0 - n_ring / n_full if n_full else 0.0
        if kind == LESION_RING:
            ring = ring | lesion
            n_ring, n_full = int(ring.sum()), n_full + int(lesion.sum())
            clipped = 1.0 - n_ring / n_full
        out.append(RegionMask(name, ring, n_ring, round(clipped, 6)))
    return out


def region_masks(image, mask, spec: RegionSpec) -> dict[str, tuple]:
    """``{region: (SimpleITK mask, RegionMask)}`` of a SimpleITK image and its lesion mask (label 1)."""
    import SimpleITK as sitk

    grey = sitk.GetArrayViewFromImage(image)
    lesion = sitk.GetArrayViewFromImage(mask) > 0
    out = {}
    for region in region_arrays(grey, lesion, tuple(mask.GetSpacing())[::-1], spec):
        img = sitk.GetImageFromArray(region.pixels.astype(np.uint8))
        img.CopyInformation(mask)
        out[region.name] = (img, region)
    return out


def size_problem(region: RegionMask, reader: str, minimum) -> str | None:
    """Why ``region`` cannot be extracted (not more pixels than ``minimumROISize``: PyRadiomics refuses a ROI of
    exactly that size; or none), None when it can."""
    if roi_size_ok(region.n_pixels, minimum):
        return None
    limit = int(minimum or 0)
    need = (f"more than the minimumROISize {limit} of the PyRadiomics parameters" if limit
            else "at least one pixel")
    return (f"region {region.name} of reader {reader} has {region.n_pixels} pixels after clipping to the image and "
            f"the imaged tissue ({region.clipped_fraction:.0%} clipped); it needs {need}"
            "; use narrower rings (extraction.regions.rings_mm) or check the mask and tissue_threshold")


__all__ = ["REGIONS_FORMAT", "OPENING_PX", "RING", "LESION_RING", "width_text", "region_name", "RegionSpec",
           "RegionMask", "tissue_mask", "region_arrays", "region_masks", "size_problem"]
