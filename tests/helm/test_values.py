"""values.yaml and values.schema.json: the schema types every value, mirrors the gateway's own
config schema (gateway/config.py), and Helm refuses bad values with a message naming them."""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import pytest
import yaml

from gateway.config import ResolverSettings

from .chart import (
    CHART,
    MINIMAL,
    ROOT,
    gateway_sections,
    load_yaml,
    merged,
    render,
    render_error,
)

JSON_TYPES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
# Where the chart deliberately differs from the gateway's built-in default: listen on the pod's
# interfaces, and keep the payment journal on the data volume.
CHART_OVERRIDES = {
    ("http", "host"): "0.0.0.0",
    ("payment", "journal_dir"): "/var/lib/doku-gateway/journal",
}


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text("utf-8"))
    return loaded


def allowed_types(node: Mapping[str, Any]) -> set[str]:
    declared = node.get("type", [])
    return {declared} if isinstance(declared, str) else set(declared)


def expected_schema(hint: Any) -> tuple[set[str], list[Any] | None]:
    """JSON types (and enum) a gateway setting's annotation allows; null always (a key set to
    null falls back to the gateway's default)."""
    if typing.get_origin(hint) is Literal:
        return {"string", "null"}, [*typing.get_args(hint), None]
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return expected_schema(inner[0])
    return {JSON_TYPES[hint], "null"}, None


def test_chart_metadata() -> None:
    chart = load_yaml(CHART / "Chart.yaml")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == CHART.name == project["name"]
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", chart["version"])
    assert chart["appVersion"] == project["version"]
    assert re.fullmatch(r">=\d+\.\d+\.\d+-0", chart["kubeVersion"])


def test_schema_config_sections_are_the_gateways() -> None:
    """Every [section] key of gateway/config.py, with its type or choices, and nothing else."""
    config = schema()["properties"]["config"]
    sections = gateway_sections()
    assert config["additionalProperties"] is False
    assert set(config["properties"]) == {*sections, "log_level", "log_format", "resolvers"}
    for section, cls in sections.items():
        node = config["properties"][section]
        assert node["additionalProperties"] is False, section
        hints = typing.get_type_hints(cls)
        assert set(node["properties"]) == set(hints), section
        for key, hint in hints.items():
            types_, enum = expected_schema(hint)
            prop = node["properties"][key]
            assert allowed_types(prop) == types_, f"config.{section}.{key}: {prop}"
            assert prop.get("enum") == enum, f"config.{section}.{key}: {prop}"


def test_schema_resolvers_are_the_gateways() -> None:
    items = schema()["properties"]["config"]["properties"]["resolvers"]["items"]
    assert items["additionalProperties"] is False
    assert set(items["properties"]) == {f.name for f in dataclasses.fields(ResolverSettings)}
    assert items["required"] == ["use"]
    ids = items["properties"]["partner_service_ids"]
    assert ids["type"] == "array" and ids["items"]["type"] == "string"


