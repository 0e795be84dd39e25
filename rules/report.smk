# Report: cohort-level tables and figures, the workflow diagram, and the methods-and-results summary in
# which every number is read from a results file (summary_sources.tsv says which).


rule cohort_report:
    input:
        cohort=f"{RESULTS}/cohort/cohort.tsv",
        split=f"{RESULTS}/split/split.tsv",
    output:
        table1=f"{RESULTS}/report/table1.tsv",
        table1_html=report(
            f"{RESULTS}/report/table1.html",
            caption="../report/table1.rst",
            category="Cohort",
            labels={"name": "Table 1: baseline characteristics"},
        ),
        table1_exports=table1_exports(),
        counts=f"{RESULTS}/report/cohort_counts.tsv",
        flow=report(
            f"{RESULTS}/report/figures/flow.png",
            caption="../report/flow.rst",
            category="Cohort",
            labels={"name": "Patient flow"},
        ),
        flow_pdf=f"{RESULTS}/report/figures/flow.pdf",
    log:
        f"{RESULTS}/logs/cohort_report.log",
    benchmark:
        f"{RESULTS}/benchmarks/cohort_report.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        config=cohort_report_config(),
    script:
        "../workflow/scripts/cohort_report.py"


rule workflow_diagram:
    output:
        dot=f"{RESULTS}/report/rulegraph.dot",
        png=report(
            f"{RESULTS}/report/figures/workflow.png",
            caption="../report/workflow_diagram.rst",
            category="Workflow diagram",
            labels={"name": "Workflow diagram"},
        ),
        pdf=f"{RESULTS}/report/figures/workflow.pdf",
    log:
        f"{RESULTS}/logs/workflow_diagram.log",
    benchmark:
        f"{RESULTS}/benchmarks/workflow_diagram.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        snakefile=main_snakefile(),
        config=diagram_config(),
        targets=["paper"],
    script:
        "../workflow/scripts/workflow_diagram.py"


rule qc_gallery:
    input:
        cohort=f"{RESULTS}/cohort/cohort.tsv",
        features=f"{RESULTS}/features/features.parquet",
    output:
        flags=report(
            f"{RESULTS}/report/qc/qc_flags.tsv",
            caption="../report/qc_flags.rst",
            category="Quality control",
            labels={"name": "QC flags per image"},
        ),
        # one page per 30 images: the count follows the cohort, so the pages are a folder; the report shows the
        # first page (the most flagged images): every page would add ~1 MB to the self-contained HTML
        pages=report(
            directory(f"{RESULTS}/report/qc/gallery"),
            patterns=["gallery_{page,01}.png"],
            caption="../report/qc_gallery.rst",
            category="Quality control",
            labels={"name": "QC gallery, first page"},
        ),
    log:
        f"{RESULTS}/logs/qc_gallery.log",
    benchmark:
        f"{RESULTS}/benchmarks/qc_gallery.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../workflow/scripts/qc_gallery.py"


rule summary:
    input:
        evaluation=evaluation_targets(),
        validation=internal_validation_targets(),
        counts=f"{RESULTS}/report/cohort_counts.tsv",
        features=f"{RESULTS}/features/features.parquet",
        qc_flags=f"{RESULTS}/report/qc/qc_flags.tsv",
        ground_truth=ground_truth_input(),
    output:
        md=f"{RESULTS}/report/summary.md",
        html=report(
            f"{RESULTS}/report/summary.html",
            caption="../report/summary.rst",
            category="Summary",
            labels={"name": "Methods and results summary"},
        ),
        sources=f"{RESULTS}/report/summary_sources.tsv",
        reference=f"{RESULTS}/report/reference_study.tsv",
        oracle=f"{RESULTS}/report/oracle_auc.tsv",
    log:
        f"{RESULTS}/logs/summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/summary.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        tasks=task_names(),
        demo=is_demo(),
        results_dir=results_prefix,
        radiomics_only=radiomics_only(),
        task_configs=task_entries(),
        study=checklist_study(),
    script:
        "../workflow/scripts/summary.py"


rule checklists:
    input:
        summary=f"{RESULTS}/report/summary.md",
        workflow=f"{RESULTS}/report/figures/workflow.png",
        features=f"{RESULTS}/features/features.parquet",
        evaluation=evaluation_targets(),
    output:
        clear_tsv=f"{RESULTS}/report/checklist_clear.tsv",
        md=report(
            f"{RESULTS}/report/checklist_clear.md",
            caption="../report/checklists.rst",
            category="Checklists",
        ),
        metrics=f"{RESULTS}/report/checklist_metrics.tsv",
        metrics_md=report(
            f"{RESULTS}/report/checklist_metrics.md",
            caption="../report/checklists.rst",
            category="Checklists",
        ),
        tripod=f"{RESULTS}/report/checklist_tripod_ai.tsv",
        tripod_md=report(
            f"{RESULTS}/report/checklist_tripod_ai.md",
            caption="../report/checklists.rst",
            category="Checklists",
        ),
        dictionary=f"{RESULTS}/report/feature_dictionary.tsv",
    log:
        f"{RESULTS}/logs/checklists.log",
    benchmark:
        f"{RESULTS}/benchmarks/checklists.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        tasks=task_names(),
        results_dir=results_prefix,
        study=checklist_study(),
    script:
        "../workflow/scripts/checklists.py"
