"""The value sets under helm/doku-gateway/ci/ as CI checks them: `helm lint --strict`, the
rendered objects against the Kubernetes schemas of the oldest and newest versions the chart
supports, the config each one renders against the gateway's loader, and checkov on the
production-like set."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from kubernetes_validate import utils as kubernetes  # type: ignore[import-untyped]
from packaging.version import Version

from ..support import Keys
from .chart import (
    CHART,
    CI_VALUES,
    CRD_KINDS,
    ROOT,
    SECRETS_DIR,
    Rendered,
    ci_value_files,
    lint,
    load_config,
    load_yaml,
    mount,
    secret_files,
)

REQUIRED_SETS = {"demo-values.yaml", "production-values.yaml", "everything-values.yaml"}
SET_NAMES = [path.name for path in ci_value_files()]
CHECKOV = ROOT / ".venv-tools" / "bin" / "checkov"


def supported_versions() -> tuple[str, str]:
    """The oldest Kubernetes the chart supports (Chart.yaml kubeVersion's lower bound) and the
    newest one kubernetes-validate has schemas for, which must satisfy that bound too."""
    constraint = load_yaml(CHART / "Chart.yaml")["kubeVersion"]
    floor = re.fullmatch(r">=(\d+\.\d+\.\d+)-0", constraint)
    assert floor, f"kubeVersion {constraint!r} is not a plain lower bound"
    available = [str(v) for v in kubernetes.all_versions()]
    oldest, newest = floor.group(1), str(kubernetes.latest_version())
    assert oldest in available, f"kubernetes-validate has no schemas for {oldest}: {available}"
    assert Version(newest) >= Version(oldest)
    return oldest, newest


def test_ci_has_the_required_value_sets() -> None:
    assert set(SET_NAMES) >= REQUIRED_SETS
    for name in SET_NAMES:
        assert (CI_VALUES / name).read_text(encoding="utf-8").startswith("# "), name


@pytest.mark.parametrize("name", SET_NAMES)
def test_lint_strict_on_oldest_and_newest_kubernetes(name: str) -> None:
    values = load_yaml(CI_VALUES / name)
    for version in supported_versions():
        report = lint(values, version)
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert not report["errors"] and not problems, (version, report)


@pytest.mark.parametrize("name", SET_NAMES)
def test_rendered_objects_match_the_kubernetes_schemas(
    name: str, ci_renders: dict[str, Rendered]
) -> None:
    """kubernetes-validate --strict: unknown fields are errors. Only CRD kinds may lack a
    schema."""
    rendered = ci_renders[name]
    assert rendered.docs
    for version in supported_versions():
        for doc in rendered.docs:
            where = f"{name}: {doc['kind']}/{doc['metadata']['name']} on {version}"
            try:
                kubernetes.validate(doc, version, strict=True)
            except kubernetes.SchemaNotFoundError:
                assert doc["kind"] in CRD_KINDS, f"{where}: no schema"
            except kubernetes.ValidationError as error:
                path = ".".join(map(str, error.path))
                pytest.fail(f"{where}: {path}: {error.message}")
            else:
                assert doc["kind"] not in CRD_KINDS


@pytest.mark.parametrize("name", [n for n in SET_NAMES if n != "demo-values.yaml"])
def test_rendered_config_loads_with_the_gateway(
    name: str, ci_renders: dict[str, Rendered], keys: Keys, tmp_path: Path
) -> None:
    rendered = ci_renders[name]
    toml = rendered.config_toml()
    # Real credentials under the item names the config refers to.
    mounted = secret_files(keys)
    if "merchant-private-key-password" in toml:
        mounted["merchant-private-key-password"] = b"correct horse"
        mounted["merchant-private-key.pem"] = keys.merchant.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"correct horse"),
        )
    mounts = {SECRETS_DIR: mount(tmp_path / "secrets", mounted)}
    redis = "/etc/doku-gateway/redis"
    if redis in toml:
        mounts[redis] = mount(tmp_path / "redis", {"url": b"redis://redis-master:6379/0"})
    for volume in rendered.gateway_pod()["spec"]["volumes"]:
        if volume["name"] == "billing-api":
            mounts["/etc/billing"] = mount(tmp_path / "billing", {"authorization": b"Bearer x"})
    settings = load_config(toml, mounts, env={"ERP_DSN": "postgresql://erp"})
    assert settings.resolvers and settings.http.host == "0.0.0.0"


def installed_checkov() -> Path:
    """checkov pins many packages, so it lives in .venv-tools (scripts/ensure-chart-tools)."""
    if not CHECKOV.exists():
        result = subprocess.run(
            [str(ROOT / "scripts" / "ensure-chart-tools")],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            reason = f"checkov cannot be installed: {result.stderr.strip()[-500:]}"
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
    return CHECKOV


def test_checkov_passes_the_production_like_set(
    ci_renders: dict[str, Rendered], tmp_path: Path
) -> None:
    """Zero failed checks; the only skips are the chart's own checkov.io/skip annotations, each
    with a reason."""
    rendered = ci_renders["production-values.yaml"]
    for name, text in rendered.manifests.items():
        if name.endswith(".yaml") and text.strip():
            (tmp_path / name.replace("/", "_")).write_text(text, encoding="utf-8")
    result = subprocess.run(
        [str(installed_checkov()), "--framework", "kubernetes", "--skip-download",
         "--directory", str(tmp_path), "--output", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    report: Any = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    summary, results = report["summary"], report["results"]
    failed = [(c["check_id"], c["resource"]) for c in results["failed_checks"]]
    assert not failed, failed
    assert summary["parsing_errors"] == 0 and result.returncode == 0, result.stderr[-2000:]
    # checkov saw every object it has checks for (an unparsable file is silently left out).
    seen = {
        c["resource"].split(".")[0] + "/" + c["resource"].split(".", 2)[2]
        for key in ("passed_checks", "skipped_checks")
        for c in results[key]
        if not c["resource"].startswith("Pod.") or "test" in c["resource"]
    }
    for doc in rendered.docs:
        if doc["kind"] in {"Deployment", "CronJob", "Pod", "Service", "Ingress", "ConfigMap"}:
            assert f"{doc['kind']}/{doc['metadata']['name']}" in seen, (doc["kind"], seen)
    # Each skip comes from an annotation in the chart that says why.
    annotations = {
        value.split("=", 1)[0]: value.split("=", 1)[1]
        for doc in rendered.docs
        for key, value in (doc["metadata"].get("annotations") or {}).items()
        if key.startswith("checkov.io/skip")
    }
    skipped = {c["check_id"] for c in results["skipped_checks"]}
    assert skipped <= set(annotations), (skipped, annotations)
    assert all(len(reason.split()) >= 5 for reason in annotations.values()), annotations


def test_value_sets_are_valid_yaml_documents() -> None:
    for path in ci_value_files():
        assert isinstance(yaml.safe_load(path.read_text(encoding="utf-8")), dict), path.name
