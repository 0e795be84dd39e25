"""Decision curve analysis: net benefit of models, treat-all and treat-none (wraps ``dcurves.dca``)."""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import pandas as pd

from ..errors import Problem, UsradError
from .checks import check_yp

#: Default decision-curve thresholds, exactly dcurves' default ``[i / 100 for i in range(0, 100)]``.
DCA_THRESHOLDS = tuple(i / 100 for i in range(0, 100))


def decision_curve(y, predictions, thresholds: Sequence[float] = DCA_THRESHOLDS,
                   harm: Mapping[str, float] | None = None, prevalence: float | None = None) -> pd.DataFrame:
    """Net benefit of each model, treat-all and treat-none over threshold probabilities (``dcurves.dca``).

    ``predictions`` is one probability array (named ``"model"``) or a mapping name → probabilities.
    ``prevalence`` only for case-control data (otherwise the sample prevalence). Net benefit =
    TP/n − FP/n · pt/(1 − pt) − harm; treat-all = prevalence − (1 − prevalence)·pt/(1 − pt).
    Returns the tidy dcurves table: ``model, threshold, net_benefit, net_intervention_avoided,
    test_pos_rate, tp_rate, fp_rate, harm, prevalence, n`` with models in input order then
    ``all``, ``none``.
    """
    import dcurves

    preds = {"model": predictions} if not isinstance(predictions, Mapping) else dict(predictions)
    reserved = {"all", "none", "_outcome"} & set(preds)
    if reserved:
        raise UsradError("Cannot compute a decision curve", [Problem(
            f"model name(s) {sorted(reserved)} are reserved by dcurves; rename them", column=sorted(reserved)[0])])
    checked = {}
    for name, pr in preds.items():
        yy, checked[name] = check_yp(y, pr, name_p=str(name))
    data = pd.DataFrame({"_outcome": yy.astype(bool), **checked})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        res = dcurves.dca(data=data, outcome="_outcome", modelnames=list(checked),
                          thresholds=list(thresholds), harm=dict(harm) if harm else None, prevalence=prevalence)
    cols = ["model", "threshold", "net_benefit", "net_intervention_avoided", "test_pos_rate", "tp_rate",
            "fp_rate", "harm", "prevalence", "n"]
    return res[cols].reset_index(drop=True)
