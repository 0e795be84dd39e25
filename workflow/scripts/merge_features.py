"""Rule merge_features: all shard tables -> results/features/features.parquet (metadata must agree)."""
import sys
from pathlib import Path

from usrad.errors import UsradError
from usrad.features import merge_feature_tables

out = Path(snakemake.output[0])  # noqa: F821 (snakemake is injected by the script directive)
with open(snakemake.log[0], "w") as log:  # noqa: F821
    try:
        merged = merge_feature_tables(list(snakemake.input), out)  # noqa: F821
        log.write(f"merged {len(snakemake.input)} shards: {len(merged)} rows, {merged.shape[1] - 3} features\n")  # noqa: F821
    except UsradError as err:
        out.unlink(missing_ok=True)
        log.write(f"{err}\n")
        print(err, file=sys.stderr)
        sys.exit(1)
