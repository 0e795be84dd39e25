"""Where the burden task loses against its oracle: learning from few patients, or measuring the latents?

    python bench/bench_burden_gap.py [--results results]

On a finished demo run (``results/demo/ground_truth.tsv``, ``manifest.tsv``, ``features/features.parquet``):

1. the oracle AUC of burden over all N+ patients, and the cross-validated AUC (4-fold, 20 repeats: ~3/4 of the
   N+ patients to learn from, as the split gives the task) of a logistic regression on the four *true* image
   latents (margin, heterogeneity, echogenicity, size): what a perfect measurement with this few patients gives;
2. how well the radiomics features measure each latent: 5-fold CV R² of a LASSO (``LassoCV``) from reader 1's
   features of all patients to the latent.

Writes bench/results/burden_gap.tsv.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LassoCV, LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from usrad.features import feature_columns, read_feature_table

REPO = Path(__file__).resolve().parents[1]
LATENTS = ["margin_irregularity", "heterogeneity", "echogenicity_loss", "size_latent"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=REPO / "results")
    args = parser.parse_args(argv)
    gt = pd.read_csv(args.results / "demo" / "ground_truth.tsv", sep="\t").set_index("patient_id")
    nodes = pd.read_csv(args.results / "demo" / "manifest.tsv", sep="\t").set_index("patient_id")["n_positive_nodes"]
    npos = gt.loc[nodes.index[nodes >= 1]]
    y = (nodes.loc[npos.index] >= 3).astype(int).to_numpy()
    rows = [dict(measure="oracle AUC, burden, all N+ patients", value=roc_auc_score(y, npos["oracle_p_burden"]),
                 n=len(y))]
    aucs = [roc_auc_score(y, cross_val_predict(LogisticRegression(max_iter=1000), npos[LATENTS], y,
                                               cv=StratifiedKFold(4, shuffle=True, random_state=s),
                                               method="predict_proba")[:, 1]) for s in range(20)]
    rows.append(dict(measure="AUC, logistic regression on the 4 true latents, 4-fold CV x 20", value=np.mean(aucs),
                     n=len(y), learn_n=int(len(y) * 0.75)))
    feats, _ = read_feature_table(args.results / "features" / "features.parquet")
    r1 = feats[feats["reader"] == "r1"].set_index("patient_id")
    X = r1[feature_columns(r1)]
    X = X.loc[:, X.std() > 0]
    for latent in LATENTS:
        t = gt.loc[X.index, latent].to_numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            pred = cross_val_predict(make_pipeline(StandardScaler(), LassoCV(cv=5, alphas=30, max_iter=5000)), X, t,
                                     cv=KFold(5, shuffle=True, random_state=0))
        rows.append(dict(measure=f"R2 of {latent} from the radiomics features (LASSO, 5-fold CV)",
                         value=1 - np.mean((pred - t) ** 2) / np.var(t), n=len(t)))
    out = REPO / "bench" / "results" / "burden_gap.tsv"
    pd.DataFrame(rows).to_csv(out, sep="\t", index=False, float_format="%.4f")
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
