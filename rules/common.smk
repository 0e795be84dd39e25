# Shared helpers: config validation (fills schema defaults) and small named functions used as
# input/params by the rules. No rule logic here.
import os
import sys
from pathlib import Path

# The package lives in src/: importable here, in every rule script and in cluster jobs (which inherit
# the environment and re-read this file), whether or not it is pip-installed.
_SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, _SRC)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_SRC, os.environ.get("PYTHONPATH")) if p)

from usrad.config import validate_config  # noqa: E402
from usrad.errors import UsradError  # noqa: E402

try:
    _validated = validate_config(dict(config), source="config (config/config.yaml + --config/--configfile)")
except UsradError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_validated)

RESULTS = "results"
ENV = "../envs/usrad.yaml"
N_SHARDS = config["extraction"]["shards"]
SHARDS = [f"{i:03d}" for i in range(N_SHARDS)]

localrules:
    all,
    merge_features,
    split,


def manifest_path():
    """The cohort manifest: the user's, or the simulated demo cohort's."""
    if config["cohort"]["manifest"]:
        return config["cohort"]["manifest"]
    return f"{RESULTS}/demo/manifest.tsv"


def radiomics_params():
    return config["radiomics_params"]


def simulate_params():
    return {"n_patients": config["cohort"]["simulate"]["n_patients"], "seed": config["seed"]}


def busbra_dir():
    """BUS-BRA folder (config busbra_dir, else ../shared/data/busbra beside the repository), or None."""
    path = Path(config["busbra_dir"] or Path(workflow.basedir).parent / "shared" / "data" / "busbra")
    return str(path) if (path / "bus_data.csv").exists() else None


def validated_config():
    return dict(config)


def shard_index(wildcards):
    return int(wildcards.shard)


def feature_cache_dir():
    return f"{RESULTS}/features/cache"


def feature_shards():
    return expand(f"{RESULTS}/features/shards/{{shard}}.parquet", shard=SHARDS)


def task_names():
    return [task["name"] for task in config["tasks"]]


def all_targets():
    targets = [f"{RESULTS}/features/features.parquet"]
    targets += [f"{RESULTS}/{task}/predictions.tsv" for task in task_names()]
    if not config["cohort"]["manifest"] and busbra_dir():
        targets.append(f"{RESULTS}/demo/figures/simulated_vs_busbra.png")
    return targets
