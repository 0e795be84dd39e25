"""Rule model_card: the model card of every bundle of one task, and the nomogram (PNG, PDF, HTML page) when the
config has clinical predictors (a radiomics-only run has no nomogram model)."""
import logging
from pathlib import Path

from usrad.reporting.card import write_task_cards
from usrad.errors import rule_errors

smk = snakemake  # noqa: F821 (injected by the script directive)
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
for noisy in ("fontTools", "matplotlib"):
    logging.getLogger(noisy).setLevel(logging.WARNING)
with rule_errors(smk):
    written = write_task_cards(Path(smk.input.predictions).parent, Path(smk.output.cards[0]).parent,
                               models=smk.params.models, demo=smk.params.demo,
                               task=smk.params.task)
    logging.info("written: %s", ", ".join(sorted(str(p) for p in written.values())))
