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
