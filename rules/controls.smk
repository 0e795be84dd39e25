# Negative controls (evaluation.negative_controls; README, "Negative controls"): each control is a copy of the
# cohort with scrambled images (shuffled or randomised ROI grey levels) or masks moved to normal tissue
# (usrad.extract.controls), extracted exactly as the cohort (same shards, parameters, readers, regions and
# cache), then the rad-score signature of each feature class refitted on its features with the real split; the
# AUCs stand beside the real ones in a table, a figure and a block of Table 3.


rule control_cohort:
    input:
        cohort=f"{RESULTS}/cohort/cohort.tsv",
        plan=ancient(f"{RESULTS}/cohort/plan.txt"),
    output:
        cohort=f"{RESULTS}/controls/{{control}}/cohort.tsv",
        files=directory(f"{RESULTS}/controls/{{control}}/files"),
    log:
        f"{RESULTS}/logs/controls/{{control}}/control_cohort.log",
    benchmark:
        f"{RESULTS}/benchmarks/controls/{{control}}/control_cohort.tsv"
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        seed=config["seed"],
        perturbation=perturbation_params(),
        tissue_threshold=config["extraction"]["regions"]["tissue_threshold"],
    script:
        "../workflow/scripts/control_cohort.py"


use rule extract_shard as extract_control_shard with:
    input:
        cohort=f"{RESULTS}/controls/{{control}}/cohort.tsv",
        plan=ancient(f"{RESULTS}/cohort/plan.txt"),
        params=radiomics_params(),
    output:
        f"{RESULTS}/controls/{{control}}/shards/{{shard}}.parquet",
    log:
        f"{RESULTS}/logs/controls/{{control}}/extract/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/controls/{{control}}/extract/{{shard}}.tsv"


use rule merge_features as merge_control_features with:
    input:
        control_shards,
    output:
        f"{RESULTS}/controls/{{control}}/features.parquet",
    log:
        f"{RESULTS}/logs/controls/{{control}}/merge_features.log",
    benchmark:
        f"{RESULTS}/benchmarks/controls/{{control}}/merge_features.tsv"


rule negative_controls:
    input:
        features=f"{RESULTS}/features/features.parquet",
        controls=control_features(),
        cohort=f"{RESULTS}/cohort/cohort.tsv",
        split=f"{RESULTS}/split/split.tsv",
    output:
        table=report(
            f"{RESULTS}/{{task}}/tables/negative_controls.tsv",
            caption="../report/negative_controls.rst",
            category="Radiomics signature",
            subcategory="{task}",
            labels={"name": "Negative controls (table)", "task": "{task}"},
        ),
        png=report(
            f"{RESULTS}/{{task}}/figures/negative_controls.png",
            caption="../report/negative_controls.rst",
            category="Radiomics signature",
            subcategory="{task}",
            labels={"name": "Negative controls", "task": "{task}"},
        ),
        pdf=f"{RESULTS}/{{task}}/figures/negative_controls.pdf",
    log:
        f"{RESULTS}/logs/{{task}}/negative_controls.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{task}}/negative_controls.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=3000,
        runtime=60,
    params:
        config=config_part("seed", "clinical", "modelling", "tasks"),
        controls=config["evaluation"]["negative_controls"],
        n_boot=n_boot(),
    script:
        "../workflow/scripts/negative_controls.py"
