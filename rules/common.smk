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


def plan_config():
    """Keys check_plan reads: what the split and the models would refuse later (usrad.models.check_plan): the split
    and its seed, CV folds and classifiers (patients per class), the ICC filter's second segmentation."""
    m = config["modelling"]
    return {**config_part("clinical", "tasks", "split", "seed"),
            "modelling": {"cv_folds": m["cv_folds"], "classifiers": m["classifiers"],
                          "combined_classifiers": m["combined_classifiers"],
                          "reproducibility": {"copy_reader": m["reproducibility"]["copy_reader"]}},
            "extraction": {"perturbed_masks": config["extraction"]["perturbed_masks"]}}


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


def model_names():
    """The bundles fit_task writes per task: radscore and the classifiers, plus clinical, nomogram and combined
    unless the config is radiomics only (clinical.predictors: [])."""
    from usrad.models import model_names as names

    return names(config)


def radiomics_only():
    from usrad.models import radiomics_only as only

    return only(config)


def clinical_tables():
    """fit_task's univariable and multivariable odds-ratio tables (not written when radiomics only)."""
    if radiomics_only():
        return {}
    return {"univariable": f"{RESULTS}/{{task}}/tables/univariable.tsv",
            "multivariable": f"{RESULTS}/{{task}}/tables/multivariable.tsv"}


def task_dir(wildcards):
    return f"{RESULTS}/{wildcards.task}"


def n_boot():
    """Bootstrap resamples for every CI of the evaluation (seeded from the config seed)."""
    from usrad.reporting.evaluation import N_BOOT

    return N_BOOT


def task_figures():
    """Figure stems of rule evaluate_task (usrad.reporting.evaluation.task_figures: no nomogram when radiomics only)."""
    from usrad.reporting.evaluation import task_figures as figures

    return figures(config)


def task_tables():
    """Tables of rule evaluate_task (usrad.reporting.evaluation.task_tables: no Table 2 when radiomics only)."""
    from usrad.reporting.evaluation import task_tables as tables

    return tables(config)


def task_figure_pdfs():
    return [f"{RESULTS}/{{task}}/figures/{name}.pdf" for name in task_figures()]


#: Figures and tables of rule evaluate_task shown in `snakemake --report`: name -> (caption, category).
REPORT_ITEMS = {
    "roc": ("roc", "Discrimination"), "forest": ("forest", "Discrimination"),
    "calibration": ("calibration", "Calibration and clinical utility"),
    "decision_curve": ("decision_curve", "Calibration and clinical utility"),
    "radscore": ("radscore", "Radiomics signature"), "confusion": ("confusion", "Discrimination"),
    "icc": ("icc", "Radiomics signature"), "lasso_cv": ("lasso", "Radiomics signature"),
    "lasso_path": ("lasso", "Radiomics signature"), "nomogram": ("nomogram", "Models"), "shap": ("shap", "Models"),
}
REPORT_TABLES = {"table2_odds_ratios": ("table2", "table2"), "table3_performance_formatted": ("table3", "table3"),
                 "delong_formatted": ("delong", "delong"), "calibration": ("calibration_table", "calibration_table")}


def evaluation_outputs():
    """Rule evaluate_task's named outputs: each figure (PNG, in the report with its caption), the PDFs, the
    tables shown in the report and the other tables; the set follows the config (usrad.reporting.evaluation.task_figures)."""
    out = {}
    for name in task_figures():
        caption, category = REPORT_ITEMS[name]
        out[name] = report(f"{RESULTS}/{{task}}/figures/{name}.png", caption=f"../report/{caption}.rst",
                           category=category, subcategory="{task}")
    out["pdfs"] = task_figure_pdfs()
    tables = task_tables()
    for name, (key, caption) in REPORT_TABLES.items():
        if name in tables:
            out[key] = report(f"{RESULTS}/{{task}}/tables/{name}.tsv", caption=f"../report/{caption}.rst",
                              category="Tables", subcategory="{task}")
    out["tables"] = task_other_tables()
    return out


def task_other_tables():
    """The evaluation's tables not listed one by one in rule evaluate_task's report() outputs."""
    return [f"{RESULTS}/{{task}}/tables/{name}.tsv" for name in task_tables() if name not in REPORT_TABLES]


def evaluation_targets():
    """Every task's evaluation outputs (figures PNG + PDF, tables)."""
    out = []
    for task in task_names():
        out += [f"{RESULTS}/{task}/figures/{n}.{ext}" for n in task_figures() for ext in ("png", "pdf")]
        out += [f"{RESULTS}/{task}/tables/{n}.tsv" for n in task_tables()]
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
