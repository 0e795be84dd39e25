"""The QC gallery (:func:`write_qc_gallery`): contact sheets of every image of the cohort with both readers' mask
contours, flagged images first, so that a researcher can check the segmentations before trusting any model.

Writes ``qc_flags.tsv`` (the flags of :mod:`usrad.reporting.qc_flags`, with the ``page`` each image is on) and the
pages ``gallery_01.png`` / ``.pdf``, ``gallery_02…`` (:data:`PER_PAGE` thumbnails each, 183 x 259 mm, PNG at
:data:`PAGE_DPI`). Each thumbnail is the image cropped around the lesion (the bounding box of both masks plus a
margin, made square) in grey with reader 1's contour solid orange and reader 2's dashed sky blue (Okabe–Ito,
colour-blind safe; the legend is on every page), captioned with the patient / image id and its flags in short
words. The same inputs give the same bytes (:func:`usrad.reporting.style.save_figure`); a line per page goes to the
log.
"""
from __future__ import annotations

import gc
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from .. import imageio
from .qc_flags import DICE_MIN, OUTLIER_FRACTION, OUTLIER_Z, flag_words, qc_flags, read_case
from .style import DOUBLE, MIN_FONT_PT, MM, new_figure, save_figure, write_table

COLS, ROWS = 5, 6
PER_PAGE = COLS * ROWS
PAGE_HEIGHT = 259 * MM  # A4 portrait proportions at the journal's double-column width
PAGE_DPI = 150  # a full page at 300 dpi is ~ 9 MB of PNG; 150 dpi keeps the contours sharp
HEADER_MM = 19.0
CAPTION_MM = 9.0
READER_COLOURS = {"r1": "#E69F00", "r2": "#56B4E9"}  # Okabe–Ito orange, sky blue
READER_STYLES = {"r1": "solid", "r2": (0, (2.5, 1.5))}
FLAG_COLOUR = "#D55E00"  # Okabe–Ito vermillion: the flag words
MARGIN = 0.3  # of the lesion's larger side, on each side of the crop
MIN_MARGIN_PX = 8
CAPTION_CHARS = 26  # at 7 pt in a 36 mm cell
THUMB_PX = 160  # a thumbnail is ~ 31 mm, 183 px at 150 dpi


