"""Figure and table style shared by every figure family: journal layout, colours, labels, saving.

Journal layout: widths are single column (89 mm, :data:`SINGLE`) or double column (183 mm, :data:`DOUBLE`);
every text is ≥ 7 pt (DejaVu Sans, TrueType-embedded in the PDF); colours are the Okabe–Ito and Paul Tol
"muted" colour-blind safe palettes, one fixed colour per model (:data:`MODEL_COLOURS`) in every figure.
Figures are built on :class:`matplotlib.figure.Figure` (Agg canvas, no pyplot global state, :func:`new_figure`)
and written by :func:`save_figure` (refuses text < 7 pt and other widths via :func:`check_layout`) with no
timestamps in the files, so the same inputs always give byte-identical PNG and PDF files
(:func:`placeholder_figure`: one saying why there is nothing to draw). Tables are written
by :func:`write_table` (deterministic TSV). Also: the text formats of estimates, CIs and p-values.
"""
from __future__ import annotations

import functools
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..atomic import write_tsv


#: Outcome column of the predictions table.
LABEL = "y"
SPLITS = ("train", "test")

#: Every split value the predictions table may hold (``cv``: out-of-fold on the training rows).
ALL_SPLITS = ("cv", "train", "test", "external")
SPLIT_TITLES = {"cv": "Training set (cross-validated)", "train": "Training set", "test": "Test set",
                "external": "External test set"}

#: Main models, in display order. ``models.py`` names them ``clinical, radscore, nomogram, combined``
#: (combined = best combined classifier); the older names ``radiomics``/``best_combined`` work too.
BASE_MODELS = ("clinical", "radscore", "radiomics", "nomogram", "combined")
CLASSIFIERS = ("lr", "svm", "rf", "xgb", "knn", "nb", "mlp")
PREDICTION_COLUMNS = ("patient_id", "image_id", "task", "split", "model", "probability", LABEL)
MM = 1 / 25.4
SINGLE = 89 * MM   # inches
DOUBLE = 183 * MM
DPI = 300
MIN_FONT_PT = 7

#: One colour per model, the same in every figure (Okabe–Ito for the three main models, Tol muted for
#: the classifiers); unknown models get the remaining Tol colours in order of appearance.
MODEL_COLOURS = {
    "clinical": "#0072B2", "radiomics": "#D55E00", "radscore": "#D55E00", "nomogram": "#009E73",
    "combined": "#CC79A7", "best_combined": "#CC79A7",
    "lr": "#332288", "svm": "#88CCEE", "rf": "#117733", "xgb": "#CC6677", "knn": "#DDCC77",
    "nb": "#AA4499", "mlp": "#44AA99",
}
_SPARE_COLOURS = ("#882255", "#999933", "#E69F00", "#56B4E9", "#000000")
MODEL_LABELS = {
    "clinical": "Clinical", "radiomics": "Rad-score", "radscore": "Rad-score", "nomogram": "Nomogram",
    "combined": "Combined", "best_combined": "Best combined", "lr": "LR", "svm": "SVM", "rf": "RF", "xgb": "XGBoost",
    "knn": "KNN", "nb": "Naive Bayes", "mlp": "MLP",
}
#: The negative controls (:mod:`usrad.extract.controls`; ``none`` = the real images) in figures and Table 3.
CONTROL_LABELS = {"none": "Real images", "shuffled_roi": "Shuffled ROI", "randomized_roi": "Randomised ROI",
                  "moved_roi": "ROI moved to tissue"}
