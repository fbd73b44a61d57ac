"""The Helm chart (helm/doku-gateway) and the Dockerfile, checked without Helm or Docker.

Helm cannot be installed where the suite runs, so these tests check what Python can:

* every ``.Values.x.y`` a template reads exists in values.yaml, and every top-level value is used;
* ``values.config`` uses only keys of the gateway's config schema, with the gateway's defaults;
* the ``config.toml`` the chart renders, rebuilt here by :func:`render_config_toml` (a port of
  the ``doku-gateway.configToml`` helper), is accepted by ``gateway.config.settings_from_mapping``
  with real keys in the mounted-secret files;
* probes, ports, paths and the container user agree across templates, values and the Dockerfile,
  and the container arguments parse with the real CLI.

When a ``helm`` binary is on PATH, the chart is also rendered with ``helm template`` and the
output checked the same way.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import cli
from gateway.config import _SECRET_KEYS, _SECTIONS, Settings, settings_from_mapping
from gateway.exceptions import ConfigError
from gateway.snap.keys import private_key_pem, public_key_pem

from ..support import Keys

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "doku-gateway"
TEMPLATES = CHART / "templates"
CONFIG_PATH = "/etc/doku-gateway/config.toml"
SECRETS_DIR = "/etc/doku-gateway/secrets"
DATA_DIR = "/var/lib/doku-gateway"

# Settings where the chart deliberately differs from the gateway's built-in default: listen on
# the pod's interfaces, and keep files the gateway writes on the writable data volume.
CHART_OVERRIDES = {
    ("http", "host"): "0.0.0.0",
    ("payment", "journal_dir"): f"{DATA_DIR}/journal",
}

DEFAULT_ITEMS = {
    "clientSecret": "client-secret",
    "dokuPublicKey": "doku-public-key.pem",
    "merchantPrivateKey": "merchant-private-key.pem",
    "merchantPrivateKeyPassword": "merchant-private-key-password",
    "merchantPublicKey": "merchant-public-key.pem",
}
REQUIRED_ITEMS = ("clientSecret", "dokuPublicKey", "merchantPrivateKey")
DEMO_RESOLVER = {"name": "demo", "use": "demo", "default": True}


# --- helpers --------------------------------------------------------------------------------


def load_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    return values


def template_texts() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(TEMPLATES.iterdir())}


def merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's value merge: maps merge key by key, null deletes, anything else replaces."""
    result = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merged(result[key], value)
        elif value is None:
            result.pop(key, None)
        else:
            result[key] = copy.deepcopy(value)
    return result


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def toml_value(value: Any) -> str:
    """Port of the ``doku-gateway.tomlValue`` helper."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        pairs = [
            f"{toml_key(k)} = {toml_value(v)}" for k, v in sorted(value.items()) if v is not None
        ]
        return "{ " + ", ".join(pairs) + " }" if pairs else "{ }"
    raise TypeError(f"cannot write {value!r} as TOML")


def toml_pairs(table: Mapping[str, Any]) -> list[str]:
    return [f"{toml_key(k)} = {toml_value(v)}" for k, v in sorted(table.items()) if v is not None]


def secret_item(values: Mapping[str, Any], item: str) -> str:
    """Port of the ``doku-gateway.secretItem`` helper: the file name of a credential, or ""."""
    secrets = values["secrets"]
    existing = secrets.get("existingSecret")
    name = (secrets.get("items") or {}).get(item) or ""
    if not name and item in REQUIRED_ITEMS:
        name = DEFAULT_ITEMS[item]
    if not name and not existing and secrets.get(item):
        name = DEFAULT_ITEMS[item]
    if name and not existing and item not in REQUIRED_ITEMS and not secrets.get(item):
        name = ""
    return str(name)


def render_config_toml(values: Mapping[str, Any]) -> str:
    """Port of the ``doku-gateway.configToml`` helper (the ConfigMap's config.toml)."""
    config = values["config"]
    lines = ["# rendered"]
    if config.get("log_level"):
        lines.append(f"log_level = {toml_value(config['log_level'])}")

    def file_ref(item: str) -> str:
        return toml_value(f"file:{SECRETS_DIR}/{secret_item(values, item)}")

    lines += ["", "[doku]", f"client_id = {toml_value(str(values['doku']['clientId']))}"]
    lines += [f"client_secret = {file_ref('clientSecret')}"]
    lines += [f"public_key = {file_ref('dokuPublicKey')}"]
    lines += ["", "[merchant]", f"private_key = {file_ref('merchantPrivateKey')}"]
    if secret_item(values, "merchantPrivateKeyPassword"):
        lines.append(f"private_key_password = {file_ref('merchantPrivateKeyPassword')}")
    if secret_item(values, "merchantPublicKey"):
        lines.append(f"public_key = {file_ref('merchantPublicKey')}")
    for section in _SECTIONS:  # the helper's list; a test checks they agree
        lines += ["", f"[{section}]", *toml_pairs(config.get(section) or {})]
    for resolver in config.get("resolvers") or []:
        lines += ["", "[[resolvers]]"]
        lines += toml_pairs({k: v for k, v in resolver.items() if k != "options"})
        if resolver.get("options"):
            lines += ["[resolvers.options]", *toml_pairs(resolver["options"])]
    return "\n".join(lines) + "\n"


def secret_files(keys: Keys, password: str | None = None) -> dict[str, str]:
    """Contents of every credential item, keyed like ``secrets.*`` values."""
    files = {
        "clientSecret": keys.client_secret,
        "dokuPublicKey": public_key_pem(keys.doku.public_key()).decode(),
        "merchantPrivateKey": private_key_pem(keys.merchant).decode(),
        "merchantPublicKey": public_key_pem(keys.merchant.public_key()).decode(),
    }
    if password is not None:
        files["merchantPrivateKeyPassword"] = password
    return files


def load_rendered(toml_text: str, mounted: Mapping[str, bytes], tmp_path: Path) -> Settings:
    """Mount ``mounted`` (file name -> bytes) in a temp dir standing in for SECRETS_DIR and load
    the TOML with the gateway's own loader."""
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    for name, content in mounted.items():
        (secrets_dir / name).write_bytes(content)
    assert SECRETS_DIR in toml_text
    data = tomllib.loads(toml_text.replace(SECRETS_DIR, str(secrets_dir)))
    return settings_from_mapping(data, {})


def values_path_exists(values: Mapping[str, Any], path: list[str]) -> bool:
    node: Any = values
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def block(text: str, start: str) -> str:
    """The lines of ``text`` from the one containing ``start`` up to the next line that is not
    indented deeper (a YAML block, read from a template's text)."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if start in line:
            indent = len(line) - len(line.lstrip())
            body = [line]
            for following in lines[index + 1 :]:
                if following.strip() and len(following) - len(following.lstrip()) <= indent:
                    break
                body.append(following)
            return "\n".join(body)
    raise AssertionError(f"{start!r} not found")


def dockerfile_instruction(name: str) -> str:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    found = re.findall(rf"^{name}\s+(.+)$", text, re.M)
    assert found, f"no {name} in the Dockerfile"
    return str(found[-1]).strip()


# --- chart metadata and values ----------------------------------------------------------------


def test_chart_yaml_is_v2_and_tracks_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == CHART.name == project["name"]
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", chart["version"])
    assert chart["appVersion"] == project["version"]


def test_every_values_reference_in_the_templates_exists() -> None:
    values = load_values()
    missing = []
    for name, text in template_texts().items():
        for match in re.finditer(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text):
            path = match.group(1).lstrip(".").split(".")
            if not values_path_exists(values, path):
                missing.append(f"{name}: .Values.{'.'.join(path)}")
    assert not missing, f"templates read values that values.yaml does not define: {missing}"


def test_every_top_level_value_is_used_by_a_template() -> None:
    used = "\n".join(template_texts().values())
    unused = [key for key in load_values() if not re.search(rf"\.Values\.{key}\b", used)]
    assert not unused, f"values.yaml keys no template reads: {unused}"


def test_config_values_use_the_gateway_schema_and_its_defaults() -> None:
    config = load_values()["config"]
    assert set(config) == {*_SECTIONS, "log_level", "resolvers"}
    for section, cls in _SECTIONS.items():
        fields = {f.name: f.default for f in dataclasses.fields(cls)}
        unknown = set(config[section]) - set(fields)
        assert not unknown, f"config.{section}: not gateway settings: {unknown}"
        for key, value in config[section].items():
            expected = CHART_OVERRIDES.get((section, key), fields[key])
            # Numbers compare by value (YAML 10 == 10.0); "0.00" must stay a string.
            assert value == expected and type(value) in (type(expected), int), (
                f"config.{section}.{key} = {value!r}, the gateway's default is {expected!r}"
            )


def test_the_helper_renders_the_gateway_sections_and_credential_keys() -> None:
    helpers = (TEMPLATES / "_helpers.tpl").read_text(encoding="utf-8")
    body = helpers.split('define "doku-gateway.configToml"', 1)[1].split("{{- define", 1)[0]
    sections = re.search(r"range \$section := list ((?:\"\w+\"\s*)+)", body)
    assert sections, "configToml no longer loops over the sections"
    assert sorted(re.findall(r'"(\w+)"', sections.group(1))) == sorted(_SECTIONS)
    # The credential keys written under [doku] and [merchant] are ones the gateway reads.
    doku, merchant = body.split("[doku]", 1)[1].split("[merchant]", 1)
    for section, text in (("doku", doku), ("merchant", merchant.split("{{- range", 1)[0])):
        written = set(re.findall(r"^(\w+) = ", text, re.M))
        assert written and written <= set(_SECRET_KEYS[section]), (section, written)
    # The item names the helper falls back to are the ones values.yaml and this test use.
    defaults = re.search(r"\$defaults := dict ([^}]+)", helpers)
    assert defaults
    pairs = re.findall(r'"([^"]+)"', defaults.group(1))
    assert dict(zip(pairs[::2], pairs[1::2], strict=True)) == DEFAULT_ITEMS
    items = load_values()["secrets"]["items"]
    assert {k: v for k, v in items.items() if v} == {k: DEFAULT_ITEMS[k] for k in REQUIRED_ITEMS}


# --- the rendered config.toml -----------------------------------------------------------------


def test_default_values_render_a_config_the_gateway_accepts(keys: Keys, tmp_path: Path) -> None:
    values = merged(load_values(), {"doku": {"clientId": keys.client_id}})
    values["config"]["resolvers"] = [DEMO_RESOLVER]
    files = secret_files(keys)
    mounted = {secret_item(values, k): files[k].encode() for k in REQUIRED_ITEMS}
    settings = load_rendered(render_config_toml(values), mounted, tmp_path)
    assert settings.http.host == "0.0.0.0"
    assert settings.http.port == values["config"]["http"]["port"]
    assert settings.cache.url == "memory://"
    assert settings.credentials.client_id == keys.client_id
    assert settings.credentials.client_secret == keys.client_secret
    assert settings.credentials.merchant_public_key.public_numbers() == (
        keys.merchant.public_key().public_numbers()
    )
    assert [r.name for r in settings.resolvers] == ["demo"]


def test_default_values_alone_are_refused(keys: Keys, tmp_path: Path) -> None:
    """values.yaml ships no resolver (a demo default could answer DOKU with made-up bills): the
    gateway refuses such a config, and the chart fails the install before it gets that far."""
    values = merged(load_values(), {"doku": {"clientId": keys.client_id}})
    files = secret_files(keys)
    mounted = {secret_item(values, k): files[k].encode() for k in REQUIRED_ITEMS}
    with pytest.raises(ConfigError, match="resolvers"):
        load_rendered(render_config_toml(values), mounted, tmp_path)
    validate = (TEMPLATES / "_helpers.tpl").read_text(encoding="utf-8")
    assert re.search(r"if not \.Values\.config\.resolvers \}\}\s*\{\{- fail", validate)
    assert re.search(r"if not \.Values\.doku\.clientId \}\}\s*\{\{- fail", validate)


def test_existing_secret_with_optional_items_and_plugin_options(keys: Keys, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    password = "correct horse"
    encrypted = keys.merchant.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.encode()),
    )
    override: dict[str, Any] = {
        "doku": {"clientId": keys.client_id},
        "secrets": {
            "existingSecret": "doku-creds",
            "items": {
                "clientSecret": "secret.txt",
                "merchantPrivateKeyPassword": "key-password",
                "merchantPublicKey": "merchant.pub",
            },
        },
        "config": {
            "log_level": "debug",
            "http": {"access_log": None, "port": 9000, "max_body_bytes": 1_000_000},
            "cache": {"url": "redis://redis-master:6379/0"},
            "security": {"signature_mode": "log-only"},
            "resolvers": [
                {
                    "name": "erp",
                    "use": "gateway.demo:DemoResolver",
                    "partner_service_ids": ["88899", "12345"],
                    "timeout": 2.5,
                    "options": {
                        "amount": "15000.00",
                        "retries": 2,
                        "ratio": 0.25,
                        "weird key": 'a"b\\c<>& é',
                        "nested": {"list": [1, "x", True], "empty": {}},
                    },
                },
                DEMO_RESOLVER,
            ],
        },
    }
    values = merged(load_values(), override)
    files = secret_files(keys, password)
    mounted = {
        "secret.txt": keys.client_secret.encode(),
        "doku-public-key.pem": files["dokuPublicKey"].encode(),
        "merchant-private-key.pem": encrypted,
        "key-password": password.encode(),
        "merchant.pub": files["merchantPublicKey"].encode(),
    }
    text = render_config_toml(values)
    assert "access_log" not in text  # null falls back to the gateway's default
    settings = load_rendered(text, mounted, tmp_path)
    assert settings.log_level == "DEBUG"
    assert settings.http.port == 9000 and settings.http.max_body_bytes == 1_000_000
    assert settings.http.access_log is False
    assert settings.cache.url == "redis://redis-master:6379/0"
    assert settings.security.signature_mode == "log-only"
    erp = settings.resolvers[0]
    assert erp.partner_service_ids == ("88899", "12345") and erp.timeout == 2.5
    assert dict(erp.options) == override["config"]["resolvers"][0]["options"]
    assert type(erp.options["retries"]) is int


def test_chart_created_secret_uses_optional_items_only_when_given(keys: Keys) -> None:
    values = merged(load_values(), {"doku": {"clientId": keys.client_id}})
    assert secret_item(values, "merchantPublicKey") == ""
    assert "public_key" not in render_config_toml(values).split("[merchant]")[1].split("[")[0]
    values["secrets"]["merchantPublicKey"] = "PEM"
    assert secret_item(values, "merchantPublicKey") == "merchant-public-key.pem"
    secret = (TEMPLATES / "secret.yaml").read_text(encoding="utf-8")
    assert "existingSecret" in secret.splitlines()[0], "secret.yaml must skip existingSecret"
    # The client secret is an HMAC key: the chart trims what --set-file may have added.
    assert re.search(r"\$s\.clientSecret \| toString \| trim \| b64enc", secret)


# --- deployment, service, Dockerfile ------------------------------------------------------------


def test_probes_point_at_livez_and_readyz_on_the_http_port() -> None:
    deployment = (TEMPLATES / "deployment.yaml").read_text(encoding="utf-8")
    for probe, path in (
        ("livenessProbe:", "/livez"),
        ("readinessProbe:", "/readyz"),
        ("startupProbe:", "/livez"),
    ):
        text = block(deployment, probe)
        assert f"path: {path}" in text, probe
        assert "port: http" in text, probe
    ports = block(deployment, "ports:")
    assert "name: http" in ports
    assert re.search(r"containerPort: \{\{ \$port \}\}", ports)
    assert '$port := include "doku-gateway.port"' in deployment
    helpers = (TEMPLATES / "_helpers.tpl").read_text(encoding="utf-8")
    assert re.search(r"\.Values\.config\.http \| default dict\)\.port \| default 8080", helpers)
    service = (TEMPLATES / "service.yaml").read_text(encoding="utf-8")
    assert "targetPort: http" in service


def test_config_and_secrets_are_mounted_where_the_toml_and_image_expect() -> None:
    helpers = (TEMPLATES / "_helpers.tpl").read_text(encoding="utf-8")
    assert f'define "doku-gateway.configPath" -}}}}{CONFIG_PATH}{{{{' in helpers
    assert f'define "doku-gateway.secretsDir" -}}}}{SECRETS_DIR}{{{{' in helpers
    assert f'define "doku-gateway.dataDir" -}}}}{DATA_DIR}{{{{' in helpers
    deployment = (TEMPLATES / "deployment.yaml").read_text(encoding="utf-8")
    mounts = block(deployment, "volumeMounts:")
    assert 'mountPath: {{ include "doku-gateway.configPath" . }}' in mounts
    assert "subPath: config.toml" in mounts
    assert 'mountPath: {{ include "doku-gateway.secretsDir" . }}' in mounts
    # Whatever the gateway writes goes to a mounted volume: the root filesystem is read-only.
    assert 'mountPath: {{ include "doku-gateway.dataDir" . }}' in mounts
    writable = [v for (_, key), v in CHART_OVERRIDES.items() if key.endswith("_dir")]
    assert writable and all(path.startswith(f"{DATA_DIR}/") for path in writable)
    assert f"install -d -m 0750 -o 10001 -g 10001 {DATA_DIR}" in (ROOT / "Dockerfile").read_text(
        encoding="utf-8"
    )
    configmap = (TEMPLATES / "configmap.yaml").read_text(encoding="utf-8")
    assert re.search(r"config\.toml: \|\s*\{\{- include \"doku-gateway\.configToml\"", configmap)
    for annotation, template in (("checksum/config", "configmap"), ("checksum/secret", "secret")):
        assert re.search(
            rf"{annotation}: \{{\{{ include \(print \$\.Template\.BasePath \"/{template}\.yaml\"\)"
            r" \. \| sha256sum \}\}",
            deployment,
        ), annotation


def test_container_arguments_parse_with_the_cli() -> None:
    deployment = (TEMPLATES / "deployment.yaml").read_text(encoding="utf-8")
    port = str(load_values()["config"]["http"]["port"])
    argument_lists = []
    for line in re.findall(r"^\s*args: (\[.*\])$", deployment, re.M):
        line = line.replace(
            '{{ include "doku-gateway.configPath" . | quote }}', json.dumps(CONFIG_PATH)
        )
        line = line.replace("{{ $port | quote }}", json.dumps(port))
        argument_lists.append(json.loads(line))
    assert len(argument_lists) == 2
    parsed = [cli._parser().parse_args(args) for args in argument_lists]
    demo, serve = sorted(parsed, key=lambda args: args.config is not None)
    assert serve.config == CONFIG_PATH and not serve.demo
    assert demo.demo and demo.host == "0.0.0.0" and demo.port == int(port)
    assert demo.demo_dir.startswith("/tmp/")  # the only writable place (readOnlyRootFilesystem)
    assert "mountPath: /tmp" in deployment


def test_pod_security_and_shutdown_defaults() -> None:
    values = load_values()
    pod, container = values["podSecurityContext"], values["securityContext"]
    assert pod["runAsNonRoot"] and container["runAsNonRoot"]
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]
    assert pod["fsGroup"] == pod["runAsGroup"] == container["runAsGroup"]
    assert values["secrets"]["defaultMode"] == 0o440
    # The grace period covers the preStop sleep plus uvicorn's own graceful shutdown.
    source = (ROOT / "gateway" / "cli.py").read_text(encoding="utf-8")
    graceful = re.search(r"timeout_graceful_shutdown=(\d+)", source)
    assert graceful
    assert values["preStopSleepSeconds"] > 0
    budget = values["preStopSleepSeconds"] + int(graceful.group(1))
    assert values["terminationGracePeriodSeconds"] > budget
    deployment = (TEMPLATES / "deployment.yaml").read_text(encoding="utf-8")
    assert 'command: ["sleep", {{ .Values.preStopSleepSeconds' in deployment


def test_multi_replica_needs_redis_is_said_in_values_and_notes() -> None:
    text = (CHART / "values.yaml").read_text(encoding="utf-8")
    replica_comment = text.split("replicaCount:", 1)[0].rsplit("\n\n", 1)[-1]
    assert "NEEDS REDIS" in replica_comment
    notes = (TEMPLATES / "NOTES.txt").read_text(encoding="utf-8")
    assert "More than one replica needs Redis" in notes
    pdb = (TEMPLATES / "pdb.yaml").read_text(encoding="utf-8")
    assert 'include "doku-gateway.multiReplica"' in pdb.splitlines()[0]


def test_dockerfile_matches_the_chart() -> None:
    values = load_values()
    assert dockerfile_instruction("FROM").startswith("${PYTHON_IMAGE}")
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert json.loads(dockerfile_instruction("ENTRYPOINT")) == ["doku-gateway"]
    assert json.loads(dockerfile_instruction("CMD")) == ["serve", "--config", CONFIG_PATH]
    assert int(dockerfile_instruction("EXPOSE")) == values["config"]["http"]["port"]
    assert dockerfile_instruction("WORKDIR") == DATA_DIR  # writable by the user, and a volume
    user = dockerfile_instruction("USER")
    assert (
        user
        == f"{values['securityContext']['runAsUser']}:{values['podSecurityContext']['runAsGroup']}"
    )
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^ARG PLUGINS=", text, re.M) and "pip install $specs $PLUGINS" in text
    # Everything `pip install .` needs is let through the .dockerignore allow-list.
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "readme"
    ]
    for needed in ("pyproject.toml", readme, "gateway", "plugins"):
        assert f"!{needed}" in ignore, needed


# --- with a real helm, when there is one ------------------------------------------------------

HELM = shutil.which("helm")
needs_helm = pytest.mark.skipif(HELM is None, reason="helm is not installed")


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    assert HELM is not None
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120, check=False)


def rendered(tmp_path: Path, override: Mapping[str, Any], *extra: str) -> Iterator[dict[str, Any]]:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(dict(override)), encoding="utf-8")
    result = helm("template", "gw", str(CHART), "-f", str(values_file), *extra)
    assert result.returncode == 0, result.stderr
    return (doc for doc in yaml.safe_load_all(result.stdout) if doc)


@needs_helm
def test_helm_renders_a_working_config(keys: Keys, tmp_path: Path) -> None:
    files = secret_files(keys)
    set_files = []
    for item in ("dokuPublicKey", "merchantPrivateKey"):
        path = tmp_path / item
        path.write_text(files[item], encoding="utf-8")
        set_files += ["--set-file", f"secrets.{item}={path}"]
    override = {
        "replicaCount": 2,
        "doku": {"clientId": keys.client_id},
        "secrets": {"clientSecret": keys.client_secret + "\n"},
        "config": {"cache": {"url": "redis://redis:6379/0"}, "resolvers": [DEMO_RESOLVER]},
        "metrics": {"serviceMonitor": {"enabled": True}},
        "autoscaling": {"enabled": True},
        "networkPolicy": {"enabled": True},
        "ingress": {"enabled": True, "hosts": ["gw.example.com"]},
    }
    docs = {doc["kind"]: doc for doc in rendered(tmp_path, override, *set_files)}
    assert {"PodDisruptionBudget", "HorizontalPodAutoscaler", "ServiceMonitor"} <= set(docs)
    mounted = {k: base64.b64decode(v) for k, v in docs["Secret"]["data"].items()}
    assert mounted["client-secret"] == keys.client_secret.encode()  # trimmed
    settings = load_rendered(docs["ConfigMap"]["data"]["config.toml"], mounted, tmp_path)
    assert settings.cache.url == "redis://redis:6379/0"
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["serve", "--config", CONFIG_PATH]
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["ports"][0]["containerPort"] == settings.http.port
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    ingress_paths = [p["path"] for p in docs["Ingress"]["spec"]["rules"][0]["http"]["paths"]]
    assert ingress_paths == [settings.paths.token, settings.paths.inquiry, settings.paths.payment]


@needs_helm
def test_helm_refuses_incomplete_values_and_renders_demo(tmp_path: Path) -> None:
    result = helm("template", "gw", str(CHART))
    assert result.returncode != 0 and "doku.clientId" in result.stderr
    demo = yaml.safe_load((CHART / "ci" / "demo-values.yaml").read_text(encoding="utf-8"))
    kinds = {doc["kind"] for doc in rendered(tmp_path, demo)}
    assert "Deployment" in kinds and "Secret" not in kinds and "ConfigMap" not in kinds
    assert helm("lint", str(CHART), "-f", str(CHART / "ci" / "demo-values.yaml")).returncode == 0
