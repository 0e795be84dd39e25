# Shared helpers: config validation (fills schema defaults) and small named functions used as
# input/params by the rules. No rule logic here.
import os
import re
import sys
from pathlib import Path

# The package lives in src/: importable here, in every rule script and in cluster jobs (which inherit
# the environment and re-read this file), whether or not it is pip-installed.
_SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, _SRC)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_SRC, os.environ.get("PYTHONPATH")) if p)

from usrad.config import validate_config  # noqa: E402
from usrad.errors import UsradError  # noqa: E402

try:
    _validated = validate_config(dict(config), source="config (config/config.yaml + --config/--configfile)")
except UsradError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_validated)

RESULTS = config["results_dir"]
ENV = "../envs/usrad.yaml"
N_SHARDS = config["extraction"]["shards"]
SHARDS = [f"{i:03d}" for i in range(N_SHARDS)]

wildcard_constraints:
    task="|".join(re.escape(t["name"]) for t in config["tasks"]),
    shard=r"\d+",


localrules:
    all,
    paper,
    merge_features,
    split,


def manifest_path():
    """The cohort manifest: the user's, BUS-BRA's (written by rule busbra_manifest) or the simulated demo cohort's."""
    if config["cohort"]["manifest"]:
        return config["cohort"]["manifest"]
    if config["cohort"]["busbra"]["use"]:
        return f"{RESULTS}/cohort/busbra_manifest.tsv"
    return f"{RESULTS}/demo/manifest.tsv"


def radiomics_params():
    return config["radiomics_params"]


def simulate_params():
    return {"n_patients": config["cohort"]["simulate"]["n_patients"], "seed": config["seed"]}


def busbra_dir():
    """BUS-BRA folder (config busbra_dir, else ../shared/data/busbra beside the repository), or None."""
    path = Path(config["busbra_dir"] or Path(workflow.basedir).parent / "shared" / "data" / "busbra")
    return str(path) if (path / "bus_data.csv").exists() else None


def validated_config():
    return dict(config)


def validation_config():
    """Keys validate_cohort reads: clinical, tasks, the PyRadiomics params (minimum ROI), CV sizes (patients per class)."""
    return {**config_part("clinical", "tasks", "radiomics_params"),
            "modelling": {"cv_folds": config["modelling"]["cv_folds"]},
            "split": {"test_size": config["split"]["test_size"]}}


def config_part(*keys):
    """Only the config keys a rule reads, as its params: changing another key does not rerun it."""
    return {key: config[key] for key in keys}


def shard_index(wildcards):
    return int(wildcards.shard)


def perturbation_params():
    """Perturbed reader-1 masks for the ICC filter (extraction.perturbed_masks) and their seed."""
    ext = config["extraction"]
    return {"n": ext["perturbed_masks"], "radius_px": ext["perturbation_radius_px"], "seed": config["seed"]}


def busbra_manifest_params():
    return dict(config["cohort"]["busbra"], seed=config["seed"])


def feature_cache_dir():
    return config["extraction"]["cache_dir"] or f"{RESULTS}/features/cache"


def feature_shards():
    return expand(f"{RESULTS}/features/shards/{{shard}}.parquet", shard=SHARDS)


def task_names():
    return [task["name"] for task in config["tasks"]]


def task_dir(wildcards):
    return f"{RESULTS}/{wildcards.task}"


def n_boot():
    """Bootstrap resamples for every CI of the evaluation (seeded from the config seed)."""
    from usrad.report import N_BOOT

    return N_BOOT


def task_figure_pdfs():
    from usrad.report import TASK_FIGURES

    return [f"{RESULTS}/{{task}}/figures/{name}.pdf" for name in TASK_FIGURES]


def task_other_tables():
    """The evaluation's tables not listed one by one in rule evaluate_task's report() outputs."""
    from usrad.report import TASK_TABLES

    shown = {"table2_odds_ratios", "table3_performance_formatted", "delong"}
    return [f"{RESULTS}/{{task}}/tables/{name}.tsv" for name in TASK_TABLES if name not in shown]


def evaluation_targets():
    """Every task's evaluation outputs (figures PNG + PDF, tables)."""
    from usrad.report import TASK_FIGURES, TASK_TABLES

    out = []
    for task in task_names():
        out += [f"{RESULTS}/{task}/figures/{n}.{ext}" for n in TASK_FIGURES for ext in ("png", "pdf")]
        out += [f"{RESULTS}/{task}/tables/{n}.tsv" for n in TASK_TABLES]
        if config["modelling"]["ablation"]:
            out += [f"{RESULTS}/{task}/tables/ablation.tsv", f"{RESULTS}/{task}/figures/ablation.png"]
    return out


def main_snakefile():
    return str(workflow.main_snakefile)


def is_demo():
    return not config["cohort"]["manifest"] and not config["cohort"]["busbra"]["use"]


def ground_truth_input():
    """The simulated cohort's ground truth (oracle probabilities): demo only."""
    return [f"{RESULTS}/demo/ground_truth.tsv"] if is_demo() else []


def paper_targets():
    """All paper figures and tables: built from results/features/features.parquet and what follows it."""
    return evaluation_targets() + [
        f"{RESULTS}/report/table1.tsv",
        f"{RESULTS}/report/figures/flow.png",
        f"{RESULTS}/report/figures/workflow.png",
        f"{RESULTS}/report/summary.md",
        f"{RESULTS}/report/summary_sources.tsv",
    ]


def all_targets():
    targets = [f"{RESULTS}/features/features.parquet"]
    targets += [f"{RESULTS}/{task}/predictions.tsv" for task in task_names()]
    if is_demo() and busbra_dir():
        targets.append(f"{RESULTS}/demo/figures/simulated_vs_busbra.png")
    targets += paper_targets()
    return targets
