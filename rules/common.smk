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
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (_SRC, os.environ.get("PYTHONPATH")) if p
)


envvars:
    "PYTHONPATH",  # set just above; asserted so that Snakemake passes it on to cluster jobs


from usrad.config import canonical, validate_config  # noqa: E402
from usrad.errors import UsradError  # noqa: E402
from usrad.extract.shards import planned_images, shard_count  # noqa: E402
from usrad.reporting.outputs import EXPORT_FORMATS, N_BOOT  # noqa: E402
from usrad.reporting.outputs import task_exports as config_task_exports  # noqa: E402
from usrad.reporting.outputs import task_figures as config_task_figures  # noqa: E402
from usrad.reporting.outputs import task_tables as config_task_tables  # noqa: E402
from usrad.settings import WORKFLOW_SWITCHES, predict_model_problems  # noqa: E402
from usrad.settings import model_tasks  # noqa: E402
from usrad.settings import model_names as config_model_names  # noqa: E402
from usrad.settings import radiomics_only as config_radiomics_only  # noqa: E402


def search_space_problems(cfg, source):
    """usrad.plan's search-space check (fits toy models), imported only for a config that sets search spaces: reading
    the workflow (every parse, in every cluster job) otherwise loads no scikit-learn, XGBoost or matplotlib.
    """
    if not cfg["modelling"]["search_spaces"]:
        return []
    from usrad.plan import search_space_config_problems

    return search_space_config_problems(cfg, source)


try:
    _validated = validate_config(
        dict(config),
        source="config (config/config.yaml + --config/--configfile)",
        text_values=True,  # --config KEY="{...}" passes nested values as text
        checks=(predict_model_problems, search_space_problems),
    )
except UsradError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_validated)

RESULTS = config["results_dir"]
ENV = "../envs/usrad.yaml"


wildcard_constraints:
    task="|".join(re.escape(t["name"]) for t in config["tasks"]),
    shard=r"\d+",
    control="|".join(config["evaluation"]["negative_controls"]) or "no-control",


localrules:
    all,
    paper,
    merge_features,
    merge_control_features,
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
    sim = config["cohort"]["simulate"]
    params = {"n_patients": sim["n_patients"], "seed": config["seed"]}
    # the defaults make today's cohort: a cohort simulated before is not redone
    if sim["device_effect"] != 1.0:
        params["device_effect"] = sim["device_effect"]
    if sim["peritumoral"]:
        params["peritumoral"] = sim["peritumoral"]
    return params


def busbra_dir():
    """BUS-BRA folder (config busbra_dir, else ../shared/data/busbra beside the repository), or None."""
    path = Path(
        config["busbra_dir"]
        or Path(workflow.basedir).parent / "shared" / "data" / "busbra"
    )
    return str(path) if (path / "bus_data.csv").exists() else None


# extraction jobs sized by work (usrad.extract.shards.shard_count): the cohort's images, known before the run
N_SHARDS = shard_count(
    planned_images(
        config["cohort"],
        config["cohort"]["manifest"],
        busbra_dir() and str(Path(busbra_dir()) / "bus_data.csv"),
    ),
    config["extraction"]["shards"],
    config["extraction"]["min_images_per_shard"],
)
SHARDS = [f"{i:03d}" for i in range(N_SHARDS)]


def fitting_modelling():
    return {k: v for k, v in config["modelling"].items() if k not in WORKFLOW_SWITCHES}


def fit_config(wildcards):
    """Keys fit_task reads: seed, clinical, modelling (without the workflow switches) and its own task only, so
    that adding a task or switching the ablation on does not refit the other tasks."""
    task = model_tasks([t for t in config["tasks"] if t["name"] == wildcards.task])
    return canonical(
        {
            **config_part("seed", "clinical"),
            "modelling": fitting_modelling(),
            "tasks": task,
        }
    )


def evaluation_config():
    """Keys evaluate_task reads: seed, the clinical predictors and missing-value rule, modelling (evaluation_settings,
    LASSO scoring), the split's test size (evaluation_settings)."""
    clinical = config["clinical"]
    return canonical(
        {
            "seed": config["seed"],
            "modelling": fitting_modelling(),
            "clinical": {
                k: clinical[k] for k in ("predictors", "categorical", "missing")
            },
            "split": {"test_size": config["split"]["test_size"]},
        }
    )


def table1_exports():
    """Table 1 for people next to its TSV (usrad.reporting.export): .md .tex .docx (.html is in the report)."""
    return [f"{RESULTS}/report/table1.{fmt}" for fmt in EXPORT_FORMATS if fmt != "html"]


