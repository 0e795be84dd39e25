"""Feature-class ablation: the rad-score signature refitted on one PyRadiomics feature class at a time (where the
signal lives), on the real features and on those of the negative controls.

:func:`feature_class_ablation` refits it on the real feature table; :func:`negative_control_table` on each negative
control's table too (:mod:`usrad.extract.controls`: the same patients, split and pipeline, scrambled images), so
that each control's AUC stands beside the real one's for every feature class."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from ..features import LESION, feature_region, split_region
from ..metrics import bootstrap_auc
from .design import task_design, task_signature


#: Feature classes of the ablation, by PyRadiomics feature name ``{image type}_{class}_{feature}``.
FEATURE_CLASSES = ("shape", "firstorder", "texture", "filtered", "all")
_TEXTURE = ("glcm", "glrlm", "glszm", "gldm", "ngtdm")


def feature_class(name: str) -> str:
    """``shape`` / ``firstorder`` / ``texture`` (original image) or ``filtered`` (LoG, wavelet, … images), whatever
    the feature's region."""
    image_type, cls = (split_region(name)[1].split("_") + ["", ""])[:2]
    if image_type != "original":
        return "filtered"
    if cls.startswith("shape"):
        return "shape"
    return "firstorder" if cls == "firstorder" else "texture" if cls in _TEXTURE else "other"


def feature_class_ablation(features_df: pd.DataFrame, cohort_df: pd.DataFrame, split_df: pd.DataFrame,
                           task_cfg: dict, modelling_cfg: dict | None, clinical_cfg: dict, seed: int,
                           n_boot: int = 2000, classes=FEATURE_CLASSES) -> pd.DataFrame:
    """Where the signal lives: the rad-score signature refitted on one feature class at a time.

    For each class the whole signature (ICC, NZV, Mann–Whitney, redundancy, LASSO) is fitted on the training
    rows restricted to that class's features (of every region), exactly as for the full rad-score, and scored on
    every split. With peritumoral regions (README, "Peritumoral regions") it is also fitted on each region's
    features alone (``feature_class`` ``all``, ``region`` the region; ``all`` on the class rows). Returns one row
    per class or region and split with the number of input and selected features, AUC and its patient-level
    bootstrap 95% CI (``metrics.bootstrap_auc``).
    """
    splits = ("train", "test", "external")
    with threadpool_limits(limits=1):
        design = task_design(features_df, cohort_df, split_df, task_cfg, modelling_cfg, clinical_cfg)
        rows = [{"region": "all", **r} for r in _class_rows(design, classes, seed, n_boot, splits)]
        regions = sorted(dict.fromkeys(feature_region(c) for c in design.rad_cols if "@" not in c),
                         key=lambda r: r != LESION)  # the lesion first, then the rings in the table's order
        for region in regions if len(regions) > 1 else []:
            rows += [{"region": region, **r} for r in _class_rows(design, ("all",), seed, n_boot, splits, region)]
        return pd.DataFrame(rows)


def negative_control_table(features: dict[str, pd.DataFrame], cohort_df: pd.DataFrame, split_df: pd.DataFrame,
                           task_cfg: dict, modelling_cfg: dict | None, clinical_cfg: dict, seed: int,
                           n_boot: int = 2000, classes=FEATURE_CLASSES) -> pd.DataFrame:
    """The rad-score signature of each feature class fitted on each feature table of ``features`` (``{control:
    table}``, ``"none"`` = the real features), scored on the test and external splits: :func:`feature_class_ablation`'s
    columns with a ``control`` column first. The same patients, split, seed and pipeline for every table."""
    out = []
    with threadpool_limits(limits=1):
        for control, table in features.items():
            design = task_design(table, cohort_df, split_df, task_cfg, modelling_cfg, clinical_cfg)
            out += [{"control": control, **r} for r in _class_rows(design, classes, seed, n_boot, ("test", "external"))]
    return pd.DataFrame(out)


def _class_rows(design, classes, seed: int, n_boot: int, splits, region: str | None = None) -> list[dict]:
    """One row per class and split: the class's signature fitted on the training rows and its AUC (95% CI);
    ``region``: that region's features only."""
    groups = design.X.index.get_level_values("patient_id").to_numpy()
    where = np.where(design.tr, "train", design.split_all)
    out = []
    for cls in classes:
        cols = [c for c in design.rad_cols if (cls == "all" or feature_class(c) == cls)
                and (region is None or feature_region(c.split("@")[0]) == region)]
        if not cols:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            sig = task_signature(cols, design.cfg, design.copy_reader, seed).fit(design.Xtr, design.ytr)
        p = sig.predict_proba(design.X)[:, 1]
        n_sel = len(sig.named_steps["lasso"].get_feature_names_out())
        for split in splits:
            m = where == split
            if not m.any() or len(set(design.y_all[m])) < 2:
                continue
            b = bootstrap_auc(design.y_all[m], p[m], groups=groups[m], n_boot=n_boot, seed=seed)
            out.append(dict(task=design.task, feature_class=cls, split=split,
                            n_features=sum("@" not in c for c in cols),
                            n_selected=n_sel, n_images=int(m.sum()), n_patients=len(set(groups[m])),
                            auc=b["auc"], auc_low=b["low"], auc_high=b["high"]))
    return out
