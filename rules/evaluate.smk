# Evaluate: every paper figure and table of one task, from its predictions, bundles and selection tables
# (plus the feature table for the nomogram's ranges and the SHAP values). Thresholds come from the bundles,
# fixed on training data; the bootstrap (2,000 patient-level resamples) is seeded from the config seed. Every
# interval and test is patient-level (groups = patient_id); every figure draws the tables (e.g. calibration.tsv
# and calibration_curve.tsv, roc_curve.tsv and roc_band.tsv; outputs listed by usrad.reporting.outputs.task_tables).
# Tables 2, 3 and the DeLong comparisons are also written for people as .md, .tex, .docx and .html (the report
# shows the .html; usrad.reporting.export, outputs.task_exports).


rule evaluate_task:
    input:
        **clinical_tables(),
        **negative_control_input(),
        predictions=f"{RESULTS}/{{task}}/predictions.tsv",
        models=f"{RESULTS}/{{task}}/models",
        selection=f"{RESULTS}/{{task}}/selection",
        features=f"{RESULTS}/features/features.parquet",
        cohort=f"{RESULTS}/cohort/cohort.tsv",
    output:
        # figures and tables (each in `snakemake --report` with its caption and a short name); no nomogram
        # and no Table 2 when the config is radiomics only (common.smk: evaluation_outputs)
        **evaluation_outputs(),
    log:
        f"{RESULTS}/logs/{{task}}/evaluate_task.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{task}}/evaluate_task.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        config=evaluation_config(),
        task_dir=task_dir,
        task=task_entry,
        n_boot=n_boot(),
    script:
        "../workflow/scripts/evaluate_task.py"


rule ablation:
    input:
        features=f"{RESULTS}/features/features.parquet",
        cohort=f"{RESULTS}/cohort/cohort.tsv",
        split=f"{RESULTS}/split/split.tsv",
    output:
        table=report(
            f"{RESULTS}/{{task}}/tables/ablation.tsv",
            caption="../report/ablation.rst",
            category="Radiomics signature",
            subcategory="{task}",
            labels={"name": "Ablation by feature class (table)", "task": "{task}"},
        ),
        png=report(
            f"{RESULTS}/{{task}}/figures/ablation.png",
            caption="../report/ablation.rst",
            category="Radiomics signature",
            subcategory="{task}",
            labels={"name": "Ablation by feature class", "task": "{task}"},
        ),
        pdf=f"{RESULTS}/{{task}}/figures/ablation.pdf",
    log:
        f"{RESULTS}/logs/{{task}}/ablation.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{task}}/ablation.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        config=config_part("seed", "clinical", "modelling", "tasks"),
        n_boot=n_boot(),
    script:
        "../workflow/scripts/ablation.py"
