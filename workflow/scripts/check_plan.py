"""Rule check_plan: the config against the cohort table (the split that will be used, each task's classes in every
part, clinical predictors, the ICC filter's copy reader), every problem at once, before the extraction starts."""
from usrad.atomic import write_text
from usrad.cohort import read_cohort_table
from usrad.errors import rule_errors
from usrad.plan import check_plan

smk = snakemake  # noqa: F821 (injected by the script directive)
with rule_errors(smk):
    cfg = smk.params.config
    cohort = read_cohort_table(smk.input.cohort, categorical=cfg["clinical"]["categorical"])
    check_plan(cohort, cfg)
    write_text(smk.output.plan, "the configuration can be run on this cohort\n")
