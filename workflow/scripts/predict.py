"""Rule predict: score the new patients of config predict_manifest with one bundle (docs/predict.md)."""
import logging
import sys
import warnings

from usrad.errors import rule_errors
from usrad.predict import UnseenLevelWarning, VersionWarning, predict_manifest

smk = snakemake  # noqa: F821 (injected by the script directive)
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
with rule_errors(smk):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", VersionWarning)
        warnings.simplefilter("always", UnseenLevelWarning)
        table = predict_manifest(smk.params.model_dir, smk.input.manifest, out=smk.output.predictions,
                                 cache_dir=smk.params.cache_dir)
    for w in caught:
        if issubclass(w.category, (VersionWarning, UnseenLevelWarning)):
            logging.warning("%s", w.message)
            print(f"predict: warning: {w.message}", file=sys.stderr)
    logging.info("%d image(s) of %d patient(s) scored", len(table), table["patient_id"].nunique())