def leaves(values: Mapping[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in values.items():
        if isinstance(value, Mapping) and value:
            yield from leaves(value, (*path, key))
        else:
            yield (*path, key)


def test_every_value_is_typed_by_the_schema() -> None:
    """Walking values.yaml, every key is declared (objects refuse unknown keys on the way) and
    carries a type or an enum."""
    untyped = []
    for path in leaves(load_yaml(CHART / "values.yaml")):
        node = schema()
        for key in path:
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is not True, path
                assert key in node["properties"], f"{'.'.join(path)} is not in the schema"
                node = node["properties"][key]
            else:
                break  # a free-form Kubernetes object (resources, affinity, options, ...)
        if "type" not in node and "enum" not in node:
            untyped.append(".".join(path))
    assert not untyped, untyped


def test_schema_keeps_the_top_level_closed() -> None:
    root = schema()
    assert root["additionalProperties"] is False
    assert set(load_yaml(CHART / "values.yaml")) <= set(root["properties"])
    assert "additional properties 'replicas' not allowed" in render_error(
        merged(MINIMAL, {"replicas": 2})
    )


def test_config_values_default_to_the_gateways_defaults() -> None:
    config = load_yaml(CHART / "values.yaml")["config"]
    for section, cls in gateway_sections().items():
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        for key, value in config[section].items():
            expected = CHART_OVERRIDES.get((section, key), defaults[key])
            # Numbers compare by value (YAML 10 == 10.0); "0.00" must stay a string.
            assert value == expected and type(value) in (type(expected), int), (
                f"config.{section}.{key} = {value!r}, the gateway's default is {expected!r}"
            )


REFUSED = [
    pytest.param(
        {"config": {"cache": {"ulr": "redis://redis:6379/0"}}},
        ["'/config/cache'", "'ulr' not allowed"],
        id="unknown-key",
    ),
    pytest.param(
        {"config": {"resolvers": [{"use": "demo", "partner_service_ids": [88899]}]}},
        ["'/config/resolvers/0/partner_service_ids/0'", "got number, want string"],
        id="number-as-partner-service-id",
    ),
    pytest.param(
        {"config": {"http": {"port": "8080"}}},
        ["'/config/http/port'", "got string"],
        id="string-port",
    ),
    pytest.param(
        {"config": {"http": {"port": 70000}}},
        ["'/config/http/port'", "maximum"],
        id="port-out-of-range",
    ),
    pytest.param(
        {"config": {"security": {"signature_mode": "off"}}},
        ["'/config/security/signature_mode'", "'enforce', 'log-only'"],
        id="signature-mode",
    ),
    pytest.param(
        {"config": {"payment": {"journal": "sqlite"}}},
        ["'/config/payment/journal'", "'auto', 'file', 'redis'"],
        id="journal-kind",
    ),
    pytest.param(
        {"config": {"cache": {"url": "http://redis:6379"}}},
        ["'/config/cache/url'"],
        id="cache-scheme",
    ),
    pytest.param(
        {"config": {"inquiry": {"resolver_timeout": 0}}},
        ["'/config/inquiry/resolver_timeout'"],
        id="zero-timeout",
    ),
    pytest.param(
        {"config": {"resolvers": [{"name": "x", "uses": "demo"}]}},
        ["'/config/resolvers/0'", "'use'"],
        id="resolver-without-use",
    ),
    pytest.param(
        {"config": {"redis": {"url": "redis://redis:6379"}}},
        ["'/config'", "'redis' not allowed"],
        id="unknown-section",
    ),
    pytest.param(
        {"workload": {"kind": "DaemonSet"}},
        ["'/workload/kind'", "'Deployment', 'StatefulSet'"],
        id="workload-kind",
    ),
    pytest.param({"image": {"digest": "latest"}}, ["'/image/digest'"], id="digest"),
    pytest.param({"reconcile": {"enabled": "yes"}}, ["'/reconcile/enabled'"], id="bool-string"),
]


@pytest.mark.parametrize(("override", "expected"), REFUSED)
def test_schema_refuses_bad_values_naming_them(
    override: dict[str, Any], expected: list[str]
) -> None:
    message = render_error(merged(MINIMAL, override))
    for fragment in expected:
        assert fragment in message, message


def test_null_config_keys_fall_back_to_the_gateways_default() -> None:
    toml = render(merged(MINIMAL, {"config": {"http": {"access_log": None}}})).config_toml()
    assert "access_log" not in toml
    assert "max_body_bytes = 65536" in toml


def test_values_yaml_comments_parse_as_documented_examples() -> None:
    """The commented resolver example in values.yaml is valid values for the chart."""
    text = (CHART / "values.yaml").read_text(encoding="utf-8")
    block = text.split("Example, with the repository's http plugin (plugins/http-backend):", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if not line.startswith("  #   "):
            break
        lines.append(line.removeprefix("  #   "))
    example = yaml.safe_load("\n".join(lines))
    rendered = render(merged(MINIMAL, {"config": example}))
    assert "[resolvers.options]" in rendered.config_toml()
