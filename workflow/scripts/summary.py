"""Rule summary: methods-and-results text in which every number is read from a results file (+ sources)."""
import logging

from usrad.errors import rule_errors
from usrad.reporting.summary import write_summary

smk = snakemake  # noqa: F821 (injected by the script directive)
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
with rule_errors(smk):
    gt = smk.input.ground_truth  # a list: one file for the demo cohort, empty for a real one
    gt = [gt] if isinstance(gt, str) else list(gt)
    write_summary(".", smk.params.tasks, smk.output.md, smk.output.sources, out_html=smk.output.html,
                  demo=smk.params.demo, ground_truth=gt[0] if gt else None,
                  results_dir=smk.params.results_dir, radiomics_only=smk.params.radiomics_only,
                  task_configs=smk.params.task_configs, study=smk.params.study)
