"""Rule validate_cohort: check the manifest (every problem at once) and write the normalised cohort table."""
from pathlib import Path

from usrad.cohort import load_cohort, summary, write_cohort_table
from usrad.errors import rule_errors

smk = snakemake  # noqa: F821 (injected by the script directive)
with rule_errors(smk):
    cfg = smk.params.config
    cohort = load_cohort(smk.input.manifest, cfg)
    write_cohort_table(cohort, smk.output.cohort)
    Path(smk.log[0]).write_text(summary(cohort, cfg) + "\n", encoding="utf-8")
