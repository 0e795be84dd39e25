"""Rule checklists: CLEAR, METRICS and TRIPOD+AI filled from the run (+ the feature dictionary)."""
import logging
from pathlib import Path

from usrad.errors import rule_errors
from usrad.reporting.checklists import write_checklists
from usrad.reporting.feature_dictionary import write_feature_dictionary

smk = snakemake  # noqa: F821 (injected by the script directive)
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
with rule_errors(smk):
    write_feature_dictionary(smk.input.features, smk.output.dictionary)
    write_checklists(".", smk.params.results_dir, smk.params.tasks, smk.params.study["study"],
                     Path(smk.output.clear_tsv).parent)
