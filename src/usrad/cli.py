"""Command-line entry point: `usrad simulate | validate | extract | predict | busbra-manifest | progress`, `--version`.

A user's mistake ends in one message on stderr and exit status 2, never a traceback: a bad option value
(argparse), a :class:`~usrad.errors.UsradError`, or an ``OSError`` on a path the user gave. The paths a
command is given are checked before any long work (every problem at once): inputs must be readable files
(or folders), an output must not be a folder, nor an input, nor inside the model bundle, and its nearest
existing folder must be writable (missing folders are created).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from pathlib import Path

from . import __version__
from .config import validate_config
from .errors import Problem, UsradError

# Each command imports its own modules when it runs (the package's one exception to module-top imports,
# tests/test_house.py): `usrad --help`, `--version` and a refused option answer in 0.2 s instead of the 4 s that
# importing scikit-learn, XGBoost, PyRadiomics and matplotlib takes. Nothing imports the cli, so no cycle hides here.

#: Options whose values are paths (argparse dest names), checked and named in messages.
PATH_OPTIONS = ("manifest", "out", "config", "params", "cache_dir", "model", "features", "busbra_dir")
DEFAULT_CONFIG = Path("config") / "config.yaml"
CONFIG_HELP = (f"workflow config YAML (default: {DEFAULT_CONFIG} if the current folder has one, else the schema's "
               "defaults)")


# --------------------------------------------------------------------------------------------- path checks
def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def input_file(path, option: str) -> list[Problem]:
    """Problems of a path that must be a readable file."""
    p = Path(path)
    if not p.exists():
        return [Problem(f"file not found (option {option})", file=str(p))]
    if p.is_dir():
        return [Problem(f"is a folder, not a file (option {option})", file=str(p))]
    if not p.is_file():
        return [Problem(f"is not a regular file (a device, pipe or socket) (option {option})", file=str(p))]
    if not os.access(p, os.R_OK):
        return [Problem(f"cannot be read: permission denied (option {option})", file=str(p))]
    return []


def special_file(path, option: str) -> list[Problem]:
    """A device, pipe or socket (reading it would block or never end), else no problem."""
    p = Path(path)
    if p.exists() and not p.is_file() and not p.is_dir():
        return [Problem(f"is not a regular file (a device, pipe or socket) (option {option})", file=str(p))]
    return []


def input_folder(path, option: str) -> list[Problem]:
    """Problems of a path that must be a readable folder."""
    p = Path(path)
    if not p.exists():
        return [Problem(f"folder not found (option {option})", file=str(p))]
    if not p.is_dir():
        return [Problem(f"is a file, not a folder (option {option})", file=str(p))]
    if not os.access(p, os.R_OK | os.X_OK):
        return [Problem(f"cannot be read: permission denied (option {option})", file=str(p))]
    return []


def _writable_from(p: Path, option: str) -> list[Problem]:
    """Problems creating ``p``: its nearest existing ancestor must be a writable folder."""
    anc = _nearest_existing(p.parent)
    if not anc.is_dir():
        return [Problem(f"cannot be created: {anc} is a file, not a folder (option {option})", file=str(p))]
    if not os.access(anc, os.W_OK | os.X_OK):
        return [Problem(f"cannot be written: folder {anc} is not writable (option {option})", file=str(p))]
    return []


def output_file(path, option: str, inputs=()) -> list[Problem]:
    """Problems of a path a file will be written to (not a folder, not one of ``inputs``, writable)."""
    p = Path(path)
    if p.is_dir():
        return [Problem(f"is a folder; give a file name (option {option})", file=str(p))]
    if p.exists() and not p.is_file():
        return [Problem(f"is not a regular file (a device, pipe or socket); it is not replaced (option {option})",
                        file=str(p))]
    for other in inputs:
        if other is not None and p.exists() and Path(other).exists() and os.path.samefile(p, other):
            return [Problem(f"is also an input of this command; it would be overwritten (option {option})",
                            file=str(p))]
    if p.exists() and not os.access(p.parent, os.W_OK | os.X_OK):
        return [Problem(f"cannot be replaced: folder {p.parent} is not writable (option {option})", file=str(p))]
    return _writable_from(p, option)


def output_folder(path, option: str) -> list[Problem]:
    """Problems of a folder that will be written into (created when missing)."""
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            return [Problem(f"is a file, not a folder (option {option})", file=str(p))]
        if not os.access(p, os.W_OK | os.X_OK):
            return [Problem(f"folder is not writable (option {option})", file=str(p))]
        return []
    return _writable_from(p, option)


def _inside(path, folder) -> bool:
    try:
        return Path(os.path.abspath(path)).resolve().is_relative_to(Path(folder).resolve())
    except OSError:
        return False


def _refuse(command: str, problems: list[Problem]) -> None:
    if problems:
        raise UsradError(f"Cannot run usrad {command}: a path given is not usable", problems)


# --------------------------------------------------------------------------------------------- commands
def _config_path(args) -> str | None:
    """The config file a command reads: ``--config``, else ``config/config.yaml`` of the current folder (a workflow
    checkout), else None (the schema's defaults)."""
    if args.config is not None:
        return args.config
    return str(DEFAULT_CONFIG) if DEFAULT_CONFIG.is_file() else None


def _cmd_simulate(args) -> int:
    from .simulate import simulate_cohort

    _refuse("simulate", output_folder(args.out, "--out"))
    manifest = simulate_cohort(Path(args.out), n_patients=args.n_patients, seed=args.seed, progress=not args.quiet,
                               device_effect=args.device_effect)
    print(f"Simulated cohort written: {manifest}")
    return 0


def _cmd_validate(args) -> int:
    from .plan import validate_command

    # validate reports a missing manifest or config itself, with the config's problems; only a device or pipe,
    # which would block reading, is refused here
    config = _config_path(args)
    _refuse("validate", special_file(args.manifest, "MANIFEST") + (special_file(config, "--config") if config else []))
    return validate_command(args.manifest, config)


def _cmd_extract(args) -> int:
    from .cohort import load_cohort
    from .plan import load_config
    from .extract import CacheWarning, extract_cohort, feature_table_metadata
    from .features import write_feature_table
    from .manifest.images import params_file

    config = _config_path(args)
    problems = input_file(args.manifest, "MANIFEST") + (input_file(config, "--config") if config else [])
    if args.params:
        problems += input_file(args.params, "--params")
    if args.cache_dir:
        problems += output_folder(args.cache_dir, "--cache-dir")
    problems += output_file(args.out, "--out", inputs=(args.manifest, config, args.params))
    _refuse("extract", problems)
    cfg = load_config(config) if config else validate_config({}, source="(defaults)")
    params = Path(args.params) if args.params else params_file(cfg["radiomics_params"])
    _refuse("extract", input_file(params, "--params (or config key radiomics_params)"))
    # extraction reads images and masks only: no clinical or outcome column is required or checked; the ROI
    # limits checked are those of the params actually used
    cohort = load_cohort(args.manifest, dict(cfg, tasks=[], radiomics_params=str(params),
                                             clinical=dict(cfg["clinical"], predictors=[], categorical=[])))
    if cohort.empty:
        raise UsradError(f"Manifest {args.manifest} has no image rows", [Problem("nothing to extract",
                                                                                 file=str(args.manifest))])
    ext = cfg["extraction"]
    perturbation = {"n": ext["perturbed_masks"], "radius_px": ext["perturbation_radius_px"], "seed": cfg["seed"]}
    content: dict = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CacheWarning)
        table = extract_cohort(cohort, params, cache_dir=args.cache_dir, progress=True, perturbation=perturbation,
                               content=content, regions=ext["regions"])
    _print_warnings("extract", caught, (CacheWarning,))
    write_feature_table(table, args.out, feature_table_metadata(params, content, ext["regions"]))
    print(f"{len(table)} feature rows of {len(cohort)} image(s) written to {args.out}")
    return 0