def cohort_report_config():
    """Keys cohort_report reads: the tasks (labels, subsets) and the clinical predictors of Table 1."""
    clinical = config["clinical"]
    return canonical(
        {
            "tasks": config["tasks"],
            "clinical": {k: clinical[k] for k in ("predictors", "categorical")},
        }
    )


def diagram_config():
    """The config for the inner `snakemake --rulegraph paper` call: all but the keys of new-patient predictions
    (not in the graph of target paper)."""
    return canonical(
        {
            k: v
            for k, v in config.items()
            if k not in ("predict_manifest", "predict_models")
        }
    )


def validation_config():
    """Keys validate_cohort reads: clinical, tasks, the PyRadiomics params (minimum ROI), CV sizes (patients per class)."""
    return canonical(
        {
            **config_part("clinical", "tasks", "radiomics_params"),
            "modelling": {"cv_folds": config["modelling"]["cv_folds"]},
            "split": {"test_size": config["split"]["test_size"]},
        }
    )


def plan_config():
    """Keys check_plan reads: what the split and the models would refuse later (usrad.plan.check_plan): the split
    and its seed, CV folds and classifiers (patients per class), the ICC filter's second segmentation.
    """
    m = config["modelling"]
    return canonical(
        {
            **config_part("clinical", "tasks", "split", "seed"),
            "modelling": {
                "cv_folds": m["cv_folds"],
                "classifiers": m["classifiers"],
                "combined_classifiers": m["combined_classifiers"],
                "reproducibility": {"copy_reader": m["reproducibility"]["copy_reader"]},
            },
            "extraction": {"perturbed_masks": config["extraction"]["perturbed_masks"]},
        }
    )


def config_part(*keys):
    """Only the config keys a rule reads, as its params, keys sorted (the order of a configfile does not matter);
    changing another key does not rerun it. Tasks come without their wording (usrad.settings.TASK_TEXT_KEYS).
    """
    return canonical(
        {
            key: model_tasks(config[key]) if key == "tasks" else config[key]
            for key in keys
        }
    )


def shard_index(wildcards):
    return int(wildcards.shard)


def perturbation_params():
    """Perturbed reader-1 masks for the ICC filter (extraction.perturbed_masks) and their seed."""
    ext = config["extraction"]
    return canonical(
        {
            "n": ext["perturbed_masks"],
            "radius_px": ext["perturbation_radius_px"],
            "seed": config["seed"],
        }
    )


def region_params():
    """Peritumoral regions extracted besides the lesion (extraction.regions)."""
    return canonical(config["extraction"]["regions"])


def busbra_manifest_params():
    return canonical(dict(config["cohort"]["busbra"], seed=config["seed"]))


def feature_cache_dir():
    return config["extraction"]["cache_dir"] or f"{RESULTS}/features/cache"


def feature_shards():
    return expand(f"{RESULTS}/features/shards/{{shard}}.parquet", shard=SHARDS)


def control_shards(wildcards):
    """The extraction shards of one negative control (rules/controls.smk), as the cohort's."""
    return expand(
        f"{RESULTS}/controls/{wildcards.control}/shards/{{shard}}.parquet",
        shard=SHARDS,
    )


def control_features():
    """The feature tables of the negative controls (evaluation.negative_controls), in the config's order."""
    return [
        f"{RESULTS}/controls/{control}/features.parquet"
        for control in config["evaluation"]["negative_controls"]
    ]


def negative_control_input():
    """evaluate_task's input for Table 3's negative-control block: none when no controls are configured."""
    if not config["evaluation"]["negative_controls"]:
        return {}
    return {"negative_controls": f"{RESULTS}/{{task}}/tables/negative_controls.tsv"}


def task_names():
    return [task["name"] for task in config["tasks"]]


def model_names():
    """The bundles fit_task writes per task: radscore and the classifiers, plus clinical, nomogram and combined
    unless the config is radiomics only (clinical.predictors: [])."""
    return config_model_names(config)


def radiomics_only():
    return config_radiomics_only(config)


def clinical_tables():
    """fit_task's univariable and multivariable odds-ratio tables (not written when radiomics only)."""
    if radiomics_only():
        return {}
    return {
        "univariable": f"{RESULTS}/{{task}}/tables/univariable.tsv",
        "multivariable": f"{RESULTS}/{{task}}/tables/multivariable.tsv",
    }


def task_dir(wildcards):
    return f"{RESULTS}/{wildcards.task}"


def n_boot():
    """Bootstrap resamples for every CI of the evaluation (seeded from the config seed)."""
    return N_BOOT


def task_figures():
    """Figure stems evaluate_task writes (usrad.reporting.outputs.task_figures; no nomogram when radiomics only)."""
    return config_task_figures(config)


