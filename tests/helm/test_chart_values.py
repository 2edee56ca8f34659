"""values.yaml, values.schema.json, the templates and Chart.yaml agree with each other."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import tomllib
import yaml

from tests.helm.conftest import CHART_DIR, KUBERNETES_VERSIONS, ROOT

VALUES_FILE = CHART_DIR / "values.yaml"
SCHEMA_FILE = CHART_DIR / "values.schema.json"
KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_./-]+):(?: |$)")
LIST_ITEM_LINE = re.compile(r"^(?P<indent> *)- ")
IDENTIFIER_PATH = r"((?:\.[A-Za-z_][A-Za-z0-9_]*)+)"
VALUES_REFERENCE = re.compile(r"\.Values" + IDENTIFIER_PATH)
# `{{- $triton := .Values.triton }}`: a variable that stands for a values subtree.
VALUES_ALIAS = re.compile(
    r"(?P<name>\$[A-Za-z_][A-Za-z0-9_]*)\s*:?=\s*\.Values(?P<path>"
    + IDENTIFIER_PATH[1:]
)
# Text right before a values path that renders the whole subtree.
WHOLE_SUBTREE = re.compile(r"(toYaml|with|deepCopy|concat)\s+\(?$")


def values_leaves(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Yield the path of every leaf: scalars, lists and empty maps."""
    if isinstance(node, dict) and node:
        for key, child in node.items():
            yield from values_leaves(child, (*path, key))
    else:
        yield path


@dataclass(frozen=True)
class TemplateReads:
    """Values paths that the templates read."""

    # Every `.Values.a.b` path in the templates.
    paths: set[tuple[str, ...]]
    # Paths whose whole subtree is rendered (toYaml, with, deepCopy, concat).
    passthrough: set[tuple[str, ...]]
    # Field names read as `.name` anywhere, e.g. by helpers that take a subtree.
    fields: set[str]


def template_reads() -> TemplateReads:
    """Collect the values paths that the templates read.

    Variables bound to a values subtree (`$triton := .Values.triton`) are
    expanded, and their bindings are not counted as reads.
    """
    paths: set[tuple[str, ...]] = set()
    passthrough: set[tuple[str, ...]] = set()
    fields: set[str] = set()
    for template in sorted((CHART_DIR / "templates").rglob("*")):
        if not template.is_file():
            continue
        text = template.read_text(encoding="utf-8")
        aliases = {m["name"]: m["path"] for m in VALUES_ALIAS.finditer(text)}
        text = VALUES_ALIAS.sub(" ", text)
        for name, path in aliases.items():
            text = re.sub(re.escape(name) + r"(?![A-Za-z0-9_])", ".Values" + path, text)
        fields.update(re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)", text))
        for match in VALUES_REFERENCE.finditer(text):
            path = tuple(match.group(1).strip(".").split("."))
            paths.add(path)
            if WHOLE_SUBTREE.search(text[: match.start()]):
                passthrough.add(path)
    return TemplateReads(paths=paths, passthrough=passthrough, fields=fields)


def is_read(leaf: tuple[str, ...], reads: TemplateReads) -> bool:
    """Tell whether a template reads the leaf.

    A leaf counts as read when a template names it, when a map above it is
    rendered whole, or when a map above it goes to a helper that reads a field
    of the leaf's name. Top-level maps such as `.Values.triton` never count as
    a whole.
    """
    if leaf in reads.paths:
        return True
    parents = [leaf[:depth] for depth in range(2, len(leaf))]
    if any(parent in reads.passthrough for parent in parents):
        return True
    return any(parent in reads.paths for parent in parents) and leaf[-1] in reads.fields


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].removeprefix("#/definitions/")
        node = schema["definitions"][name]
    return node


def schema_property(
    schema: dict[str, Any], node: dict[str, Any], key: str
) -> dict[str, Any] | None:
    """Find the schema of property `key` in node, its $ref and its allOf branches.

    Keys of free-form maps (labels, annotations) match additionalProperties.
    """
    node = resolve(schema, node)
    if key in node.get("properties", {}):
        return node["properties"][key]
    if isinstance(node.get("additionalProperties"), dict):
        return node["additionalProperties"]
    for branch in node.get("allOf", []):
        found = schema_property(schema, branch, key)
        if found is not None:
            return found
    return None


