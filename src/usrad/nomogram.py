"""The nomogram arithmetic (no drawing): the ``nomogram`` bundle's logistic model in raw units and its scales.

One implementation for every user: :mod:`usrad.predict` (``points_<variable>``, ``total_points``), the
evaluation's nomogram figure and the model card's printable nomogram and browser page
(:mod:`usrad.reporting`).

- :class:`NomogramVariable`, :class:`Nomogram`: an Iasonos-style nomogram of ``logit p = intercept + Σ terms``
  (points per variable, total points, probability).
- :class:`NomogramModel`, :func:`raw_model`: the fitted pipeline (``features`` → ``scale`` → ``clf``) as a
  logistic model on raw values, with the scales over given training ranges (``{column: {min, max, binary}}``,
  as :func:`usrad.models.nomogram_inputs` computes them and the bundle stores them).
- :func:`nomogram_spec`: the bundle as numbers (model, nomogram, inputs per row, the browser page's numbers).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import Problem, UsradError

VARIABLE_LABELS = {"rad_score": "Rad-score", "age": "Age (years)", "us_size_mm": "US size (mm)",
                   "us_node_suspicious": "Suspicious node on US", "birads": "BI-RADS", "er": "ER", "pr": "PR",
                   "her2": "HER2", "ki67": "Ki-67", "grade": "Grade", "histology": "Histology", "subtype": "Subtype"}


@dataclass
class NomogramVariable:
    """One predictor of a logistic model.

    Continuous: ``coef`` (per unit) and ``range`` (lo, hi) of values to show (``ticks`` optional).
    Categorical: ``levels`` = {level label: coefficient}, the reference level with coefficient 0.
    """

    name: str
    coef: float | None = None
    range: tuple[float, float] | None = None
    levels: Mapping[str, float] | None = None
    ticks: Sequence[float] | None = None
    label: str | None = None

    @property
    def categorical(self) -> bool:
        return self.levels is not None

    def contributions(self) -> tuple[float, float]:
        """Minimum and maximum of coef·x over the shown range (or of the level coefficients)."""
        if self.categorical:
            vals = list(self.levels.values())
            return float(min(vals)), float(max(vals))
        a, b = self.coef * self.range[0], self.coef * self.range[1]
        return float(min(a, b)), float(max(a, b))

    def lp(self, value) -> float:
        """This variable's term of the linear predictor."""
        if self.categorical:
            if str(value) not in {str(k) for k in self.levels}:
                raise UsradError("Nomogram input is not usable", [Problem(
                    f"level {value!r} is not one of {list(self.levels)}", column=self.name)])
            return float({str(k): v for k, v in self.levels.items()}[str(value)])
        return float(self.coef) * float(value)


@dataclass
class Nomogram:
    """Iasonos-style nomogram of a logistic model ``logit p = intercept + Σ terms``.

    The variable with the widest effect (max − min of its term) spans 0–100 points; every other term is
    scaled by the same factor, 0 points at its least-risk value. Total points ``T`` map back to the linear
    predictor as ``lp = intercept + Σ min_term + T · scale`` with ``scale = widest / 100``.
    """

    intercept: float
    variables: list[NomogramVariable]
    max_points: float = 100.0
    _scale: float = field(init=False)
    _base: float = field(init=False)

    def __post_init__(self):
        problems = []
        vs = []
        for v in self.variables:
            v = v if isinstance(v, NomogramVariable) else NomogramVariable(**v)
            if v.categorical and not v.levels:
                problems.append(Problem("categorical variable without levels", column=v.name))
            if not v.categorical and (v.coef is None or v.range is None or not np.isfinite(v.coef)
                                      or v.range[0] >= v.range[1]):
                problems.append(Problem("continuous variable needs a finite coef and range lo < hi",
                                        column=v.name))
            vs.append(v)
        if problems:
            raise UsradError("Nomogram specification is not usable", problems)
        self.variables = vs
        widths = [hi - lo for lo, hi in (v.contributions() for v in vs)]
        widest = max(widths) if widths else 0.0
        if widest <= 0:
            raise UsradError("Nomogram specification is not usable",
                             [Problem("every coefficient is zero: nothing to draw")])
        self._scale = widest / self.max_points
        self._base = float(self.intercept) + sum(v.contributions()[0] for v in vs)

    def points(self, var: NomogramVariable, value) -> float:
        return (var.lp(value) - var.contributions()[0]) / self._scale

    def total_points(self, values: Mapping) -> float:
        missing = [v.name for v in self.variables if v.name not in values]
        if missing:
            raise UsradError("Nomogram input is not usable", [Problem("value missing", column=m) for m in missing])
        return float(sum(self.points(v, values[v.name]) for v in self.variables))

    def total_range(self) -> float:
        return float(sum((hi - lo) / self._scale for lo, hi in (v.contributions() for v in self.variables)))

    def linear_predictor(self, total_points: float) -> float:
        return self._base + total_points * self._scale

    def probability(self, total_points: float) -> float:
        return float(1 / (1 + np.exp(-self.linear_predictor(total_points))))

    def total_for_probability(self, p: float) -> float:
        return (math.log(p / (1 - p)) - self._base) / self._scale

    @property
    def lp_per_point(self) -> float:
        """Linear predictor per nomogram point (the widest term / ``max_points``)."""
        return self._scale


