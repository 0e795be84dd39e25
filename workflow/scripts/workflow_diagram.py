"""Rule workflow_diagram: the rule graph (`snakemake --rulegraph`) drawn with matplotlib (no graphviz needed)."""
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from usrad.errors import Problem, UsradError, rule_errors
from usrad.reporting.workflow import canonical_rulegraph, rulegraph_figure

smk = snakemake  # noqa: F821 (injected by the script directive)
logging.basicConfig(filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
logging.getLogger("fontTools").setLevel(logging.WARNING)
with rule_errors(smk), tempfile.TemporaryDirectory() as tmp:
    cfg = Path(tmp) / "config.yaml"  # the validated config of this run, so the inner call plans the same graph
    cfg.write_text(yaml.safe_dump(dict(smk.params.config)))
    cmd = [sys.executable, "-m", "snakemake", "-s", smk.params.snakefile, "--directory", ".", "--nolock",
           "--configfile", str(cfg), "--rulegraph", "dot", *smk.params.targets]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise UsradError("snakemake --rulegraph failed", [Problem(proc.stderr[-2000:], file=smk.params.snakefile)])
    dot = canonical_rulegraph(proc.stdout)  # Snakemake's own numbering follows the hash seed
    Path(smk.output.dot).write_text(dot)
    rules = rulegraph_figure(dot, Path(smk.output.png).with_suffix(""))
    logging.info("rules drawn: %s", ", ".join(rules["rule"]))
