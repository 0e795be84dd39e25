"""Configuration: load, validate against the packaged schema ``usrad/schemas/config.schema.yaml``, fill in defaults."""
from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import Problem, UsradError
from .expr import ExpressionError, columns, parse, shown

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parents[1]
SCHEMA_PATH = Path(str(resources.files(__package__).joinpath("schemas", "config.schema.yaml")))  # package data


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    path = Path(path)
    return copy.deepcopy(_parsed_schema(str(path), path.stat().st_mtime_ns))


@functools.lru_cache(maxsize=8)
def _parsed_schema(path: str, mtime_ns: int) -> dict:  # parsed once per file version, not per config
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _extend_with_default(validator_class):
    """Validator that fills in `default` values (jsonschema FAQ recipe, also used by snakemake.utils.validate)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, subschema in properties.items():
                if "default" in subschema and prop not in instance:
                    instance[prop] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


# JSON Schema counts 4.0 as an integer; a config's integers (seed, shards, folds) must be written as integers.
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, x: isinstance(x, int) and not isinstance(x, bool)))
_DefaultFiller = _extend_with_default(_Validator)
MAX_SEED = 2**32 - 1  # numpy's and scikit-learn's random_state limit
#: A check of a schema-valid config with its defaults: ``check(cfg, source) -> [Problem]``.
Check = Callable[[dict, str], list[Problem]]


def section_defaults(section: str) -> dict:
    """The defaults the schema gives the top-level ``section`` (nested ones filled in): what
    :func:`validate_config` fills into a config without that section. A fresh copy."""
    return copy.deepcopy(_section_defaults(section, SCHEMA_PATH.stat().st_mtime_ns))


@functools.lru_cache(maxsize=8)
def _section_defaults(section: str, mtime_ns: int) -> dict:
    instance: dict = {}
    for _ in _DefaultFiller(load_schema()["properties"][section]).iter_errors(instance):
        pass
    return instance


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def validate_config(config: dict | None, schema: dict | None = None, source: str = "config",
                    text_values: bool = False, checks: Sequence[Check] = ()) -> dict:
    """Validate ``config``; return a copy with defaults filled. Raises UsradError listing every problem.

    ``text_values``: read a text value as YAML where the schema wants a number, true/false or null there
    (:func:`coerce_text_values`; Snakemake's ``--config KEY="{...}"`` passes every nested value as text).
    ``checks``: more checks ``check(cfg, source) -> [Problem]`` of the schema-valid config with its defaults,
    whose problems are reported with this module's own (the checks that need the models:
    :func:`usrad.plan.validate_config`)."""
    schema = schema if schema is not None else load_schema()
    try:
        cfg = copy.deepcopy(config) if config is not None else {}
        if text_values:
            cfg = coerce_text_values(cfg, schema)
    except RecursionError:
        raise UsradError(f"Invalid configuration in {source}", [Problem("the config is nested too deeply", file=source)]) from None
    if not isinstance(cfg, dict):
        raise UsradError(f"Invalid configuration in {source}", [Problem("the config must be a mapping of keys", file=source)])
    # Validate twice: once on the raw input (to report the user's own keys), then fill defaults.
    problems = []
    try:
        errors = sorted(_Validator(schema).iter_errors(cfg), key=lambda e: list(map(str, e.absolute_path)))
    except RecursionError:
        raise UsradError(f"Invalid configuration in {source}", [Problem("the config is nested too deeply", file=source)]) from None
    for err in errors:
        problems.append(Problem(f"key {_key_path(err)!r}: {_short(err.message)}{_text_hint(err)}", file=source))
    problems.extend(_expression_problems(cfg, source))  # a config is data: its task expressions never run code
    if problems:
        raise UsradError(f"Invalid configuration in {source}", problems)
    for _ in _DefaultFiller(schema).iter_errors(cfg):
        pass
    problems.extend(_semantic_problems(cfg, source))
    problems.extend(run_problems(cfg, source))
    for check in checks:
        problems.extend(check(cfg, source))
    if problems:
        raise UsradError(f"Invalid configuration in {source}", problems)
    return cfg


_TEXT_TYPES = {"integer": lambda x: isinstance(x, int) and not isinstance(x, bool),
               "number": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
               "boolean": lambda x: isinstance(x, bool), "null": lambda x: x is None}


def coerce_text_values(value: Any, schema: dict) -> Any:
    """``value`` with every text that stands where ``schema`` wants an integer, number, boolean or null (and no
    text) read as YAML (``yaml.safe_load``: data only, nothing is executed) when that gives such a value. Snakemake
    reads ``--config cohort='{simulate: {n_patients: 160}}'`` with YAML's BaseLoader, which keeps 160 as the text
    '160'. Text the schema allows stays text (``cohort.manifest: null`` in braces is the text 'null'); a text
    that does not parse to an allowed type is left for the schema check to report."""
    schema = schema if isinstance(schema, dict) else {}
    if isinstance(value, dict):
        props, extra = schema.get("properties") or {}, schema.get("additionalProperties")
        return {k: coerce_text_values(v, props.get(k, extra)) for k, v in value.items()}
    if isinstance(value, list):
        return [coerce_text_values(v, schema.get("items")) for v in value]
    if not isinstance(value, str):
        return value
    types = schema.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    if not types or "string" in types or not set(types) & set(_TEXT_TYPES):
        return value
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    return parsed if any(_TEXT_TYPES[t](parsed) for t in types if t in _TEXT_TYPES) else value


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys sorted (recursively; tuples become lists): the form in which a rule gets
    its part of the config, so that the key order of a configfile never changes a rule's params (Snakemake
    compares their ``repr``)."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


def _expression_problems(cfg: dict, source: str) -> list[Problem]:
    """Every task label/subset that is not a valid task expression (:mod:`usrad.expr`; docs/manifest.md, "Task
    expressions"), each naming ``tasks[i].label``/``subset``. Runs on the raw config: values of the wrong type are
    left to the schema check; whether the columns exist is checked against the manifest (usrad.cohort)."""
    tasks = cfg.get("tasks")
    problems = []
    for i, task in enumerate(tasks if isinstance(tasks, list) else []):
        if not isinstance(task, dict):
            continue
        for key in ("label", "subset"):
            text = task.get(key)
            if not isinstance(text, str) or (key == "subset" and not text.strip()):
                continue  # not text: the schema says so; an empty subset is no subset
            try:
                parse(text)
            except ExpressionError as err:
                name = f" (task {task['name']!r})" if isinstance(task.get("name"), str) else ""
                problems.append(Problem(f"key 'tasks[{i}].{key}'{name}: expression {shown(text)} is refused: {err.reason}",
                                        file=source))
    return problems


OUTCOME_COLUMNS = {"n_positive_nodes"}


def _short(text: str, limit: int = 300) -> str:
    """A schema message quotes the offending value: keep a huge value from flooding the report."""
    return text if len(text) <= limit else text[: limit - 20] + " … (shortened)"


def _semantic_problems(cfg: dict, source: str) -> list[Problem]:
    problems = []
    if cfg.get("seed", 0) > MAX_SEED:
        problems.append(Problem(f"key 'seed': {cfg['seed']} is larger than the maximum {MAX_SEED}", file=source))
    results_dir = cfg.get("results_dir")
    if isinstance(results_dir, str) and any(part in (".", "..") for part in results_dir.split("/")):
        problems.append(Problem(f"key 'results_dir': {results_dir!r} contains '.' or '..'; outputs must stay under "
                                "results/ (e.g. results/busbra)", file=source))
    names = [t["name"] for t in cfg["tasks"]]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(Problem(f"key 'tasks': task name {name!r} is used more than once", file=source))
    if cfg["cohort"]["busbra"]["use"] and cfg["cohort"]["manifest"]:
        problems.append(Problem("key 'cohort.busbra.use': true needs cohort.manifest null (the BUS-BRA manifest is written "
                                "by the workflow)", file=source))
    clin = cfg["clinical"]
    for col in clin["predictors"]:
        if col in OUTCOME_COLUMNS:
            problems.append(Problem(f"key 'clinical.predictors': {col!r} is an outcome (known only after surgery), not a preoperative predictor", file=source))
    for col in clin["categorical"]:
        if col not in clin["predictors"]:
            problems.append(Problem(f"key 'clinical.categorical': {col!r} is not in clinical.predictors", file=source))
    return problems


def _text_hint(err: jsonschema.ValidationError) -> str:
    """A hint when a number, true/false or null was given as text: Snakemake's ``--config KEY="{...}"`` passes
    every value inside the braces as text."""
    if err.validator not in ("type", "enum") or not isinstance(err.instance, str):
        return ""
    try:
        parsed = yaml.safe_load(err.instance)
    except yaml.YAMLError:
        return ""
    if parsed is None or isinstance(parsed, (bool, int, float)):
        return (f" ({err.instance!r} is text here; values inside --config KEY=\"{{...}}\" reach the workflow as text: "
                "give such keys in a --configfile)")
    return ""


#: Manifest columns that identify an image or locate its files: never predictors.
ID_COLUMNS = ("patient_id", "image_id", "image", "mask", "mask_reader2", "pixel_spacing_mm")


def run_problems(cfg: dict, source: str = "config") -> list[Problem]:
    """What a later rule would refuse, known from the (schema-valid) config alone: predictors, split and ICC
    copy reader. The checks that need the models (predicted models, search spaces) are
    :func:`usrad.plan.config_problems`, those that need the cohort :func:`usrad.plan.plan_problems`."""
    return (_predictor_problems(cfg, source) + _split_config_problems(cfg, source)
            + _copy_reader_config_problems(cfg, source))


def _twice(values: list) -> list:
    return sorted({v for v in values if values.count(v) > 1}, key=str)


def _predictor_problems(cfg: dict, source: str) -> list[Problem]:
    """Predictors listed twice, id/path columns, columns a task's label/subset uses (leakage), the split column."""
    def names_in(text) -> set[str]:
        try:
            return set(columns(text))
        except ExpressionError:  # reported by _expression_problems
            return set()

    clin = cfg["clinical"]
    preds = list(clin["predictors"])
    problems = [Problem(f"key 'clinical.predictors': {c!r} is listed twice", file=source) for c in _twice(preds)]
    problems += [Problem(f"key 'clinical.categorical': {c!r} is listed twice", file=source)
                 for c in _twice(list(clin["categorical"]))]
    problems += [Problem(f"key 'clinical.predictors': {c!r} identifies an image or its files, it is not a clinical "
                         "variable", file=source) for c in dict.fromkeys(preds) if c in ID_COLUMNS]
    for task in cfg["tasks"]:
        for part in ("label", "subset"):
            used = names_in(task.get(part)) - OUTCOME_COLUMNS  # outcomes: reported by _semantic_problems
            problems += [Problem(f"key 'clinical.predictors': {c!r} is used by the {part} of task {task['name']!r}; "
                                 "a task's own outcome as a predictor is leakage", file=source)
                         for c in dict.fromkeys(preds) if c in used]
    by = cfg["split"]["by_column"]
    if by is not None and by in preds:
        problems.append(Problem(f"key 'split.by_column': {by!r} is also a clinical predictor, but its external values "
                                "are never seen in training; remove it from clinical.predictors", file=source))
    return problems


def _split_config_problems(cfg: dict, source: str) -> list[Problem]:
    sp = cfg["split"]
    problems = []
    if sp["by_column"] is None:
        if not sp["test_size"]:
            problems.append(Problem("key 'split.test_size': 0 leaves no test set; give a fraction such as 0.25, or "
                                    "hold out an external set with split.by_column and split.external_values", file=source))
        if sp["external_values"]:
            problems.append(Problem("key 'split.external_values': set split.by_column (the column these values are "
                                    "in), or leave external_values empty", file=source))
    elif not sp["external_values"]:
        problems.append(Problem(f"key 'split.external_values' is empty: name the values of {sp['by_column']!r} that form "
                                "the external set", file=source))
    problems += [Problem(f"key 'split.external_values': {v!r} is listed twice", file=source)
                 for v in _twice(list(sp["external_values"]))]
    return problems


def _copy_reader_config_problems(cfg: dict, source: str) -> list[Problem]:
    """``modelling.reproducibility.copy_reader`` must name a segmentation the feature table will have."""
    wanted = cfg["modelling"]["reproducibility"]["copy_reader"]
    n = cfg["extraction"]["perturbed_masks"]
    key = "key 'modelling.reproducibility.copy_reader'"
    if wanted in (None, "auto", "none", "r2"):
        return []
    if wanted == "r1":
        return [Problem(f"{key}: 'r1' is the reference segmentation itself; use r2, p1 … or auto", file=source)]
    m = re.fullmatch(r"p([1-9][0-9]*)", str(wanted))
    if m and int(m.group(1)) <= n:
        return []
    if m:
        return [Problem(f"{key}: {wanted!r} needs extraction.perturbed_masks >= {m.group(1)} (it is {n})", file=source)]
    perturbed = [f"p{i}" for i in range(1, n + 1)]
    return [Problem(f"{key}: {wanted!r} is not a segmentation of the feature table; choose auto, r2"
                    f"{', ' + ', '.join(perturbed) if perturbed else ''} or null", file=source)]


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (YAML would silently keep the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"found key {key!r} twice", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path, schema: dict | None = None, checks: Sequence[Check] = ()) -> dict:
    """Read a YAML config file and validate it (UsradError on any problem; ``checks``: :func:`validate_config`)."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.load(fh, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except FileNotFoundError:
        raise UsradError(f"Config file not found: {path}") from None
    except IsADirectoryError:
        raise UsradError(f"Config file {path} is a folder, not a YAML file") from None
    except OSError as exc:
        raise UsradError(f"Config file {path} cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise UsradError(f"Config file {path} is not UTF-8 text", [Problem(f"undecodable byte at position {exc.start}",
                                                                           file=str(path))]) from None
    except yaml.YAMLError as exc:
        raise UsradError(f"Config file {path} is not valid YAML", [Problem(_short(str(exc), 1000), file=str(path))]) from None
    except RecursionError:
        raise UsradError(f"Config file {path} is not valid YAML", [Problem("nested too deeply", file=str(path))]) from None
    return validate_config(raw, schema, source=str(path), checks=checks)


def task_by_name(cfg: dict[str, Any], name: str) -> dict:
    for task in cfg["tasks"]:
        if task["name"] == name:
            return task
    raise KeyError(name)


def schema_markdown(schema: dict | None = None) -> str:
    """The README's configuration table, generated from the schema (tests check the README has it)."""
    schema = schema if schema is not None else load_schema()
    rows = ["| key | default | description |", "|---|---|---|"]

    def fmt(value) -> str:
        text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
        text = text.removesuffix("\n...").removesuffix("...").strip()
        return f"`{text}`" if len(text) <= 60 else "see config/config.yaml"

    def walk(node: dict, prefix: str) -> None:
        for key, sub in node.get("properties", {}).items():
            name = prefix + key
            if sub.get("type") == "object" and "properties" in sub:
                walk(sub, name + ".")
                continue
            default = fmt(sub["default"]) if "default" in sub else "(required)"
            desc = " ".join(str(sub.get("description", "")).split()).replace("|", "\\|")
            rows.append(f"| `{name}` | {default} | {desc} |")
            items = sub.get("items")
            if isinstance(items, dict) and items.get("type") == "object":
                walk(items, name + "[].")

    walk(schema, "")
    return "\n".join(rows) + "\n"


def update_readme(readme: str | Path = REPO_ROOT / "README.md") -> None:
    """Rewrite the README's configuration table from the schema."""
    readme = Path(readme)
    text = readme.read_text()
    start, end = "<!-- config-table:start -->\n", "<!-- config-table:end -->"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(head + start + schema_markdown() + end + tail)


if __name__ == "__main__":  # python -m usrad.config --readme
    import sys

    if sys.argv[1:] == ["--readme"]:
        update_readme()