@dataclass
class NomogramModel:
    """The ``nomogram`` pipeline (rad-score + independent clinical predictors → scaler → logistic) as a
    logistic model on raw values: ``logit p = intercept + Σ terms`` (:class:`NomogramVariable`).

    Binary 0/1 predictors and one-hot encoded categorical ones become categorical variables (reference level
    0 points); rad-score and other numeric predictors are continuous with the training range.
    """

    intercept: float
    variables: list
    pipeline: object = field(repr=False)
    kinds: dict = field(default_factory=dict)  # variable → "radscore" | "numeric" | "binary" | "categorical"
    fill: dict = field(default_factory=dict)   # imputation values of the clinical encoder
    reference: dict = field(default_factory=dict)

    def values(self, X: pd.DataFrame) -> list[dict]:
        """Nomogram input per row of the design matrix ``X`` (rad-score computed by the bundle's radiomics branch)."""
        feats = self.pipeline.named_steps["features"]
        rs = feats.radiomics_.transform(X)["rad_score"].to_numpy(float)
        out = []
        for i in range(len(X)):
            row = {}
            for v in self.variables:
                kind = self.kinds[v.name]
                if kind == "radscore":
                    row[v.name] = float(rs[i])
                    continue
                raw = X[v.name].iloc[i]
                if pd.isna(raw):
                    raw = self.fill.get(v.name, raw)
                if kind == "numeric":
                    row[v.name] = float(raw)
                elif kind == "binary":
                    row[v.name] = "Yes" if float(raw) == 1 else "No"
                else:
                    s = str(raw)
                    row[v.name] = s if s in v.levels else self.reference[v.name]
            out.append(row)
        return out

    def probability(self, X: pd.DataFrame) -> np.ndarray:
        nomo = Nomogram(self.intercept, self.variables)
        return np.array([nomo.probability(nomo.total_points(v)) for v in self.values(X)])


def _raw_coefficients(pipeline) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, float, dict, float]:
    """``names, beta, mu, sd, b0, raw, intercept``: the logistic model on z-scores and in raw units
    (coefficient β/σ, intercept β₀ − Σ β·μ/σ)."""
    feats, scale, clf = (pipeline.named_steps[k] for k in ("features", "scale", "clf"))
    names = [str(n) for n in feats.get_feature_names_out()]
    beta = np.asarray(clf.coef_, dtype=float).ravel()
    mu, sd = np.asarray(scale.mean_, dtype=float), np.asarray(scale.scale_, dtype=float)
    b0 = float(np.asarray(clf.intercept_, dtype=float)[0])
    raw = dict(zip(names, beta / sd))
    intercept = float(b0 - np.sum(beta * mu / sd))
    return names, beta, mu, sd, b0, raw, intercept


