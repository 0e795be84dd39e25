"""CPU time per image of four extraction paths, interleaved image by image (robust on a busy machine).

    python bench/bench_extraction_cpu.py COHORT_TSV [--n 20] [--skip 100] [--params config/radiomics.yaml]

For each of ``--n`` images of a normalised cohort table (after skipping ``--skip``), with its masks r1, r2 and
one perturbed copy p1 of r1 (as ``extract_cohort`` makes them), times with ``time.process_time``:

1. ``execute``: PyRadiomics' ``RadiomicsFeatureExtractor.execute`` once per mask (what PyRadiomics' CLI does);
2. ``execute + fast paths``: :meth:`usrad.extract.Extractor.extract` once per mask (PyRadiomics' ``execute`` with
   :mod:`usrad.extract.fastpaths` swapped in);
3. ``shared filters + numpy bin edges``: :meth:`usrad.extract.Extractor.extract_many` once per image with only the
   bin-edges fast path (what extraction was before the other fast paths);
4. ``shared filters + fast paths``: the same with every fast path (what the workflow runs);

checks that 2–4 give exactly the values of 1, and prints the mean CPU seconds per image and per mask.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    from usrad import extract as E
    from usrad.imageio import read_image, read_mask

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cohort", type=Path)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--skip", type=int, default=100)
    parser.add_argument("--params", type=Path, default=REPO / "config" / "radiomics.yaml")
    args = parser.parse_args(argv)
    cohort = pd.read_csv(args.cohort, sep="\t", dtype={"patient_id": str, "image_id": str})
    cohort = cohort.iloc[args.skip:args.skip + args.n]
    ex = E.get_extractor(args.params)
    ex.expected_features()  # warm-up
    cpu = {"execute": 0.0, "execute + fast paths": 0.0, "shared filters + numpy bin edges": 0.0,
           "shared filters + fast paths": 0.0}
    with E.fast_paths():  # PyRadiomics' functions recorded, and whether each fast path applies
        checked = dict(E.fast_paths.checked)
    worst = 0.0
    for rec in cohort.to_dict("records"):
        spacing = rec.get("pixel_spacing_mm")
        image = read_image(rec["image"], None if pd.isna(spacing) else float(spacing))
        r1 = read_mask(rec["mask"], image)
        masks = [r1] + ([read_mask(rec["mask_reader2"], image)] if isinstance(rec.get("mask_reader2"), str)
                        and rec["mask_reader2"] else []) + [E.perturbed_mask(r1, rec["image_id"], 1, 2, 0)]
        outs = {}
        for mode in cpu:
            t0 = time.process_time()
            if mode == "execute":
                out = [ex._extractor.execute(image, m) for m in masks]
                out = [{k: float(v) for k, v in o.items() if not k.startswith("diagnostics_")} for o in out]
            elif mode.startswith("execute"):
                out = [ex.extract(image, m) for m in masks]
            elif mode.endswith("bin edges"):
                E.fast_paths.checked = {k: v and k == "getBinEdges" for k, v in checked.items()}
                out = ex.extract_many(image, masks)
                E.fast_paths.checked = dict(checked)
            else:
                out = ex.extract_many(image, masks)
            cpu[mode] += time.process_time() - t0
            outs[mode] = out
        ref = outs["execute"]
        for mode, out in outs.items():
            for a, b in zip(ref, out):
                assert list(a) == list(b), mode
                va, vb = np.array(list(a.values())), np.array(list(b.values()))
                worst = max(worst, float(np.max(np.abs(vb - va) / np.maximum(np.abs(va), 1e-300))))
        n_masks = len(masks)
    for mode, seconds in cpu.items():
        print(f"{mode}: {seconds / len(cohort):.3f} CPU s per image ({n_masks} masks), "
              f"{seconds / len(cohort) / n_masks:.3f} per mask")
    print(f"max relative difference vs execute(): {worst:.1e} ({len(cohort)} images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
