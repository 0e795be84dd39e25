"""Rule control_cohort: one negative control's images (and moved masks) and its cohort table."""
from pathlib import Path

from usrad.atomic import write_tsv
from usrad.cohort import read_cohort_table, write_cohort_table
from usrad.errors import rule_errors
from usrad.extract import control_cohort

smk = snakemake  # noqa: F821 (injected by the script directive)
with rule_errors(smk):
    cohort = read_cohort_table(smk.input.cohort)
    table = control_cohort(cohort, smk.wildcards.control, Path(smk.output.files).resolve(), seed=int(smk.params.seed),
                           perturbation=dict(smk.params.perturbation),
                           tissue_threshold=int(smk.params.tissue_threshold))
    placements = table.attrs["placements"]  # per image: ROI pixels; moved_roi: offset and overlap with the lesion
    write_tsv(placements, Path(smk.output.files) / "placements.tsv")
    write_cohort_table(table, smk.output.cohort)
    Path(smk.log[0]).write_text(f"{smk.wildcards.control}: {len(table)} images written\n"
                                f"{placements.describe().to_string()}\n", encoding="utf-8")
