"""Rendering helm/doku-gateway with Helm's own Go library (helm-python-sdk), no binary or cluster.

Every chart test asks Helm: what a template reads, refuses or writes is whatever Helm renders.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import tomllib
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

from gateway.config import Settings, settings_from_mapping
from gateway.snap.keys import private_key_pem, public_key_pem

from ..support import Keys

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "doku-gateway"
CI_VALUES = CHART / "ci"
RELEASE = "gw"
NAMESPACE = "payments"
FULLNAME = f"{RELEASE}-doku-gateway"
CONFIG_PATH = "/etc/doku-gateway/config.toml"
SECRETS_DIR = "/etc/doku-gateway/secrets"
DATA_DIR = "/var/lib/doku-gateway"

#: Kinds defined by CustomResourceDefinitions: no Kubernetes schema exists for them.
CRD_KINDS = frozenset({"ServiceMonitor", "PrometheusRule"})
WORKLOAD_KINDS = ("Deployment", "StatefulSet")

DEMO_RESOLVER = {"name": "demo", "use": "demo", "default": True}
#: The least a non-demo install needs (credentials come from an existing Secret).
MINIMAL: dict[str, Any] = {
    "doku": {"clientId": "BRN-0001-1700000000001"},
    "secrets": {"existingSecret": "doku-creds"},
    "config": {"resolvers": [DEMO_RESOLVER]},
}
REDIS: dict[str, Any] = {"config": {"cache": {"url": "redis://redis-master.redis.svc:6379/0"}}}


def merged(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's value merge for -f files given in order: maps merge key by key, the rest replaces."""
    result: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
                result[key] = merged(result[key], value)
            else:
                result[key] = copy.deepcopy(value)
    return result


def gateway_sections() -> dict[str, type[Any]]:
    """The TOML tables of the gateway's Settings: its fields that are dataclasses with a default
    (credentials, written from `doku` and `secrets`, have none)."""
    hints = typing.get_type_hints(Settings)
    return {
        f.name: hints[f.name]
        for f in dataclasses.fields(Settings)
        if dataclasses.is_dataclass(hints[f.name]) and f.default is not dataclasses.MISSING
    }


def load_yaml(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return data


def ci_value_files() -> list[Path]:
    return sorted(CI_VALUES.glob("*-values.yaml"))


@dataclass(frozen=True)
class Rendered:
    """One `helm template`: the manifests by template path, parsed."""

    manifests: Mapping[str, str]
    docs: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, manifests: Mapping[str, str]) -> Rendered:
        docs = [
            doc
            for name, text in sorted(manifests.items())
            if name.endswith(".yaml")
            for doc in yaml.safe_load_all(text)
            if doc
        ]
        return cls(manifests, docs)

    @property
    def notes(self) -> str:
        return next(text for name, text in self.manifests.items() if name.endswith("NOTES.txt"))

    def kinds(self) -> set[str]:
        return {doc["kind"] for doc in self.docs}

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.all(kind)
        assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
        return found[0]

    def workload(self) -> dict[str, Any]:
        found = [doc for doc in self.docs if doc["kind"] in WORKLOAD_KINDS]
        assert len(found) == 1, [doc["kind"] for doc in found]
        return found[0]

    def gateway_pod(self) -> dict[str, Any]:
        """The gateway's pod template (metadata and spec)."""
        template: dict[str, Any] = self.workload()["spec"]["template"]
        return template

    def pod_templates(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every pod the release can start, as (kind, {metadata, spec})."""
        for doc in self.docs:
            if doc["kind"] in WORKLOAD_KINDS:
                yield doc["kind"], doc["spec"]["template"]
            elif doc["kind"] == "CronJob":
                yield "CronJob", doc["spec"]["jobTemplate"]["spec"]["template"]
            elif doc["kind"] == "Pod":
                yield "Pod", {"metadata": doc["metadata"], "spec": doc["spec"]}

    def config_toml(self) -> str:
        (text,) = [
            doc["data"]["config.toml"]
            for doc in self.all("ConfigMap")
            if "config.toml" in doc.get("data", {})
        ]
        return str(text)


def render(values: Mapping[str, Any]) -> Rendered:
    """`helm template gw helm/doku-gateway --namespace payments` with these values."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values=dict(values), name=RELEASE, namespace=NAMESPACE)
    return Rendered.of(manifests)


def render_error(values: Mapping[str, Any]) -> str:
    """The message Helm refuses these values with (fails the test when it renders)."""
    with helm.Chart.load(CHART) as chart:
        try:
            chart.render(values=dict(values), name=RELEASE, namespace=NAMESPACE)
        except (helm.HelmValuesError, helm.HelmRenderError) as exc:
            return str(exc)
    raise AssertionError(f"the chart rendered values it should refuse: {dict(values)}")


def lint(values: Mapping[str, Any], kube_version: str) -> dict[str, Any]:
    return helm.lint(
        CHART, dict(values), strict=True, namespace=NAMESPACE, kube_version=f"v{kube_version}"
    )


def secret_files(keys: Keys) -> dict[str, bytes]:
    """Real credentials under the chart's default Secret item names."""
    return {
        "client-secret": keys.client_secret.encode(),
        "doku-public-key.pem": public_key_pem(keys.doku.public_key()),
        "merchant-private-key.pem": private_key_pem(keys.merchant),
        "merchant-public-key.pem": public_key_pem(keys.merchant.public_key()),
    }


def mount(directory: Path, files: Mapping[str, bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_bytes(content)
    return directory


def load_config(
    toml_text: str,
    mounts: Mapping[str, Path],
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Load a rendered config.toml with the gateway's own loader, each mounted directory of the
    pod (e.g. SECRETS_DIR) replaced by a local one holding the same files."""
    for pod_dir, local in mounts.items():
        assert pod_dir in toml_text, pod_dir
        toml_text = toml_text.replace(pod_dir, str(local))
    return settings_from_mapping(tomllib.loads(toml_text), env or {})


def secret_data(secret: Mapping[str, Any]) -> dict[str, bytes]:
    return {name: base64.b64decode(value) for name, value in secret["data"].items()}
