"""Configuration: load, validate against the packaged schema ``usrad/schemas/config.schema.yaml``, fill in defaults."""
from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .config_checks import expression_problems, run_problems, semantic_problems
from .errors import Problem, UsradError

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
    problems.extend(expression_problems(cfg, source))  # a config is data: its task expressions never run code
    if problems:
        raise UsradError(f"Invalid configuration in {source}", problems)
    for _ in _DefaultFiller(schema).iter_errors(cfg):
        pass
    problems.extend(semantic_problems(cfg, source))
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


def _short(text: str, limit: int = 300) -> str:
    """A schema message quotes the offending value: keep a huge value from flooding the report."""
    return text if len(text) <= limit else text[: limit - 20] + " … (shortened)"


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