def task_tables():
    """Tables evaluate_task writes (usrad.reporting.outputs.task_tables; no Table 2 when radiomics only)."""
    return config_task_tables(config)


def task_figure_pdfs():
    return [f"{RESULTS}/{{task}}/figures/{name}.pdf" for name in task_figures()]


#: Figures of evaluate_task shown in `snakemake --report`, name -> (caption, category, name shown).
REPORT_ITEMS = {
    "roc": ("roc", "Discrimination", "ROC curves"),
    "forest": ("forest", "Discrimination", "AUC forest plot"),
    "calibration": (
        "calibration",
        "Calibration and clinical utility",
        "Calibration curves",
    ),
    "decision_curve": (
        "decision_curve",
        "Calibration and clinical utility",
        "Decision curves",
    ),
    "radscore": ("radscore", "Radiomics signature", "Rad-score by class"),
    "confusion": ("confusion", "Discrimination", "Confusion matrices"),
    "icc": ("icc", "Radiomics signature", "Feature reproducibility (ICC)"),
    "lasso_cv": ("lasso", "Radiomics signature", "LASSO cross-validation"),
    "lasso_path": ("lasso", "Radiomics signature", "LASSO coefficient paths"),
    "nomogram": ("nomogram", "Models", "Nomogram"),
    "shap": ("shap", "Models", "SHAP feature importance"),
}
#: Tables of evaluate_task shown in the report as tables (their .html rendering; usrad.reporting.export),
#: stem -> (output key, caption, name shown); the calibration table (numbers only) is shown as its TSV.
REPORT_TABLES = {
    "table2_odds_ratios": ("table2", "table2", "Table 2: odds ratios"),
    "table3_performance": ("table3", "table3", "Table 3: performance"),
    "delong": ("delong", "delong", "AUC comparisons (DeLong)"),
}
REPORT_TSV = {
    "calibration": ("calibration_table", "calibration_table", "Calibration table")
}


def report_item(path, caption, category, name):
    """One evaluate_task output in `snakemake --report`: its caption, category, the task as subcategory and
    labels (the name shown and the task) instead of the file name."""
    return report(
        path,
        caption=f"../report/{caption}.rst",
        category=category,
        subcategory="{task}",
        labels={"name": name, "task": "{task}"},
    )


def evaluation_outputs():
    """Rule evaluate_task's named outputs: each figure (PNG, in the report with its caption), the PDFs, the
    tables shown in the report (Tables 2, 3 and DeLong as HTML, the calibration table as TSV), the other
    tables and the people's copies (.md .tex .docx); the set follows the config (usrad.reporting.outputs).
    """
    out = {}
    for name in task_figures():
        caption, category, shown = REPORT_ITEMS[name]
        out[name] = report_item(
            f"{RESULTS}/{{task}}/figures/{name}.png", caption, category, shown
        )
    out["pdfs"] = task_figure_pdfs()
    exports = task_exports()
    for name, (key, caption, shown) in REPORT_TABLES.items():
        if name in exports:
            out[key] = report_item(
                f"{RESULTS}/{{task}}/tables/{name}.html", caption, "Tables", shown
            )
    for name, (key, caption, shown) in REPORT_TSV.items():
        out[key] = report_item(
            f"{RESULTS}/{{task}}/tables/{name}.tsv", caption, "Tables", shown
        )
    out["tables"] = task_other_tables()
    out["exports"] = [
        f"{RESULTS}/{{task}}/tables/{name}.{fmt}"
        for name in exports
        for fmt in EXPORT_FORMATS
        if fmt != "html"
    ]
    return out


def task_other_tables():
    """The evaluation's TSV tables not listed one by one in rule evaluate_task's report() outputs."""
    return [
        f"{RESULTS}/{{task}}/tables/{name}.tsv"
        for name in task_tables()
        if name not in REPORT_TSV
    ]


def task_exports():
    """Tables evaluate_task also writes for people (usrad.reporting.outputs.task_exports)."""
    return config_task_exports(config)


def evaluation_targets():
    """Every task's evaluation outputs (figures PNG + PDF, tables, the tables for people)."""
    out = []
    for task in task_names():
        out += [
            f"{RESULTS}/{task}/figures/{n}.{ext}"
            for n in task_figures()
            for ext in ("png", "pdf")
        ]
        out += [f"{RESULTS}/{task}/tables/{n}.tsv" for n in task_tables()]
        out += [
            f"{RESULTS}/{task}/tables/{n}.{fmt}"
            for n in task_exports()
            for fmt in EXPORT_FORMATS
        ]
        if config["modelling"]["ablation"]:
            out += [
                f"{RESULTS}/{task}/tables/ablation.tsv",
                f"{RESULTS}/{task}/figures/ablation.png",
            ]
        if config["evaluation"]["negative_controls"]:
            out += [
                f"{RESULTS}/{task}/tables/negative_controls.tsv",
                f"{RESULTS}/{task}/figures/negative_controls.png",
            ]
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
        f"{RESULTS}/report/checklist_clear.md",
        f"{RESULTS}/report/feature_dictionary.tsv",
        f"{RESULTS}/report/qc/qc_flags.tsv",
        f"{RESULTS}/report/qc/gallery",
    ]


