# usrad: ultrasound radiomics for axillary lymph node metastasis. Reads like a table of contents;
# the stages live in rules/*.smk, the logic in the `usrad` package (src/usrad).
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/cohort.smk"
include: "rules/features.smk"
include: "rules/models.smk"
include: "rules/evaluate.smk"
include: "rules/controls.smk"
include: "rules/validation.smk"
include: "rules/report.smk"
include: "rules/predict.smk"


rule all:
    default_target: True
    input:
        all_targets(),
        predict_targets(),
        internal_validation_targets(),


rule paper:
    input:
        paper_targets(),


# Every rule is known now: give each job its one-line terminal message (rules/common.smk).
set_job_messages(workflow.rules)
