"""The region prefix of feature names (extraction.regions): parsing, counts, and unprefixed lesion names."""
from usrad.features import (LESION, feature_counts, feature_region, region_feature_name, split_feature_name,
                            split_region)


def test_lesion_names_have_no_prefix_and_rings_do():
    assert region_feature_name(LESION, "original_firstorder_Mean") == "original_firstorder_Mean"
    assert region_feature_name("ring3mm", "original_firstorder_Mean") == "ring3mm__original_firstorder_Mean"
    assert split_region("ring3mm__wavelet-LH_glcm_Contrast") == ("ring3mm", "wavelet-LH_glcm_Contrast")
    assert feature_region("original_shape2D_Elongation") == "lesion"
    assert split_feature_name("ring1mm__wavelet-LH_glcm_Contrast") == ("wavelet-LH", "glcm", "Contrast")


def test_counts_by_region_only_when_a_region_is_there():
    lesion = ["original_firstorder_Mean", "original_glcm_Contrast"]
    assert "by_region" not in feature_counts(lesion)
    counts = feature_counts(lesion + ["ring3mm__original_firstorder_Mean"])
    assert counts["by_region"] == {"lesion": 2, "ring3mm": 1}
    assert counts["by_class"] == {"firstorder": 2, "glcm": 1}
    assert counts["by_image_type"] == {"original": 3}


def test_ablation_by_region_finds_a_signal_that_lives_in_the_ring_only(tmp_path):
    """Known truth: the informative features are the 3 mm ring's, the lesion's are noise; the ablation's region rows
    say so (ring AUC high, lesion AUC at chance), the class rows pool both regions, and the figure draws them."""
    from usrad.models import feature_class_ablation, synthetic_modelling_data
    from usrad.reporting.discrimination import ablation_figure
    from usrad.split import make_split

    task = {"name": "metastasis", "label": "n_positive_nodes >= 1"}
    feats, cohort = synthetic_modelling_data(n_patients=240, n_features=24, n_informative=5, signal=3.0, seed=4)
    names = {c: (f"ring3mm__original_glcm_{c.replace('_', '')}" if c.startswith("inf_") else
                 f"original_firstorder_{c.replace('_', '')}") for c in feats.columns
             if c not in ("patient_id", "image_id", "reader")}
    feats = feats.rename(columns=names)
    table = feature_class_ablation(feats, cohort, make_split(cohort, [task], seed=2), task,
                                   {"lasso": {"cv_folds": 3, "n_C": 5}, "cv_folds": 3}, {"predictors": []},
                                   seed=3, n_boot=200)
    test = table[table["split"] == "test"].set_index(["region", "feature_class"])
    assert set(test.index) == {("all", "all"), ("all", "firstorder"), ("all", "texture"), ("lesion", "all"),
                               ("ring3mm", "all")}
    # measured: ring 0.800 (0.706–0.902), as all features and the (ring-only) texture class; lesion: nothing selected
    assert test.loc[("ring3mm", "all"), "auc_low"] > 0.65 and test.loc[("all", "texture"), "auc_low"] > 0.65
    assert test.loc[("lesion", "all"), "auc_low"] <= 0.5 <= test.loc[("lesion", "all"), "auc_high"]
    assert test.loc[("ring3mm", "all"), "n_features"] == 6 and test.loc[("lesion", "all"), "n_features"] == 18
    ablation_figure(table, tmp_path / "ablation")
    assert (tmp_path / "ablation.png").stat().st_size > 10_000 and (tmp_path / "ablation.pdf").exists()


def test_the_summary_names_the_regions_and_each_count_is_traced_to_the_feature_table(tmp_path):
    """Methods text of a feature table with a 3 mm ring: the per-region counts come from its metadata (sources)."""
    import numpy as np
    import pandas as pd
    import yaml

    from usrad.extract import feature_table_metadata
    from usrad.features import write_feature_table
    from usrad.reporting.sources import Sources
    from usrad.reporting.summary_methods import SummaryContext, extraction_lines

    cols = ["original_firstorder_Mean", "original_glcm_Contrast", "ring3mm__original_firstorder_Mean"]
    df = pd.DataFrame({"patient_id": ["P1"], "image_id": ["I1"], "reader": ["r1"],
                       **{c: [float(i)] for i, c in enumerate(cols)}})
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump({"setting": {"binWidth": 10}, "imageType": {"Original": {}},
                                      "featureClass": {"firstorder": [], "glcm": []}}))
    feat = tmp_path / "results" / "features" / "features.parquet"
    feat.parent.mkdir(parents=True)
    write_feature_table(df, feat, feature_table_metadata(params, {}, {"rings_mm": [3]}))
    ctx = SummaryContext(tmp_path, "results", Sources(tmp_path), False, False, "results/features/features.parquet",
                         "", "")
    text = "\n".join(extraction_lines(ctx))
    assert "features by region: lesion 2, ring3mm 1." in text
    traced = ctx.sources.table().set_index("key")
    assert traced.loc["n_features_ring3mm", "locator"] == "meta:/feature_counts/by_region/ring3mm"
    assert np.all(traced["file"] == "results/features/features.parquet")


def test_the_summary_of_a_lesion_only_table_has_no_region_sentence(tmp_path):
    import pandas as pd
    import yaml

    from usrad.extract import feature_table_metadata
    from usrad.features import write_feature_table
    from usrad.reporting.sources import Sources
    from usrad.reporting.summary_methods import SummaryContext, extraction_lines

    df = pd.DataFrame({"patient_id": ["P1"], "image_id": ["I1"], "reader": ["r1"], "original_firstorder_Mean": [1.0]})
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump({"setting": {"binWidth": 10}, "imageType": {"Original": {}}}))
    feat = tmp_path / "results" / "features" / "features.parquet"
    feat.parent.mkdir(parents=True)
    write_feature_table(df, feat, feature_table_metadata(params, {}, None))
    ctx = SummaryContext(tmp_path, "results", Sources(tmp_path), False, False, "results/features/features.parquet",
                         "", "")
    text = "\n".join(extraction_lines(ctx))
    assert "1 features per image (firstorder 1)" in text and "region" not in text
