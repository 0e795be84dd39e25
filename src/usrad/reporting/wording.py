"""The wording of a task in the reports: what the model cards, the summary and the nomogram pages say the
probability is of, for whom, which decision it supports and the names of its two classes, from the task's
config item (``tasks[]``: ``description``, ``outcome``, ``outcome_short``, ``population``, ``decision``,
``harms``, ``positive_label``, ``negative_label``; the schema documents each, empty keys fall back as below).
"""
from __future__ import annotations

from collections.abc import Mapping


def task_wording(task: Mapping | None, name: str = "") -> dict[str, str]:
    """The report wording of one task (its ``tasks[]`` config item; None = only its ``name``).

    Empty keys fall back: ``outcome`` to the description, then to "the positive class of task NAME";
    ``outcome_short`` to the outcome; ``population`` stays empty (no population named); ``decision`` to "a
    clinical decision"; ``harms`` to "a false negative versus a false positive"; the class names to
    "Positive" / "Negative".
    """
    t = dict(task or {})
    name = str(t.get("name") or name)
    description = str(t.get("description") or "")
    outcome = str(t.get("outcome") or description or f"the positive class of task {name!r}")
    return {"name": name, "description": description, "outcome": outcome,
            "outcome_short": str(t.get("outcome_short") or outcome),
            "population": str(t.get("population") or ""),
            "decision": str(t.get("decision") or "a clinical decision"),
            "harms": str(t.get("harms") or "a false negative versus a false positive"),
            "positive_label": str(t.get("positive_label") or "Positive"),
            "negative_label": str(t.get("negative_label") or "Negative")}


def risk_label(wording: Mapping) -> str:
    """The risk axis of a nomogram, e.g. "Risk of ALN metastasis"."""
    return f"Risk of {wording['outcome_short']}"


def intended_use(wording: Mapping, clinical: bool) -> str:
    """The model card's intended use: the outcome, the population, the inputs and the decision supported."""
    who = f" in {wording['population']}" if wording["population"] else ""
    return (f"Research use: preoperative estimate of the probability of {wording['outcome']}{who}, from a B-mode "
            "ultrasound image with a lesion mask"
            + (" and the preoperative clinical variables listed" if clinical else "")
            + f", to support (not replace) {wording['decision']}. Only for patients like those of the training cohort.")
