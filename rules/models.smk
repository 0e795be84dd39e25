# Models: one patient-level split for every task, then every model of a task fitted in one job (radscore, the
# classifiers, and clinical/nomogram/combined unless clinical.predictors is empty: common.smk model_names)
# (selection sits inside the pipelines, so cross-validation refits it per fold: leak-free by construction).


rule split:
    input:
        cohort=f"{RESULTS}/cohort/cohort.tsv",
        plan=f"{RESULTS}/cohort/plan.txt",
    output:
        split=f"{RESULTS}/split/split.tsv",
    log:
        f"{RESULTS}/logs/split.log",
    benchmark:
        f"{RESULTS}/benchmarks/split.tsv"
    conda:
        ENV
    params:
        config=config_part("clinical", "tasks", "split", "seed"),
    script:
        "../workflow/scripts/split.py"


rule fit_task:
    input:
        features=f"{RESULTS}/features/features.parquet",
        cohort=f"{RESULTS}/cohort/cohort.tsv",
        split=f"{RESULTS}/split/split.tsv",
    output:
        **clinical_tables(),  # Table 2's odds ratios; none when radiomics only
        predictions=f"{RESULTS}/{{task}}/predictions.tsv",
        models=directory(f"{RESULTS}/{{task}}/models"),
        selection=directory(f"{RESULTS}/{{task}}/selection"),
    log:
        f"{RESULTS}/logs/{{task}}/fit_task.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{task}}/fit_task.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        config=fit_config,
    script:
        "../workflow/scripts/fit_task.py"
