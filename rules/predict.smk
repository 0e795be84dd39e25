# Apply the trained models: a model card (Markdown + JSON) for every bundle of a task, the printable nomogram
# and its self-contained HTML page (written after the evaluation, which gives the test performance with CIs),
# and, when `predict_manifest` is set, the predictions for new patients (docs/predict.md).


def card_models():
    """Every bundle fit_task writes for a task (the folder names under results/{task}/models; common.smk)."""
    return model_names()


def card_files():
    return [f"{RESULTS}/{{task}}/card/{m}.{ext}" for m in card_models() for ext in ("md", "json")]


def nomogram_files():
    """The printable nomogram and its HTML page (none when radiomics only: there is no nomogram model)."""
    if "nomogram" not in card_models():
        return {}
    return {f"nomogram_{ext}": f"{RESULTS}/{{task}}/card/nomogram.{ext}" for ext in ("png", "pdf", "html")}


def task_description(wildcards):
    return next((t.get("description") or "" for t in config["tasks"] if t["name"] == wildcards.task), "")


def predict_manifest_input(wildcards):
    """The new patients' manifest (config predict_manifest); asked for only when a prediction is requested."""
    if not config["predict_manifest"]:
        raise WorkflowError("set the new patients' manifest: --config predict_manifest=path/to/manifest.csv")
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
            out += [f"{RESULTS}/predict/{task}/{m}/predictions.tsv" for m in config["predict_models"]]
    return out


rule model_card:
    input:
        predictions=f"{RESULTS}/{{task}}/predictions.tsv",
        models=f"{RESULTS}/{{task}}/models",
        performance=f"{RESULTS}/{{task}}/tables/table3_performance.tsv",
    output:
        cards=card_files(),
        **nomogram_files(),
    params:
        models=card_models(),
        demo=is_demo(),
        task_description=task_description,
    log:
        f"{RESULTS}/logs/{{task}}/model_card.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{task}}/model_card.tsv"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=10,
    conda:
        ENV
    script:
        "../workflow/scripts/model_card.py"


rule predict:
    wildcard_constraints:
        task="[A-Za-z][A-Za-z0-9_]*",
        model="[a-z]+",
    input:
        manifest=predict_manifest_input,
        models=f"{RESULTS}/{{task}}/models",
    output:
        predictions=f"{RESULTS}/predict/{{task}}/{{model}}/predictions.tsv",
    params:
        model_dir=predict_model_dir,
        cache_dir=f"{RESULTS}/predict/cache",
    log:
        f"{RESULTS}/logs/predict/{{task}}/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/predict/{{task}}/{{model}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        ENV
    script:
        "../workflow/scripts/predict.py"
