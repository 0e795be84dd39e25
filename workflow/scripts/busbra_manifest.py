"""Rule busbra_manifest: the BUS-BRA dataset (real images, task malignancy) as a usrad manifest."""
from pathlib import Path

from usrad.busbra import write_manifest
from usrad.errors import Problem, UsradError, rule_errors

smk = snakemake  # noqa: F821 (injected by the script directive)
with rule_errors(smk):
    if not smk.params.busbra:
        raise UsradError("BUS-BRA dataset not found", [Problem(
            "set busbra_dir in the config to the BUS-BRA folder (default: ../shared/data/busbra beside the repository)")])
    s = smk.params.settings
    df = write_manifest(smk.params.busbra, smk.output[0], n_images=s["n_images"], seed=s["seed"],
                        pixel_spacing_mm=s["pixel_spacing_mm"])
    Path(smk.log[0]).write_text(f"{len(df)} images of {df['patient_id'].nunique()} patients, "
                                f"{int(df['malignant'].sum())} malignant images\n", encoding="utf-8")
