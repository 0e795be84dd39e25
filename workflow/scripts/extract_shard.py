"""Rule extract_shard: PyRadiomics features of the patients of one shard (stable hash of patient_id)."""
from pathlib import Path

from usrad.errors import rule_errors
from usrad.extract import extract_shard

smk = snakemake  # noqa: F821 (injected by the script directive)
with rule_errors(smk), open(smk.log[0], "w") as log:
    # the shard's status file beside the shard logs, results/logs/extract/progress/, read by `usrad progress`
    extract_shard(smk.input.cohort, smk.input.params, shard=int(smk.params.shard),
                  n_shards=int(smk.params.n_shards), out_path=smk.output[0], cache_dir=smk.params.cache_dir, log=log,
                  perturbation=dict(smk.params.perturbation), status_dir=Path(smk.log[0]).with_name("progress"),
                  regions=dict(smk.params.regions))
