"""Rule simulate: write the simulated demo cohort (images, reader masks, manifest, ground truth)."""
import logging
from pathlib import Path

from usrad.errors import rule_errors
from usrad.simulate import simulate_cohort

smk = snakemake  # noqa: F821 (injected by the script directive)
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
with rule_errors(smk):
    manifest = Path(smk.output.manifest)
    sim = smk.params.sim
    simulate_cohort(manifest.parent, n_patients=int(sim["n_patients"]), seed=int(sim["seed"]),
                    n_jobs=smk.threads, device_effect=float(sim.get("device_effect", 1.0)),
                    peritumoral=float(sim.get("peritumoral", 0.0)))
