"""The figure comparing simulated B-mode images with real malignant BUS-BRA images.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from ..errors import Problem, UsradError
from ..tables import read_table


def comparison_figure(manifest_path, busbra_dir, out_png, n: int = 8, seed: int = 0):
    """Grid of ``n`` simulated images (top rows) next to ``n`` real malignant BUS-BRA images (bottom).

    Each panel is shown at its physical aspect with the reader-1 mask (simulated) or the BUS-BRA mask
    outlined. Saves ``out_png`` and the same figure as PDF; returns both paths.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    manifest_path, busbra_dir, out_png = Path(manifest_path), Path(busbra_dir), Path(out_png)
    csv = busbra_dir / "bus_data.csv"
    if not csv.is_file():
        raise UsradError("Cannot draw the BUS-BRA comparison",
                         [Problem("BUS-BRA table bus_data.csv not found (is busbra_dir right?)", file=str(csv))])
    if not manifest_path.is_file():
        raise UsradError("Cannot draw the BUS-BRA comparison",
                         [Problem("manifest not found", file=str(manifest_path))])
    sim = read_table(manifest_path)
    real = pd.read_csv(csv)
    real = real[real["Pathology"] == "malignant"]
    rng = np.random.default_rng(seed)
    sim_rows = sim.iloc[np.sort(rng.choice(len(sim), min(n, len(sim)), replace=False))]
    real_rows = real.iloc[np.sort(rng.choice(len(real), min(n, len(real)), replace=False))]
    ncol = 4
    nrow = int(np.ceil(len(sim_rows) / ncol)) + int(np.ceil(len(real_rows) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.0 * ncol, 3.3 * nrow))
    axes = np.atleast_2d(axes)
    for ax in axes.ravel():
        ax.axis("off")
    base = manifest_path.parent
    panels = []
    for _, r in sim_rows.iterrows():
        img = sitk.ReadImage(str(base / r["image"]))
        msk = sitk.GetArrayFromImage(sitk.ReadImage(str(base / r["mask"])))
        sp = img.GetSpacing()[0]
        n_pos = int(r["n_positive_nodes"])
        title = f"{r['patient_id']} sim, {r['us_size_mm']:.0f} mm, N={n_pos}"
        panels.append((sitk.GetArrayFromImage(img), msk, sp, title))
    for _, r in real_rows.iterrows():
        im = np.asarray(Image.open(busbra_dir / "Images" / f"bus_{r['ID'][4:]}.png").convert("L"))
        mk = np.asarray(Image.open(busbra_dir / "Masks" / f"mask_{r['ID'][4:]}.png").convert("L")) > 127
        panels.append((im, mk, 1.0, f"{r['ID']} real ({r['Device'].split(' @')[0]})"))
    for ax, (im, mk, sp, title) in zip(axes.ravel(), panels):
        ext = (0, im.shape[1] * sp, im.shape[0] * sp, 0)
        ax.imshow(im, cmap="gray", vmin=0, vmax=255, extent=ext, interpolation="nearest")
        xs, ys = (np.arange(im.shape[1]) + 0.5) * sp, (np.arange(im.shape[0]) + 0.5) * sp
        ax.contour(xs, ys, mk.astype(float), levels=[0.5], colors="yellow", linewidths=0.6, alpha=0.6)
        ax.set_title(title, fontsize=8)
    fig.suptitle("Simulated B-mode (top rows, mm axes) vs real malignant BUS-BRA images (bottom rows)",
                 fontsize=10)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    out_pdf = out_png.with_suffix(".pdf")
    fig.savefig(out_png, dpi=110, metadata={"Software": None})
    fig.savefig(out_pdf, metadata={"Creator": None, "Producer": None, "CreationDate": None})
    plt.close(fig)
    return out_png, out_pdf



__all__ = ["comparison_figure"]
