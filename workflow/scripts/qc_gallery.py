"""Rule qc_gallery: per-image QC flags and the contact sheets of every image with both readers' mask contours."""
import logging

from usrad.cohort import read_cohort_table
from usrad.errors import rule_errors
from usrad.features import read_feature_table
from usrad.reporting.qc_gallery import write_qc_gallery

smk = snakemake  # noqa: F821 (injected by the script directive)
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
logging.getLogger("fontTools").setLevel(logging.WARNING)
with rule_errors(smk):
    features, meta = read_feature_table(smk.input.features)
    write_qc_gallery(read_cohort_table(smk.input.cohort), features, smk.output.flags, smk.output.pages,
                     log=logging.getLogger("usrad.qc_gallery"), regions=meta.get("regions"))
