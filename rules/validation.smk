# Internal validation (modelling.internal_validation: bootstrap): Harrell's optimism-corrected bootstrap of each
# task's development (training) rows, the whole pipeline refitted on every resample (usrad.validation). Not in the
# DAG with the default `split`. It reads fit_task's combined bundle only for the classifier type chosen on the full
# data (kept fixed in the resamples; docs/modelling.md).


def internal_validation_targets():
    """results/{task}/tables/internal_validation.tsv + .md for every task with `bootstrap`; none with `split`."""
    if config["modelling"]["internal_validation"] != "bootstrap":
        return []
    return [f"{RESULTS}/{task}/tables/internal_validation.{ext}" for task in task_names() for ext in ("tsv", "md")]


def internal_validation_config():
    """The keys rule internal_validation reads: everything fit_task reads, plus the number of resamples."""
    return config_part("seed", "clinical", "modelling", "tasks")


def combined_bundle():
    """The combined model's bundle.json (its chosen classifier type), or nothing when radiomics only."""
    return [] if radiomics_only() else [f"{RESULTS}/{{task}}/models"]


rule internal_validation:
    input:
        features=f"{RESULTS}/features/features.parquet",
        cohort=f"{RESULTS}/cohort/cohort.tsv",
        split=f"{RESULTS}/split/split.tsv",
        models=combined_bundle(),
    output:
        tsv=f"{RESULTS}/{{task}}/tables/internal_validation.tsv",
        md=f"{RESULTS}/{{task}}/tables/internal_validation.md",
    params:
        config=internal_validation_config(),
    log:
        f"{RESULTS}/logs/{{task}}/internal_validation.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{task}}/internal_validation.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        ENV
    script:
        "../workflow/scripts/internal_validation.py"
