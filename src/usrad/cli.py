"""Command-line entry point: `usrad simulate | validate | extract | predict | busbra-manifest`.

A user's mistake (UsradError) prints its message and exits with status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import UsradError


def _cmd_simulate(args) -> int:
    from .simulate import simulate_cohort

    manifest = simulate_cohort(Path(args.out), n_patients=args.n_patients, seed=args.seed, progress=not args.quiet)
    print(f"Simulated cohort written: {manifest}")
    return 0


def _cmd_validate(args) -> int:
    from .cohort import validate_command

    return validate_command(args.manifest, args.config)


def _cmd_extract(args) -> int:
    from .cohort import load_cohort
    from .config import load_config
    from .extract import extract_cohort, feature_table_metadata
    from .features import write_feature_table

    cfg = load_config(args.config)
    cohort = load_cohort(args.manifest, cfg)
    params = args.params or cfg["radiomics_params"]
    table = extract_cohort(cohort, params, cache_dir=args.cache_dir, progress=True)
    write_feature_table(table, args.out, feature_table_metadata(params))
    print(f"{len(table)} feature rows written to {args.out}")
    return 0


def _cmd_predict(args) -> int:
    import warnings

    from .predict import UnseenLevelWarning, VersionWarning, predict_manifest

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", VersionWarning)
        warnings.simplefilter("always", UnseenLevelWarning)
        table = predict_manifest(args.model, args.manifest, out=args.out, features=args.features,
                                 cache_dir=args.cache_dir, progress=not args.quiet)
    for w in caught:
        if issubclass(w.category, (VersionWarning, UnseenLevelWarning)):
            print(f"usrad predict: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    n_pos = int((table["decision"] == "positive").sum())
    print(f"{len(table)} image(s) of {table['patient_id'].nunique()} patient(s) scored with "
          f"{table['model'].iloc[0]} ({table['task'].iloc[0]}); {n_pos} at or above the threshold "
          f"{table['threshold'].iloc[0]:.3f}; written to {args.out}")
    return 0


def _cmd_busbra(args) -> int:
    from .busbra import write_manifest

    df = write_manifest(args.busbra_dir, args.out, n_images=args.n_images, seed=args.seed,
                        pixel_spacing_mm=args.pixel_spacing_mm)
    print(f"BUS-BRA manifest written: {args.out} ({len(df)} images of {df['patient_id'].nunique()} patients)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="usrad", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="write the simulated demo cohort (images, reader masks, manifest, ground truth)")
    p.add_argument("--out", default="results/demo", help="output folder (default: results/demo)")
    p.add_argument("--n-patients", type=int, default=671)
    p.add_argument("--seed", type=int, default=20240611)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("validate", help="check a cohort manifest (and config) without running anything")
    p.add_argument("manifest")
    p.add_argument("--config", default="config/config.yaml")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("extract", help="extract PyRadiomics features of a manifest into a feature table")
    p.add_argument("manifest")
    p.add_argument("--out", required=True, help="feature table (.parquet)")
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--params", default=None, help="PyRadiomics params YAML (default: the config's radiomics_params)")
    p.add_argument("--cache-dir", default=None)
    p.set_defaults(func=_cmd_extract)

    p = sub.add_parser("busbra-manifest", help="write a manifest of the BUS-BRA dataset (task malignancy)")
    p.add_argument("busbra_dir", help="BUS-BRA folder (with bus_data.csv, Images/, Masks/)")
    p.add_argument("--out", required=True, help="manifest to write (.tsv)")
    p.add_argument("--n-images", type=int, default=None, help="reproducible subset of whole patients (default: all)")
    p.add_argument("--seed", type=int, default=20240611)
    p.add_argument("--pixel-spacing-mm", type=float, default=0.1, help="assumed pixel size (PNGs carry none)")
    p.set_defaults(func=_cmd_busbra)

    p = sub.add_parser("predict", help="score new patients with a trained model bundle (probability, rad-score, "
                                       "decision, contributions, nomogram points)")
    p.add_argument("--model", required=True, help="bundle folder, e.g. results/metastasis/models/nomogram")
    p.add_argument("--manifest", required=True, help="manifest of the new patients (no outcome column needed)")
    p.add_argument("--out", required=True, help="output table (.csv, else tab-separated)")
    p.add_argument("--features", default=None,
                   help="already extracted feature table (.parquet) with the bundle's PyRadiomics parameters; "
                        "default: extract from the manifest's images")
    p.add_argument("--cache-dir", default=None, help="feature cache (e.g. results/features/cache)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UsradError as err:
        print(f"usrad {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