CONTROL_COLOURS = {"none": "#000000", "shuffled_roi": "#D55E00", "randomized_roi": "#0072B2", "moved_roi": "#009E73"}
SPLIT_COLOURS = {"cv": "#E69F00", "train": "#7F7F7F", "test": "#0072B2", "external": "#D55E00"}
SPLIT_MARKERS = {"cv": "D", "train": "o", "test": "s", "external": "^"}
CLASS_COLOURS = {0: "#0072B2", 1: "#D55E00"}
RC = {
    "font.family": "DejaVu Sans",
    "font.size": 7, "axes.titlesize": 8, "axes.labelsize": 7, "xtick.labelsize": 7,
    "ytick.labelsize": 7, "legend.fontsize": 7, "legend.title_fontsize": 7, "figure.titlesize": 8,
    "axes.linewidth": 0.6, "xtick.major.width": 0.6, "ytick.major.width": 0.6,
    "xtick.major.size": 2.5, "ytick.major.size": 2.5, "lines.linewidth": 1.0, "lines.markersize": 3,
    "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False,
    "pdf.fonttype": 42, "ps.fonttype": 42, "svg.hashsalt": "usrad", "savefig.dpi": DPI,
    "path.simplify": False,
}


def model_colour(model: str) -> str:
    if model in MODEL_COLOURS:
        return MODEL_COLOURS[model]
    return _SPARE_COLOURS[sum(map(ord, model)) % len(_SPARE_COLOURS)]


def model_label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def new_figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    fig.get_layout_engine().set(w_pad=2 * MM, h_pad=2 * MM, wspace=0.04, hspace=0.04)
    return fig


def check_layout(fig: Figure) -> None:
    """Raise ``ValueError`` unless the figure is 89 or 183 mm wide and every visible text is ≥ 7 pt."""
    width_mm = fig.get_figwidth() / MM
    if min(abs(width_mm - 89), abs(width_mm - 183)) > 0.5:
        raise ValueError(f"figure is {width_mm:.1f} mm wide; journals take 89 (single) or 183 mm (double)")
    from matplotlib.text import Text
    small = [t.get_text() for t in fig.findobj(Text)
             if t.get_visible() and t.get_text() and t.get_fontsize() < MIN_FONT_PT - 1e-9]
    if small:
        raise ValueError(f"{len(small)} text(s) below {MIN_FONT_PT} pt, e.g. {small[:3]}")


def save_figure(fig: Figure, stem, dpi: int = DPI) -> tuple[Path, Path]:
    """Check the layout (:func:`check_layout`), then write ``<stem>.png`` (``dpi``, 300 unless told: the QC
    gallery's full pages use less) and ``<stem>.pdf`` without timestamps; return both paths."""
    check_layout(fig)
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, pdf = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")
    with matplotlib.rc_context(RC):
        fig.savefig(png, dpi=dpi, metadata={"Software": None})
        fig.savefig(pdf, metadata={"CreationDate": None, "Creator": None, "Producer": None})
    return png, pdf


def placeholder_figure(stem, text: str) -> None:
    """A figure that says why there is nothing to draw (the workflow's outputs are always all present)."""
    fig = new_figure(SINGLE, 30 * MM)
    ax = fig.subplots()
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=MIN_FONT_PT)
    save_figure(fig, stem)


def write_table(df: pd.DataFrame, stem) -> Path:
    """Write ``<stem>.tsv``: tab-separated, no index, ``\\n`` line ends, empty for NaN, floats as repr.

    The same DataFrame always gives the same bytes.
    """
    stem = Path(stem)
    return write_tsv(df, stem.with_name(stem.name + ".tsv"))


def styled(fn):
    """Run a drawing function under the module's rcParams (fonts, line widths)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(RC):
            return fn(*args, **kwargs)
    return wrapper


def fmt_ci(est: float, lo: float, hi: float, digits: int = 3) -> str:
    return f"{est:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def fmt_p(p: float) -> str:
    if not np.isfinite(p):
        return "NA"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_num(v, digits: int = 2) -> str:
    """A number for a figure: fixed digits (powers of ten from 1,000 on, e.g. the slope CI of a separated fit),
    typographic minus, ``NA`` when missing."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return "NA"
    if not np.isfinite(x):
        return "NA"
    text = f"{x:.1e}".replace("e+0", "e").replace("e+", "e") if abs(x) >= 1000 else f"{x:.{digits}f}"
    if float(text) == 0:
        text = text.lstrip("-")  # −0.004 is 0.00, not −0.00
    return text.replace("-", "−")
