# Evaluate: every paper figure and table of one task, from its predictions, bundles and selection tables
# (plus the feature table for the nomogram's ranges and the SHAP values). Thresholds come from the bundles,
# fixed on training data; the bootstrap (2,000 patient-level resamples) is seeded from the config seed.


rule evaluate_task:
    input:
        predictions=f"{RESULTS}/{{task}}/predictions.tsv",
        models=f"{RESULTS}/{{task}}/models",
        selection=f"{RESULTS}/{{task}}/selection",
        univariable=f"{RESULTS}/{{task}}/tables/univariable.tsv",
        multivariable=f"{RESULTS}/{{task}}/tables/multivariable.tsv",
        features=f"{RESULTS}/features/features.parquet",
        cohort=f"{RESULTS}/cohort/cohort.tsv",
    output:
        roc=report(f"{RESULTS}/{{task}}/figures/roc.png", caption="../report/roc.rst",
                   category="Discrimination", subcategory="{task}"),
        forest=report(f"{RESULTS}/{{task}}/figures/forest.png", caption="../report/forest.rst",
                      category="Discrimination", subcategory="{task}"),
        calibration=report(f"{RESULTS}/{{task}}/figures/calibration.png", caption="../report/calibration.rst",
                           category="Calibration and clinical utility", subcategory="{task}"),
        decision_curve=report(f"{RESULTS}/{{task}}/figures/decision_curve.png",
                              caption="../report/decision_curve.rst",
                              category="Calibration and clinical utility", subcategory="{task}"),
        radscore=report(f"{RESULTS}/{{task}}/figures/radscore.png", caption="../report/radscore.rst",
                        category="Radiomics signature", subcategory="{task}"),
        confusion=report(f"{RESULTS}/{{task}}/figures/confusion.png", caption="../report/confusion.rst",
                         category="Discrimination", subcategory="{task}"),
        icc=report(f"{RESULTS}/{{task}}/figures/icc.png", caption="../report/icc.rst",
                   category="Radiomics signature", subcategory="{task}"),
        lasso_cv=report(f"{RESULTS}/{{task}}/figures/lasso_cv.png", caption="../report/lasso.rst",
                        category="Radiomics signature", subcategory="{task}"),
        lasso_path=report(f"{RESULTS}/{{task}}/figures/lasso_path.png", caption="../report/lasso.rst",
                          category="Radiomics signature", subcategory="{task}"),
        nomogram=report(f"{RESULTS}/{{task}}/figures/nomogram.png", caption="../report/nomogram.rst",
                        category="Models", subcategory="{task}"),
        shap=report(f"{RESULTS}/{{task}}/figures/shap.png", caption="../report/shap.rst",
                    category="Models", subcategory="{task}"),
        pdfs=task_figure_pdfs(),
        table2=report(f"{RESULTS}/{{task}}/tables/table2_odds_ratios.tsv", caption="../report/table2.rst",
                      category="Tables", subcategory="{task}"),
        table3=report(f"{RESULTS}/{{task}}/tables/table3_performance_formatted.tsv",
                      caption="../report/table3.rst", category="Tables", subcategory="{task}"),
        delong=report(f"{RESULTS}/{{task}}/tables/delong.tsv", caption="../report/delong.rst",
                      category="Tables", subcategory="{task}"),
        tables=task_other_tables(),
    params:
        config=validated_config(),
        task_dir=task_dir,
        n_boot=n_boot(),
    log:
        f"{RESULTS}/logs/{{task}}/evaluate_task.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{task}}/evaluate_task.tsv"
    threads: 2
    resources:
        mem_mb=3000,
        runtime=30,
    conda:
        ENV
    script:
        "../workflow/scripts/evaluate_task.py"


rule ablation:
    input:
        features=f"{RESULTS}/features/features.parquet",
        cohort=f"{RESULTS}/cohort/cohort.tsv",
        split=f"{RESULTS}/split/split.tsv",
    output:
        table=report(f"{RESULTS}/{{task}}/tables/ablation.tsv", caption="../report/ablation.rst",
                     category="Radiomics signature", subcategory="{task}"),
        png=report(f"{RESULTS}/{{task}}/figures/ablation.png", caption="../report/ablation.rst",
                   category="Radiomics signature", subcategory="{task}"),
        pdf=f"{RESULTS}/{{task}}/figures/ablation.pdf",
    params:
        config=config_part("seed", "clinical", "modelling", "tasks"),
        n_boot=n_boot(),
    log:
        f"{RESULTS}/logs/{{task}}/ablation.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{task}}/ablation.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    conda:
        ENV
    script:
        "../workflow/scripts/ablation.py"
