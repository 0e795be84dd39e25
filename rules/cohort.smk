# Cohort: simulate the demo cohort (when no manifest is configured) and validate the manifest.


rule simulate:
    output:
        manifest=f"{RESULTS}/demo/manifest.tsv",
        ground_truth=f"{RESULTS}/demo/ground_truth.tsv",
    log:
        f"{RESULTS}/logs/simulate.log",
    benchmark:
        f"{RESULTS}/benchmarks/simulate.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        sim=simulate_params(),
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
    log:
        f"{RESULTS}/logs/compare_busbra.log",
    benchmark:
        f"{RESULTS}/benchmarks/compare_busbra.tsv"
    conda:
        ENV
    params:
        busbra=busbra_dir(),
    script:
        "../workflow/scripts/compare_busbra.py"


rule validate_cohort:
    input:
        manifest=manifest_path(),
        params=radiomics_params(),
    output:
        cohort=f"{RESULTS}/cohort/cohort.tsv",
    log:
        f"{RESULTS}/logs/validate_cohort.log",
    benchmark:
        f"{RESULTS}/benchmarks/validate_cohort.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        config=validation_config(),
    script:
        "../workflow/scripts/validate_cohort.py"


# The config against the cohort (split, classes in every part, predictors, ICC copy): a small job that the
# extraction waits for on a first run (ancient: a later change of a modelling key reruns it, not the extraction).
rule check_plan:
    input:
        cohort=f"{RESULTS}/cohort/cohort.tsv",
    output:
        plan=f"{RESULTS}/cohort/plan.txt",
    log:
        f"{RESULTS}/logs/check_plan.log",
    benchmark:
        f"{RESULTS}/benchmarks/check_plan.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        config=plan_config(),
    script:
        "../workflow/scripts/check_plan.py"


rule busbra_manifest:
    output:
        f"{RESULTS}/cohort/busbra_manifest.tsv",
    log:
        f"{RESULTS}/logs/busbra_manifest.log",
    benchmark:
        f"{RESULTS}/benchmarks/busbra_manifest.tsv"
    conda:
        ENV
    params:
        busbra=busbra_dir(),
        settings=busbra_manifest_params(),
    script:
        "../workflow/scripts/busbra_manifest.py"