def object_schemas(schema: dict[str, Any], node: Any) -> Iterator[dict[str, Any]]:
    """Yield every schema node that lists properties."""
    if isinstance(node, dict):
        if "properties" in node:
            yield node
        for child in node.values():
            yield from object_schemas(schema, child)
    elif isinstance(node, list):
        for child in node:
            yield from object_schemas(schema, child)


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return yaml.safe_load(VALUES_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def test_every_key_has_a_comment() -> None:
    lines = VALUES_FILE.read_text(encoding="utf-8").splitlines()
    undocumented = []
    list_indent: int | None = None
    for number, line in enumerate(lines, start=1):
        item = LIST_ITEM_LINE.match(line)
        if item:
            list_indent = len(item["indent"])
            continue
        key = KEY_LINE.match(line)
        if not key:
            continue
        indent = len(key["indent"])
        if list_indent is not None and indent > list_indent:
            continue
        list_indent = None
        above = lines[number - 2] if number >= 2 else ""
        if not above.startswith(" " * indent + "#"):
            undocumented.append(f"line {number}: {key['key']}")
    assert undocumented == []


def test_every_value_is_read_by_a_template(values: dict[str, Any]) -> None:
    reads = template_reads()
    unread = [
        ".".join(leaf) for leaf in values_leaves(values) if not is_read(leaf, reads)
    ]
    assert unread == []


def test_templates_read_only_defined_values(values: dict[str, Any]) -> None:
    undefined = []
    for reference in sorted(template_reads().paths):
        node: Any = values
        for key in reference:
            if not isinstance(node, dict) or key not in node:
                undefined.append(".".join(reference))
                break
            node = node[key]
    assert undefined == []


def test_every_value_is_in_the_schema(
    values: dict[str, Any], schema: dict[str, Any]
) -> None:
    missing = []
    for leaf in values_leaves(values):
        node: dict[str, Any] | None = schema
        for key in leaf:
            node = schema_property(schema, node, key) if node is not None else None
        if node is None or not ({"type", "$ref", "enum", "anyOf", "const"} & set(node)):
            missing.append(".".join(leaf))
    assert missing == []


def test_schema_rejects_unknown_keys(schema: dict[str, Any]) -> None:
    open_objects = [
        sorted(node["properties"])
        for node in object_schemas(schema, schema)
        if node.get("type") == "object" and "additionalProperties" not in node
    ]
    assert open_objects == []


def test_chart_defaults_pass_the_schema(values: dict[str, Any]) -> None:
    helm.Chart.load(CHART_DIR).validate_schema(values)


def test_app_version_matches_package() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text(encoding="utf-8"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert chart["appVersion"] == project["project"]["version"]
    assert chart["apiVersion"] == "v2"


def semver_matches(tmp_path: Path, constraint: str, versions: list[str]) -> list[bool]:
    """Check versions against a constraint with Helm's own semverCompare.

    Helm checks Chart.yaml's kubeVersion with the same Masterminds semver
    constraint matching that backs this template function.
    """
    chart = tmp_path / "semver"
    (chart / "templates").mkdir(parents=True, exist_ok=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: semver\nversion: 0.0.1\n")
    checks = "\n".join(
        f'{{{{ semverCompare {json.dumps(constraint)} "{version}" }}}}'
        for version in versions
    )
    (chart / "templates" / "checks.txt").write_text(checks)
    with helm.Chart.load(chart) as loaded:
        rendered = loaded.render(name="semver")
    return [line == "true" for line in rendered["semver/templates/checks.txt"].split()]


def test_kube_version_constraint_covers_tested_versions(tmp_path: Path) -> None:
    constraint = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text(encoding="utf-8"))[
        "kubeVersion"
    ]
    supported = [f"v{version}.0" for version in KUBERNETES_VERSIONS]
    supported += ["v1.31.9", "v1.29.3-eks-1552ad0", "v1.30.5-gke.1014001"]
    assert semver_matches(tmp_path, constraint, supported) == [True] * len(supported)
    assert semver_matches(tmp_path, constraint, ["v1.27.16"]) == [False]
