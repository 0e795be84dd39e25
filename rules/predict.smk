# Apply the trained models: a model card (Markdown + JSON) for every bundle of a task, the printable nomogram
# and its self-contained HTML page (written after the evaluation, which gives the test performance with CIs),
# and, when `predict_manifest` is set, the predictions for new patients (docs/predict.md).


rule model_card:
    input:
        predictions=f"{RESULTS}/{{task}}/predictions.tsv",
        models=f"{RESULTS}/{{task}}/models",
        performance=f"{RESULTS}/{{task}}/tables/table3_performance.tsv",
    output:
        **nomogram_files(),
        cards=card_files(),
    log:
        f"{RESULTS}/logs/{{task}}/model_card.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{task}}/model_card.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1500,
        runtime=10,
    params:
        models=card_models(),
        demo=is_demo(),
        task=task_entry,
    script:
        "../workflow/scripts/model_card.py"


rule predict:
    input:
        manifest=predict_manifest_input,
        models=f"{RESULTS}/{{task}}/models",
    output:
        predictions=f"{RESULTS}/predict/{{task}}/{{model}}/predictions.tsv",
    log:
        f"{RESULTS}/logs/predict/{{task}}/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/predict/{{task}}/{{model}}.tsv"
    wildcard_constraints:
        task="[A-Za-z][A-Za-z0-9_]*",
        model="[a-z]+",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        model_dir=predict_model_dir,
        cache_dir=f"{RESULTS}/predict/cache",
    script:
        "../workflow/scripts/predict.py"
