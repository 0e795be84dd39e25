"""Rule split: one stratified, patient-level train/test(/external) split reused by every task and model."""
from usrad.cohort import read_cohort_table
from usrad.errors import rule_errors
from usrad.split import make_split, write_split

smk = snakemake  # noqa: F821 (injected by the script directive)
with rule_errors(smk):
    cfg = smk.params.config
    cohort = read_cohort_table(smk.input.cohort, categorical=cfg["clinical"]["categorical"])
    sp = cfg["split"]
    split = make_split(cohort, cfg["tasks"], seed=cfg["seed"], test_size=sp["test_size"],
                       by_column=sp["by_column"], external_values=sp["external_values"])
    write_split(split, smk.output.split)
    counts = split.groupby("split")["patient_id"].nunique().to_dict()
    open(smk.log[0], "w").write(f"patients per split: {counts}\n")
