# Cohort: simulate the demo cohort (when no manifest is configured) and validate the manifest.


rule simulate:
    output:
        manifest=f"{RESULTS}/demo/manifest.tsv",
        ground_truth=f"{RESULTS}/demo/ground_truth.tsv",
    params:
        sim=simulate_params(),
    log:
        f"{RESULTS}/logs/simulate.log",
    benchmark:
        f"{RESULTS}/benchmarks/simulate.tsv"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    script:
        "../workflow/scripts/simulate.py"


rule compare_busbra:
    input:
        manifest=f"{RESULTS}/demo/manifest.tsv",
    output:
        png=report(
            f"{RESULTS}/demo/figures/simulated_vs_busbra.png",
            caption="../report/simulated_vs_busbra.rst",
            category="Cohort",
        ),
        pdf=f"{RESULTS}/demo/figures/simulated_vs_busbra.pdf",
    params:
        busbra=busbra_dir(),
    log:
        f"{RESULTS}/logs/compare_busbra.log",
    benchmark:
        f"{RESULTS}/benchmarks/compare_busbra.tsv"
    conda:
        ENV
    script:
        "../workflow/scripts/compare_busbra.py"


rule validate_cohort:
    input:
        manifest=manifest_path(),
        params=radiomics_params(),
    output:
        cohort=f"{RESULTS}/cohort/cohort.tsv",
    params:
        config=validation_config(),
    log:
        f"{RESULTS}/logs/validate_cohort.log",
    benchmark:
        f"{RESULTS}/benchmarks/validate_cohort.tsv"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    script:
        "../workflow/scripts/validate_cohort.py"


# The config against the cohort (split, classes in every part, predictors, ICC copy): a small job that the
# extraction waits for on a first run (ancient: a later change of a modelling key reruns it, not the extraction).
rule check_plan:
    input:
        cohort=f"{RESULTS}/cohort/cohort.tsv",
    output:
        plan=f"{RESULTS}/cohort/plan.txt",
    params:
        config=plan_config(),
    log:
        f"{RESULTS}/logs/check_plan.log",
    benchmark:
        f"{RESULTS}/benchmarks/check_plan.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    script:
        "../workflow/scripts/check_plan.py"


rule busbra_manifest:
    output:
        f"{RESULTS}/cohort/busbra_manifest.tsv",
    params:
        busbra=busbra_dir(),
        settings=busbra_manifest_params(),
    log:
        f"{RESULTS}/logs/busbra_manifest.log",
    benchmark:
        f"{RESULTS}/benchmarks/busbra_manifest.tsv"
    conda:
        ENV
    script:
        "../workflow/scripts/busbra_manifest.py"
