"""Rule cohort_report: Table 1 (training vs test), the cohort flow figure and its counts."""
import logging
from pathlib import Path

from usrad.cohort import read_cohort_table
from usrad.errors import rule_errors
from usrad.reporting.cohort import cohort_report
from usrad.split import read_split

smk = snakemake  # noqa: F821 (injected by the script directive)
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
logging.getLogger("fontTools").setLevel(logging.WARNING)
with rule_errors(smk):
    cfg = smk.params.config
    cohort = read_cohort_table(smk.input.cohort, categorical=cfg["clinical"]["categorical"])
    cohort_report(cohort, read_split(smk.input.split), cfg, Path(smk.output.table1).parent)
