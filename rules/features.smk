# Features: PyRadiomics extraction in shards (one Python process per shard, radiomics imported once),
# a per-image cache so that a changed or added patient re-extracts only its own images, then one table.


rule extract_shard:
    input:
        cohort=f"{RESULTS}/cohort/cohort.tsv",
        plan=ancient(f"{RESULTS}/cohort/plan.txt"),
        params=radiomics_params(),
    output:
        f"{RESULTS}/features/shards/{{shard}}.parquet",
    log:
        f"{RESULTS}/logs/extract/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/extract/{{shard}}.tsv"
    group:
        "extract"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=60,
    params:
        shard=shard_index,
        n_shards=N_SHARDS,
        cache_dir=feature_cache_dir(),
        perturbation=perturbation_params(),
        regions=region_params(),
    script:
        "../workflow/scripts/extract_shard.py"


rule merge_features:
    input:
        feature_shards(),
    output:
        f"{RESULTS}/features/features.parquet",
    log:
        f"{RESULTS}/logs/merge_features.log",
    benchmark:
        f"{RESULTS}/benchmarks/merge_features.tsv"
    conda:
        ENV
    script:
        "../workflow/scripts/merge_features.py"
