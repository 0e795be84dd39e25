"""Which run facts and ``study.*`` config keys answer each checklist item (:data:`ITEMS`): per standard, item →
(facts of :func:`usrad.reporting.checklist_facts.run_facts`, study keys, whether the facts alone answer it).
Items not listed need a person.
"""
from __future__ import annotations

#: (facts, study keys, complete): ``complete`` = the facts answer the whole item (else a person adds to it).
ITEMS: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...], bool]]] = {
    "clear": {
        "1": ((), ("title",), True), "7": (("checklists",), (), False), "8": ((), ("ethics",), True),
        "9": (("sample_size",), (), False), "10": ((), ("design",), True), "11": ((), ("eligibility",), True),
        "12": (("workflow",), (), True), "13": ((), ("centres",), True), "15": (("split",), (), True),
        "16": ((), ("imaging_protocol",), True), "17": (("table1",), (), False),
        "18": ((), ("reference_standard", "outcome"), True), "19": ((), ("segmentation",), True),
        "20": ((), ("readers",), True), "21": (("preprocessing",), (), True), "22": (("resampling",), (), True),
        "23": (("discretisation",), (), True), "24": (("filters",), (), True),
        "25": (("software", "params"), (), True), "26": (("feature_classes", "feature_dictionary"), (), True),
        "27": (("feature_classes",), (), True), "28": (("params",), (), True),
        "29": (("missing_data",), (), True), "30": (("class_balance",), (), True), "31": (("icc",), (), True), "32": (("scaling",), (), True),
        "33": (("redundancy",), (), True), "34": (("software_models", "models"), (), True),
        "35": (("tuning",), (), True), "36": (("negative_controls",), (), False), "37": (("tuning",), (), True),
        "38": (("internal_test", "external"), (), False), "39": (("metrics",), (), True),
        "40": (("uncertainty",), (), True), "41": (("tests",), (), True),
        "42": (("clinical", "decision"), (), True), "43": (("interpretability",), (), True),
        "44": (("table1",), (), False), "45": (("flow",), (), False), "46": (("redundancy", "icc"), (), True),
        "47": (("metrics",), (), True), "48": (("clinical", "metrics"), (), True),
        "53": ((), ("data_availability",), True), "54": ((), ("data_availability",), True),
        "55": (("params",), ("code_availability",), True), "56": (("software_models",), ("code_availability",), True),
        "57": (("model_files",), ("code_availability",), True),
    },
    "metrics": {
        "1": (("checklists",), (), False), "2": ((), ("eligibility",), True),
        "3": ((), ("reference_standard",), True), "4": ((), ("centres",), True),
        "6": ((), ("imaging_protocol",), True), "7": ((), ("reference_interval",), True),
        "8": ((), ("segmentation",), True), "10": ((), ("readers",), True),
        "11": (("preprocessing", "resampling", "discretisation"), (), True), "12": (("software",), (), True),
        "13": (("params",), (), True), "14": (("icc",), (), True), "15": (("redundancy",), (), True),
        "16": (("sample_size",), (), False), "18": (("split", "leakage"), (), True),
        "19": (("negative_controls",), (), False), "20": (("metrics", "events"), (), True), "21": (("uncertainty",), (), True),
        "22": (("calibration",), (), True), "23": (("single_set",), (), True), "24": (("clinical",), (), True),
        "25": (("simple",), (), True), "26": (("internal_test",), (), True), "27": (("external",), (), True),
        "28": ((), ("data_availability",), True), "29": ((), ("code_availability",), True),
        "30": (("model_files",), ("code_availability",), True),
    },
    "tripod_ai": {
        "1": ((), ("title",), True), "3b": ((), ("intended_use",), True), "5a": ((), ("centres",), True),
        "5b": ((), ("dates",), True), "6a": ((), ("centres",), True), "6b": ((), ("eligibility",), True),
        "7": (("preprocessing",), (), False), "8a": ((), ("outcome", "reference_standard"), True),
        "9a": (("redundancy",), (), False), "9b": (("feature_dictionary",), ("imaging_protocol",), True),
        "10": (("sample_size",), (), False),
        "11": (("missing_data",), (), True), "12a": (("split", "leakage"), (), True),
        "12b": (("scaling",), (), True), "12c": (("models", "tuning"), (), True),
        "12e": (("metrics", "calibration", "decision"), (), True), "12g": (("threshold",), (), True),
        "13": (("class_balance",), (), True), "15": (("threshold",), (), True), "17": ((), ("ethics",), True),
        "18a": ((), ("funding",), True), "18b": ((), ("conflicts_of_interest",), True),
        "18c": ((), ("protocol",), True), "18d": ((), ("registration",), True),
        "18e": ((), ("data_availability",), True), "18f": ((), ("code_availability",), True),
        "19": ((), ("public_involvement",), True), "20a": (("flow",), (), False), "20b": (("table1",), (), False),
        "21": (("events",), (), True), "22": (("model_files",), (), False), "23a": (("metrics",), (), True),
    },
}

#: METRICS conditions 1–5: the run has segmentation masks, hand-crafted (PyRadiomics) features in a table and
#: no end-to-end deep learning; condition 2 (fully automated segmentation) comes from the config.
FIXED_CONDITIONS = {1: True, 3: True, 4: True, 5: False}