def checklist_study():
    """The `study` section (docs/checklists.md): read by the checklists and the summary's Study section."""
    return config_part("study")


def all_targets():
    targets = [f"{RESULTS}/features/features.parquet"]
    targets += [f"{RESULTS}/{task}/predictions.tsv" for task in task_names()]
    if is_demo() and busbra_dir():
        targets.append(f"{RESULTS}/demo/figures/simulated_vs_busbra.png")
    targets += paper_targets()
    return targets


# ---- internal validation (rules/validation.smk)
def internal_validation_targets():
    """results/{task}/tables/internal_validation.tsv + .md for every task with `bootstrap`; none with `split`."""
    if config["modelling"]["internal_validation"] != "bootstrap":
        return []
    return [
        f"{RESULTS}/{task}/tables/internal_validation.{ext}"
        for task in task_names()
        for ext in ("tsv", "md")
    ]


def internal_validation_config():
    """The keys internal_validation reads, everything fit_task reads plus the number of resamples."""
    return config_part("seed", "clinical", "modelling", "tasks")


def combined_bundle():
    """The combined model's bundle.json (its chosen classifier type), or nothing when radiomics only."""
    return [] if radiomics_only() else [f"{RESULTS}/{{task}}/models"]


# ---- model cards and predictions (rules/predict.smk)
def card_models():
    """Every bundle fit_task writes for a task (the folder names under results/{task}/models; common.smk)."""
    return model_names()


def card_files():
    return [
        f"{RESULTS}/{{task}}/card/{m}.{ext}"
        for m in card_models()
        for ext in ("md", "json")
    ]


def nomogram_files():
    """The printable nomogram and its HTML page (none when radiomics only: there is no nomogram model)."""
    if "nomogram" not in card_models():
        return {}
    return {
        f"nomogram_{ext}": f"{RESULTS}/{{task}}/card/nomogram.{ext}"
        for ext in ("png", "pdf", "html")
    }


def task_entry(wildcards):
    """The task's config item (its wording for the cards, the nomogram page and figures: usrad.reporting.wording)."""
    return canonical(next(t for t in config["tasks"] if t["name"] == wildcards.task))


def task_entries():
    """Every task's config item (the summary's wording of each task)."""
    return canonical(config["tasks"])


def predict_manifest_input(wildcards):
    """The new patients' manifest (config predict_manifest); asked for only when a prediction is requested."""
    if not config["predict_manifest"]:
        raise WorkflowError(
            "set the new patients' manifest: --config predict_manifest=path/to/manifest.csv"
        )
    return config["predict_manifest"]


def predict_model_dir(wildcards):
    return f"{RESULTS}/{wildcards.task}/models/{wildcards.model}"


def predict_targets():
    """Model cards and nomograms of every task; the new patients' predictions when predict_manifest is set."""
    out = []
    for task in task_names():
        out += expand(card_files(), task=task)
        out += expand(list(nomogram_files().values()), task=task)
        if config["predict_manifest"]:
            out += [
                f"{RESULTS}/predict/{task}/{m}/predictions.tsv"
                for m in config["predict_models"]
            ]
    return out


def results_prefix(wildcards, output):
    """The results folder (config results_dir), from the summary's own output path results_dir/report/summary.md."""
    return str(Path(output.md).parent.parent)


def job_message(name, wildcard_names, has_log):
    """The terminal line of a job: its rule, wildcards and log (filled in by Snakemake when the job starts)."""
    wildcards = ", ".join(f"{w}={{wildcards.{w}}}" for w in wildcard_names)
    return (
        name
        + (f" ({wildcards})" if wildcards else "")
        + (", log {log}" if has_log else "")
    )


def set_job_messages(rules):
    """One short terminal line per job (job_message) instead of Snakemake's lists of every input, output and
    resource of it, thousands of characters wide for the report rules. A rule's own `message:` is kept; a failed
    job is still reported in full (files, log) and its log printed (profiles/default: show-failed-logs).
    """
    for r in rules:
        if r.message is None:
            r.message = job_message(r.name, sorted(r.wildcard_names), bool(r.log))
