"""Rule validate_cohort: check the manifest and write the normalised cohort table.

On a user error (bad manifest, images, masks or task expressions) print every problem to the log and to
stderr and exit 1 without a traceback, leaving no output file.
"""
import sys
from pathlib import Path

from usrad.cohort import load_cohort, summary, write_cohort_table
from usrad.errors import UsradError


def _log(text: str) -> None:
    if snakemake.log:  # noqa: F821 (injected by Snakemake)
        Path(snakemake.log[0]).parent.mkdir(parents=True, exist_ok=True)  # noqa: F821
        Path(snakemake.log[0]).write_text(text + "\n", encoding="utf-8")  # noqa: F821


cfg = snakemake.params.config  # noqa: F821
try:
    cohort = load_cohort(snakemake.input.manifest, cfg)  # noqa: F821
except UsradError as err:
    _log(err.render())
    print(err.render(), file=sys.stderr)
    sys.exit(1)
write_cohort_table(cohort, snakemake.output.cohort)  # noqa: F821
_log(summary(cohort, cfg))
