"""Rule validate_cohort: check the manifest (every problem at once, before any extraction) and write the
normalised cohort table. The config against the cohort is rule check_plan's."""
import sys
from pathlib import Path

from usrad.cohort import load_cohort, summary, write_cohort_table
from usrad.errors import rule_errors

smk = snakemake  # noqa: F821 (injected by the script directive)
with rule_errors(smk):
    cfg = smk.params.config
    cohort = load_cohort(smk.input.manifest, cfg)
    write_cohort_table(cohort, smk.output.cohort)
    text = summary(cohort, cfg)
    Path(smk.log[0]).write_text(text + "\n", encoding="utf-8")
    if cohort.attrs.get("warnings"):  # e.g. masks touching the image border: shown, not fatal
        print(text, file=sys.stderr)
