"""The feature dictionary (:func:`write_feature_dictionary`): every extracted feature column of
``results/features/features.parquet`` with its region (``lesion`` or a peritumoral ring, README "Peritumoral
regions"), PyRadiomics image type, feature class, feature name and IBSI identifier where one exists (:data:`IBSI_CODES`, hand-checked; docs/checklists.md says where the codes come from).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from ..features import ID_COLUMNS, feature_region, split_feature_name
from .style import write_table

#: IBSI 1 identifiers of the PyRadiomics 3 features of the seven classes usrad extracts. Started from PyRadiomics'
#: own table (labs/pyradiomics-dcm/resources/featuresDict_IBSIv7.tsv) and checked by hand against the IBSI
#: definitions; corrected there: glcm Idm/Idmn/Idn (the table swaps them), Autocorrelation, Imc1, Imc2 (left
#: blank there), and the glszm grey-level emphases (filed under glcm/gldzm there). No code: glcm MCC, firstorder
#: TotalEnergy, and every shape2D feature (IBSI 1 defines its morphological features in 3D only).
IBSI_CODES = {
    "firstorder": {
        "10Percentile": "QG58", "90Percentile": "8DWT", "Energy": "N8CA", "Entropy": "TLU2",
        "InterquartileRange": "SALO", "Kurtosis": "IPH6", "Maximum": "84IY", "Mean": "Q4LE",
        "MeanAbsoluteDeviation": "4FUA", "Median": "Y12H", "Minimum": "1GSF", "Range": "2OJQ",
        "RobustMeanAbsoluteDeviation": "1128", "RootMeanSquared": "5ZWQ", "Skewness": "KE2A",
        "Uniformity": "BJ5W", "Variance": "ECT3",
    },
    "glcm": {
        "Autocorrelation": "QWB0", "ClusterProminence": "AE86", "ClusterShade": "7NFM", "ClusterTendency": "DG8W",
        "Contrast": "ACUI", "Correlation": "NI2N", "DifferenceAverage": "TF7R", "DifferenceEntropy": "NTRS",
        "DifferenceVariance": "D3YU", "Id": "IB1Z", "Idm": "WF0Z", "Idmn": "1QCO", "Idn": "NDRX", "Imc1": "R8DG",
        "Imc2": "JN9H", "InverseVariance": "E8JP", "JointAverage": "60VM", "JointEnergy": "8ZQL",
        "JointEntropy": "TU9B", "MaximumProbability": "GYBY", "SumAverage": "ZGXS", "SumEntropy": "P6QZ",
        "SumSquares": "UR99",
    },
    "glrlm": {
        "GrayLevelNonUniformity": "R5YN", "GrayLevelNonUniformityNormalized": "OVBL", "GrayLevelVariance": "8CE5",
        "HighGrayLevelRunEmphasis": "G3QZ", "LongRunEmphasis": "W4KF", "LongRunHighGrayLevelEmphasis": "3KUM",
        "LongRunLowGrayLevelEmphasis": "IVPO", "LowGrayLevelRunEmphasis": "V3SW", "RunEntropy": "HJ9O",
        "RunLengthNonUniformity": "W92Y", "RunLengthNonUniformityNormalized": "IC23", "RunPercentage": "9ZK5",
        "RunVariance": "SXLW", "ShortRunEmphasis": "22OV", "ShortRunHighGrayLevelEmphasis": "GD3A",
        "ShortRunLowGrayLevelEmphasis": "HTZT",
    },
    "glszm": {
        "GrayLevelNonUniformity": "JNSA", "GrayLevelNonUniformityNormalized": "Y1RO", "GrayLevelVariance": "BYLV",
        "HighGrayLevelZoneEmphasis": "5GN9", "LargeAreaEmphasis": "48P8", "LargeAreaHighGrayLevelEmphasis": "J17V",
        "LargeAreaLowGrayLevelEmphasis": "YH51", "LowGrayLevelZoneEmphasis": "XMSY", "SizeZoneNonUniformity": "4JP3",
        "SizeZoneNonUniformityNormalized": "VB3A", "SmallAreaEmphasis": "5QRC",
        "SmallAreaHighGrayLevelEmphasis": "HW1V", "SmallAreaLowGrayLevelEmphasis": "5RAI", "ZoneEntropy": "GU8N",
        "ZonePercentage": "P30P", "ZoneVariance": "3NSA",
    },
    "gldm": {
        "DependenceEntropy": "FCBV", "DependenceNonUniformity": "Z87G", "DependenceNonUniformityNormalized": "OKJI",
        "DependenceVariance": "DNX2", "GrayLevelNonUniformity": "FP8K", "GrayLevelVariance": "1PFV",
        "HighGrayLevelEmphasis": "OAE7", "LargeDependenceEmphasis": "IMOQ",
        "LargeDependenceHighGrayLevelEmphasis": "9QMG", "LargeDependenceLowGrayLevelEmphasis": "NBZI",
        "LowGrayLevelEmphasis": "TL9H", "SmallDependenceEmphasis": "SODN",
        "SmallDependenceHighGrayLevelEmphasis": "JA6D", "SmallDependenceLowGrayLevelEmphasis": "EQ3F",
    },
    "ngtdm": {"Busyness": "NQ30", "Coarseness": "QCDE", "Complexity": "HDEZ", "Contrast": "65HE", "Strength": "1X9X"},
    "shape2D": {},
}
DICTIONARY_COLUMNS = ["feature", "region", "image_type", "feature_class", "feature_name", "ibsi_code"]


def feature_dictionary(columns) -> pd.DataFrame:
    """One row per feature column (table order): region, image type, class, name and IBSI code ('' where none
    exists; a ring's feature has its lesion feature's code: the same definition on another mask)."""
    rows = []
    for col in columns:
        image_type, cls, name = split_feature_name(col)
        rows.append([col, feature_region(col), image_type, cls, name, IBSI_CODES.get(cls, {}).get(name, "")])
    return pd.DataFrame(rows, columns=DICTIONARY_COLUMNS)


def write_feature_dictionary(features_path, out_tsv) -> pd.DataFrame:
    """``results/report/feature_dictionary.tsv`` of the feature table at ``features_path`` (its schema only)."""
    names = pq.read_schema(features_path).names
    table = feature_dictionary([c for c in names if c not in ID_COLUMNS])
    write_table(table, Path(out_tsv).with_suffix(""))
    return table
