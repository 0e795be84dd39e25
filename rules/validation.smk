# Internal validation (modelling.internal_validation: bootstrap): Harrell's optimism-corrected bootstrap of each
# task's development (training) rows, the whole pipeline refitted on every resample (usrad.validation). Not in the
# DAG with the default `split`. It reads fit_task's combined bundle only for the classifier type chosen on the full
# data (kept fixed in the resamples; docs/modelling.md).


rule internal_validation:
    input:
        features=f"{RESULTS}/features/features.parquet",
        cohort=f"{RESULTS}/cohort/cohort.tsv",
        split=f"{RESULTS}/split/split.tsv",
        models=combined_bundle(),
    output:
        tsv=f"{RESULTS}/{{task}}/tables/internal_validation.tsv",
        md=f"{RESULTS}/{{task}}/tables/internal_validation.md",
    log:
        f"{RESULTS}/logs/{{task}}/internal_validation.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{task}}/internal_validation.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        config=internal_validation_config(),
    script:
        "../workflow/scripts/internal_validation.py"