def crop_box(image_shape, masks) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) of the square crop around the union of the masks plus :data:`MARGIN`, kept inside
    the image (shifted rather than cut where the lesion is near an edge)."""
    union = np.logical_or.reduce([m for m in masks if m is not None])
    rows, cols = np.flatnonzero(union.any(axis=1)), np.flatnonzero(union.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    side = max(r1 - r0, c1 - c0)
    side += 2 * max(MIN_MARGIN_PX, int(round(MARGIN * side)))
    box = []
    for lo, hi, size in ((r0, r1, image_shape[0]), (c0, c1, image_shape[1])):
        n = min(side, size)
        start = int(np.clip((lo + hi - n) // 2, 0, size - n))
        box += [start, start + n]
    return tuple(box)


def shrink(grey: np.ndarray) -> tuple[np.ndarray, int]:
    """The crop averaged over k x k blocks so that it has at most about :data:`THUMB_PX` pixels a side (the PDF
    embeds what is drawn: full-resolution crops make 2 MB pages), and k."""
    k = max(1, int(math.ceil(max(grey.shape) / THUMB_PX)))
    if k == 1:
        return grey, 1
    h, w = (grey.shape[0] // k) * k, (grey.shape[1] // k) * k
    return grey[:h, :w].reshape(h // k, k, w // k, k).mean(axis=(1, 3)), k


def _wrap(words: list[str]) -> list[str]:
    """Flag words joined by commas into lines of at most :data:`CAPTION_CHARS` characters (two at most)."""
    lines: list[str] = []
    for word in words:
        if lines and len(lines[-1]) + 2 + len(word) <= CAPTION_CHARS:
            lines[-1] += ", " + word
        else:
            lines.append(word)
    if len(lines) > 2:
        lines = [lines[0], lines[1] + " …"]
    return [line if len(line) <= CAPTION_CHARS else line[:CAPTION_CHARS - 1] + "…" for line in lines]


def _label(row) -> str:
    pid, iid = str(row["patient_id"]), str(row["image_id"])
    text = pid if iid == pid else f"{pid} / {iid}"
    return text if len(text) <= CAPTION_CHARS else text[:CAPTION_CHARS - 1] + "…"


def _thumbnail(fig, rect, case, row) -> None:
    """One thumbnail in the figure rectangle ``rect`` (left, bottom, width, height in figure fractions)."""
    image, m1, m2 = case
    grey = np.asarray(imageio.pixels(image))
    r0, r1, c0, c1 = crop_box(grey.shape, (m1, m2))
    ax = fig.add_axes(rect)
    small, k = shrink(grey[r0:r1, c0:c1])
    ax.imshow(small, cmap="gray", vmin=0, vmax=255, interpolation="nearest",
              extent=(-0.5, small.shape[1] * k - 0.5, small.shape[0] * k - 0.5, -0.5))
    for reader, mask in (("r1", m1), ("r2", m2)):
        if mask is not None and mask[r0:r1, c0:c1].any():
            ax.contour(mask[r0:r1, c0:c1].astype(np.float32), levels=[0.5], colors=[READER_COLOURS[reader]],
                       linewidths=0.9, linestyles=[READER_STYLES[reader]])
    ax.set_xlim(-0.5, c1 - c0 - 0.5)
    ax.set_ylim(r1 - r0 - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_color(FLAG_COLOUR if row["flagged"] else "#BBBBBB")
        spine.set_linewidth(1.2 if row["flagged"] else 0.5)


def _header(fig, page: int, n_pages: int, n_flagged: int, n_images: int, readers) -> None:
    def y(mm):
        return 1 - mm * MM / PAGE_HEIGHT

    fig.text(0.01, y(3), f"QC gallery, page {page} of {n_pages}: {n_flagged} of {n_images} images flagged "
             "(shown first, most flags first; then by patient id)", fontsize=8, weight="bold", va="top")
    handles = [Line2D([], [], color=READER_COLOURS[r], linestyle=READER_STYLES[r], linewidth=1.2,
                      label=f"reader {r[1]} mask") for r in readers]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.005, y(7)), ncols=2, fontsize=MIN_FONT_PT,
               frameon=False, handlelength=2.5, borderaxespad=0)
    fig.text(0.36, y(7.3), f"Flags (red): border r1/r2 = that reader's mask touches the image border;\n"
             f"Dice = the readers' masks overlap with Dice < {DICE_MIN:g};  dup of = identical pixels;\n"
             f"outliers = ≥ {OUTLIER_FRACTION:.0%} of reader-1 features with |robust z| > {OUTLIER_Z:g} (their count)",
             fontsize=MIN_FONT_PT, va="top", color="#333333", linespacing=1.25)


def draw_page(cases, rows: pd.DataFrame, page: int, n_pages: int, n_flagged: int, n_images: int):
    """One gallery page: the header with legend, then the thumbnails of ``rows`` (flags rows) row by row."""
    fig = new_figure(DOUBLE, PAGE_HEIGHT)
    fig.set_layout_engine("none")
    readers = ["r1"] + (["r2"] if any(c[2] is not None for c in cases) else [])
    _header(fig, page, n_pages, n_flagged, n_images, readers)
    cell_w, cell_h = 1 / COLS, (1 - HEADER_MM * MM / PAGE_HEIGHT) / ROWS
    side_mm = min(DOUBLE / COLS - 3 * MM, cell_h * PAGE_HEIGHT - CAPTION_MM * MM) / MM
    w, h = side_mm * MM / DOUBLE, side_mm * MM / PAGE_HEIGHT
    for k, (case, (_, row)) in enumerate(zip(cases, rows.iterrows())):
        i, j = divmod(k, COLS)
        left = j * cell_w + (cell_w - w) / 2
        bottom = 1 - HEADER_MM * MM / PAGE_HEIGHT - i * cell_h - h - 0.5 * MM / PAGE_HEIGHT
        _thumbnail(fig, (left, bottom, w, h), case, row)
        below = bottom - 0.6 * MM / PAGE_HEIGHT
        fig.text(left, below, _label(row), fontsize=MIN_FONT_PT, va="top", weight="bold" if row["flagged"] else "normal")
        for n, line in enumerate(_wrap(flag_words(row)), start=1):
            fig.text(left, below - n * 2.8 * MM / PAGE_HEIGHT, line, fontsize=MIN_FONT_PT, va="top", color=FLAG_COLOUR)
    return fig


def write_qc_gallery(cohort: pd.DataFrame, features: pd.DataFrame, out_tsv, pages_dir, log=None,
                     regions: dict | None = None) -> pd.DataFrame:
    """Write ``out_tsv`` (the flags, one row per image, with its gallery ``page``) and the gallery pages
    ``pages_dir/gallery_{k:02d}.png|pdf`` (earlier pages there are removed); return the flags table.
    ``regions``: the feature table's ``regions`` metadata (the rings' clipping is a column of the flags)."""
    flags = qc_flags(cohort, features, log, regions)
    flags["page"] = flags.index // PER_PAGE + 1
    write_table(flags, Path(out_tsv).with_suffix(""))
    pages_dir = Path(pages_dir)
    pages_dir.mkdir(parents=True, exist_ok=True)
    for old in sorted(pages_dir.glob("gallery_*")):
        old.unlink()
    rows_by_id = cohort.set_index("image_id", drop=False)
    n_pages, n_flagged = math.ceil(len(flags) / PER_PAGE), int(flags["flagged"].sum())
    for page in range(1, n_pages + 1):
        rows = flags[flags["page"] == page]
        cases = [read_case(rows_by_id.loc[iid]) for iid in rows["image_id"]]
        fig = draw_page(cases, rows, page, n_pages, n_flagged, len(flags))
        save_figure(fig, pages_dir / f"gallery_{page:02d}", dpi=PAGE_DPI)
        # a page's artists hold reference cycles: without this the pages pile up until the collector runs
        # (peak RSS 1.1 GiB after 6 of the 90 pages of 2,684 patients; 811 MiB for all 90 with it)
        fig.clear()
        del fig
        gc.collect()
        if log is not None:
            log.info("QC gallery: page %d of %d written (%d images)", page, n_pages, len(rows))
    return flags