def raw_model(pipeline, ranges: Mapping[str, Mapping]) -> NomogramModel:
    """Convert the fitted nomogram pipeline (``features`` → ``scale`` → ``clf``) to raw units.

    Binary 0/1 inputs and one-hot encoded categorical ones become categorical variables (reference level
    0 points); rad-score and other numeric inputs are continuous over ``ranges[column]`` (``min``, ``max``;
    a range of one value is widened to ``[min, min + 1]``)."""
    names, _, _, _, _, raw, intercept = _raw_coefficients(pipeline)
    enc = pipeline.named_steps["features"].clinical_.named_steps["encode"]
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(n.split("[", 1)[0], []).append(n)
    variables, kinds = [], {}
    for var, cols in groups.items():
        label = VARIABLE_LABELS.get(var, var)
        if var in enc.levels_:
            levels = {str(enc.reference_[var]): 0.0}
            levels.update({c[len(var) + 1:-1]: float(raw[c]) for c in cols})
            variables.append(NomogramVariable(name=var, levels=levels, label=label))
            kinds[var] = "categorical"
            continue
        (col,) = cols
        r = ranges[col]
        if var != "rad_score" and r["binary"]:
            variables.append(NomogramVariable(name=var, levels={"No": 0.0, "Yes": float(raw[col])}, label=label))
            kinds[var] = "binary"
        else:
            lo, hi = float(r["min"]), float(r["max"])
            hi = hi if hi > lo else lo + 1.0
            variables.append(NomogramVariable(name=var, coef=float(raw[col]), range=(lo, hi), label=label))
            kinds[var] = "radscore" if var == "rad_score" else "numeric"
    return NomogramModel(intercept=intercept, variables=variables, pipeline=pipeline, kinds=kinds,
                         fill=dict(enc.fill_), reference={k: str(v) for k, v in enc.reference_.items()})


def _page_variable(v: NomogramVariable, kind: str, enc) -> dict:
    """One variable of the browser page's model (raw coefficients, imputation value, range or levels)."""
    if kind == "categorical":
        ref = str(enc.reference_[v.name])
        return {"name": v.name, "label": v.label, "kind": "categorical", "levels": list(v.levels),
                "reference": ref, "fill": str(enc.fill_[v.name]), "raw": v.levels}
    if kind == "binary":
        return {"name": v.name, "label": v.label, "kind": "binary", "fill": float(enc.fill_[v.name]),
                "raw": float(v.levels["Yes"])}
    lo, hi = v.range
    return {"name": v.name, "label": v.label, "kind": kind, "range": [lo, hi], "raw": float(v.coef),
            "fill": None if v.name == "rad_score" else float(enc.fill_[v.name])}


def nomogram_spec(pipeline, meta: dict) -> dict:
    """The ``nomogram`` bundle as numbers: the exact standardised arithmetic and the nomogram scales.

    Returns ``{"model": NomogramModel, "nomogram": Nomogram, "values": X → inputs per row, "js": JSON-able
    dict for the HTML page}``. Scales use the training ranges stored in the bundle (``nomogram_inputs``);
    coefficients in raw units are β/σ, intercept β₀ − Σ β·μ/σ.
    """
    ranges = meta.get("nomogram_inputs")
    if not ranges:
        raise UsradError("The nomogram bundle does not record its training ranges; re-run fit_task", [
            Problem("bundle.json lacks 'nomogram_inputs'", column="nomogram_inputs")])
    model = raw_model(pipeline, ranges)
    names, beta, mu, sd, b0, _, intercept = _raw_coefficients(pipeline)
    enc = pipeline.named_steps["features"].clinical_.named_steps["encode"]
    nomo = Nomogram(intercept, model.variables)
    js_vars = [_page_variable(v, model.kinds[v.name], enc) for v in model.variables]
    for jv, v in zip(js_vars, nomo.variables):
        jv["min_term"] = v.contributions()[0]
    js = {"task": meta.get("task"), "model": meta.get("model"), "threshold": float(meta["threshold"]),
          "columns": names, "mean": mu.tolist(), "scale": sd.tolist(), "coef": beta.tolist(), "intercept": b0,
          "impute": bool(enc.impute), "variables": js_vars, "points_scale": nomo.lp_per_point,
          "max_points": nomo.max_points, "raw_intercept": intercept, "model_sha256": meta.get("model_sha256")}
    return {"model": model, "nomogram": nomo, "values": model.values, "js": js}