def _print_warnings(command: str, caught, categories) -> None:
    for w in caught:
        if issubclass(w.category, categories):
            print(f"usrad {command}: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def _cmd_predict(args) -> int:
    from .bundle import bundle_folder
    from .extract import CacheWarning
    from .predict import UnseenLevelWarning, VersionWarning, predict_manifest

    problems = input_file(args.manifest, "--manifest")
    if args.features:
        problems += input_file(args.features, "--features")
    if args.cache_dir:
        problems += output_folder(args.cache_dir, "--cache-dir")
    problems += output_file(args.out, "--out", inputs=(args.manifest, args.features))
    try:
        model = bundle_folder(args.model)
    except UsradError as err:
        problems, model = err.problems + problems, None
    for option, path in (("--out", args.out), ("--cache-dir", args.cache_dir)):
        if model is not None and path and _inside(path, model):
            problems.append(Problem(f"is inside the model bundle folder, which holds only the bundle's own files (it "
                                    f"would no longer load); write it elsewhere (option {option})", file=str(path)))
    _refuse("predict", problems)
    categories = (VersionWarning, UnseenLevelWarning, CacheWarning)
    with warnings.catch_warnings(record=True) as caught:
        for category in categories:
            warnings.simplefilter("always", category)
        table = predict_manifest(model, args.manifest, out=args.out, features=args.features,
                                 cache_dir=args.cache_dir, progress=not args.quiet)
    _print_warnings("predict", caught, categories)
    n_pos = int((table["decision"] == "positive").sum())
    print(f"{len(table)} image(s) of {table['patient_id'].nunique()} patient(s) scored with "
          f"{table['model'].iloc[0]} ({table['task'].iloc[0]}); {n_pos} at or above the threshold "
          f"{table['threshold'].iloc[0]:.3f}; written to {args.out}")
    return 0


def _cmd_busbra(args) -> int:
    from .busbra import write_manifest

    _refuse("busbra-manifest", input_folder(args.busbra_dir, "BUSBRA_DIR") + output_file(args.out, "--out"))
    df = write_manifest(args.busbra_dir, args.out, n_images=args.n_images, seed=args.seed,
                        pixel_spacing_mm=args.pixel_spacing_mm)
    print(f"BUS-BRA manifest written: {args.out} ({len(df)} images of {df['patient_id'].nunique()} patients)")
    return 0


def _cmd_progress(args) -> int:
    from .extract import stage_line, watch

    _refuse("progress", input_folder(args.results_dir, "RESULTS_DIR"))
    if args.watch is None:
        print(stage_line(args.results_dir))
    else:
        watch(args.results_dir, args.watch)
    return 0


# --------------------------------------------------------------------------------------------- parser
def _whole(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return value
    return parse


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive, finite number")
    return value


def build_parser() -> argparse.ArgumentParser:
    defaults = validate_config({}, source="(defaults)")  # the schema is the one source of every default
    parser = argparse.ArgumentParser(prog="usrad", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="write the simulated demo cohort (images, reader masks, manifest, ground truth)")
    p.add_argument("--out", default="results/demo", help="output folder (default: %(default)s)")
    p.add_argument("--n-patients", type=_whole(1), default=defaults["cohort"]["simulate"]["n_patients"],
                   help="number of patients (default: %(default)s, config key cohort.simulate.n_patients)")
    p.add_argument("--seed", type=_whole(0), default=defaults["seed"], help="random seed (default: %(default)s)")
    p.add_argument("--device-effect", type=float, default=defaults["cohort"]["simulate"]["device_effect"],
                   help="strength of the difference between the two devices, >= 0 (default: %(default)s, config key "
                        "cohort.simulate.device_effect)")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("validate", help="check a cohort manifest (and config) without running anything")
    p.add_argument("manifest", help="cohort manifest (.csv or .tsv, one row per image; docs/manifest.md)")
    p.add_argument("--config", default=None, help=CONFIG_HELP)
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("extract", help="extract PyRadiomics features of a manifest into a feature table")
    p.add_argument("manifest", help="cohort manifest (.csv or .tsv; no clinical or outcome column needed)")
    p.add_argument("--out", required=True, help="feature table to write (.parquet)")
    p.add_argument("--config", default=None, help=CONFIG_HELP)
    p.add_argument("--params", default=None, help="PyRadiomics params YAML (default: the config's radiomics_params)")
    p.add_argument("--cache-dir", default=None, help="feature cache folder, reused between runs (default: none)")
    p.set_defaults(func=_cmd_extract)

    p = sub.add_parser("busbra-manifest", help="write a manifest of the BUS-BRA dataset (task malignancy)")
    p.add_argument("busbra_dir", help="BUS-BRA folder (with bus_data.csv, Images/, Masks/)")
    p.add_argument("--out", required=True, help="manifest to write (.tsv)")
    p.add_argument("--n-images", type=_whole(1), default=None, help="reproducible subset of whole patients "
                                                                   "(default: all)")
    p.add_argument("--seed", type=_whole(0), default=defaults["seed"], help="seed of the subset (default: %(default)s)")
    p.add_argument("--pixel-spacing-mm", type=_positive_number, default=0.1,
                   help="assumed pixel size in mm (PNGs carry none; default: %(default)s)")
    p.set_defaults(func=_cmd_busbra)

    p = sub.add_parser("predict", help="score new patients with a trained model bundle (probability, rad-score, "
                                       "decision, contributions, nomogram points)")
    p.add_argument("--model", required=True, help="bundle folder (or its bundle.json), e.g. "
                                                  "results/metastasis/models/nomogram")
    p.add_argument("--manifest", required=True, help="manifest of the new patients (no outcome column needed)")
    p.add_argument("--out", required=True, help="output table (.csv, else tab-separated)")
    p.add_argument("--features", default=None,
                   help="feature table written by usrad extract with the bundle's PyRadiomics parameters; rows are "
                        "matched to the new images by content (SHA-256), never by id; default: extract the images")
    p.add_argument("--cache-dir", default=None, help="feature cache (e.g. results/features/cache)")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("progress", help="overall progress of a running feature extraction (all shards: images "
                                        "done, rate, ETA), e.g. of a cluster run")
    p.add_argument("results_dir", nargs="?", default="results", help="the workflow's results folder (default: "
                                                                      "%(default)s, config key results_dir)")
    p.add_argument("--watch", type=_positive_number, default=None, metavar="SECONDS",
                   help="print the line every SECONDS until the extraction is complete or a shard failed "
                        "(Ctrl-C stops)")
    p.set_defaults(func=_cmd_progress)
    return parser


# --------------------------------------------------------------------------------------------- main
def _user_paths(args, options) -> list[Path]:
    return [Path(os.path.abspath(v)) for k in options if isinstance(v := getattr(args, k, None), str) and v]


def _is_user_path(exc: OSError, args) -> str | None:
    """The user-given path an OSError is about (the path or a file inside a given folder; for an output also a
    temporary file beside it or a folder created on the way to it), else None: then it is a bug, re-raised."""
    outputs = _user_paths(args, ("out", "cache_dir"))
    for name in (exc.filename, exc.filename2):
        if not isinstance(name, (str, bytes, os.PathLike)):
            continue
        p = Path(os.path.abspath(os.fsdecode(name)))
        if any(p == g or p.is_relative_to(g) for g in _user_paths(args, PATH_OPTIONS)) or any(
                g.is_relative_to(p) or (p.parent == g.parent and p.name.startswith(f".{g.name}.")) for g in outputs):
            return str(p)
    return None


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage and its one-line error (2), or --help (0)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.func(args)
    except UsradError as err:
        print(f"usrad {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as exc:
        path = _is_user_path(exc, args)
        if path is None:
            raise
        print(f"usrad {args.command}: error: cannot use {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
