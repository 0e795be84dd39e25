"""Rule merge_features: all shard tables -> results/features/features.parquet (metadata must agree)."""
from pathlib import Path

from usrad.errors import rule_errors
from usrad.features import merge_feature_tables

smk = snakemake  # noqa: F821 (injected by the script directive)
with rule_errors(smk):
    merged = merge_feature_tables(list(smk.input), smk.output[0])
    Path(smk.log[0]).write_text(f"merged {len(smk.input)} shards: {len(merged)} rows, {merged.shape[1] - 3} features\n")
