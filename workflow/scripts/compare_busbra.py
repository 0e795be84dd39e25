"""Rule compare_busbra: grid of simulated B-mode images next to real BUS-BRA images (PNG + PDF)."""
from pathlib import Path

from usrad.errors import rule_errors
from usrad.simulate import comparison_figure

smk = snakemake  # noqa: F821 (injected by the script directive)
with rule_errors(smk):
    png, pdf = comparison_figure(smk.input.manifest, smk.params.busbra, smk.output.png)
    if Path(pdf) != Path(smk.output.pdf):
        Path(pdf).replace(smk.output.pdf)
    Path(smk.log[0]).write_text(f"wrote {png} and {smk.output.pdf}\n")
