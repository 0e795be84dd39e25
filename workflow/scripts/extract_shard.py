"""Rule extract_shard: PyRadiomics features of the patients of one shard (stable hash of patient_id)."""
import sys
from pathlib import Path

from usrad.errors import UsradError
from usrad.extract import extract_shard

out = Path(snakemake.output[0])  # noqa: F821 (snakemake is injected by the script directive)
with open(snakemake.log[0], "w") as log:  # noqa: F821
    try:
        extract_shard(snakemake.input.cohort, snakemake.input.params,  # noqa: F821
                      shard=int(snakemake.params.shard), n_shards=int(snakemake.params.n_shards),  # noqa: F821
                      out_path=out, cache_dir=snakemake.params.cache_dir, log=log)  # noqa: F821
    except UsradError as err:
        out.unlink(missing_ok=True)
        log.write(f"{err}\n")
        print(err, file=sys.stderr)
        sys.exit(1)
