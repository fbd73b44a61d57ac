"""What the chart renders: a config the gateway accepts, pods that roll on changes, payments that
survive the pod, the reconcile CronJob, the helm test pod, and the refusals."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

import gateway
from gateway.cli import main
from gateway.snap.keys import generate_private_key, public_key_pem

from ..support import Keys, free_port, poll
from .chart import (
    CONFIG_PATH,
    DATA_DIR,
    FULLNAME,
    MINIMAL,
    NAMESPACE,
    REDIS,
    SECRETS_DIR,
    Rendered,
    gateway_sections,
    load_config,
    merged,
    mount,
    render,
    render_error,
    secret_data,
    secret_files,
)

REDIS_DIR = "/etc/doku-gateway/redis"


def volumes(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {volume["name"]: volume for volume in pod["spec"]["volumes"]}


def container(pod: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = pod["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


# --- refusals -----------------------------------------------------------------------------------


def test_incomplete_values_are_refused_with_what_to_set() -> None:
    assert "doku.clientId is required" in render_error({})
    no_resolver = merged(MINIMAL, {"config": {"resolvers": []}})
    assert "config.resolvers is empty" in render_error(no_resolver)
    chart_secret = merged(MINIMAL, {"secrets": {"existingSecret": ""}})
    assert "secrets.clientSecret is required" in render_error(chart_secret)


# --- config.toml and credentials ----------------------------------------------------------------


def test_rendered_config_loads_with_the_gateway(keys: Keys, tmp_path: Path) -> None:
    password = "correct horse"
    encrypted = keys.merchant.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.encode()),
    )
    options = {
        "amount": "15000.00",
        "retries": 2,
        "ratio": 0.25,
        "weird key": 'a"b\\c<>& é',
        "nested": {"list": [1, "x", True], "empty": {}},
    }
    values = merged(
        MINIMAL,
        {
            "doku": {"clientId": keys.client_id},
            "secrets": {
                "items": {
                    "clientSecret": "secret.txt",
                    "merchantPrivateKeyPassword": "key-password",
                    "merchantPublicKey": "merchant.pub",
                }
            },
            "config": {
                "log_level": "debug",
                "log_format": "json",
                "http": {"port": 9000, "max_body_bytes": 1_000_000},
                "security": {"signature_mode": "log-only"},
                "resolvers": [
                    {
                        "name": "erp",
                        "use": "acme.resolver:create",
                        "partner_service_ids": ["88899", "12345"],
                        "timeout": 2.5,
                        "options": options,
                    },
                    {"name": "demo", "use": "demo", "default": True},
                ],
            },
        },
    )
    files = secret_files(keys)
    secrets = mount(
        tmp_path / "secrets",
        {
            "secret.txt": files["client-secret"],
            "doku-public-key.pem": files["doku-public-key.pem"],
            "merchant-private-key.pem": encrypted,
            "key-password": password.encode(),
            "merchant.pub": files["merchant-public-key.pem"],
        },
    )
    rendered = render(values)
    settings = load_config(rendered.config_toml(), {SECRETS_DIR: secrets})
    assert settings.log_level == "DEBUG" and settings.log_format == "json"
    assert settings.http.host == "0.0.0.0" and settings.http.port == 9000
    assert settings.http.max_body_bytes == 1_000_000
    assert settings.security.signature_mode == "log-only"
    assert settings.credentials.client_id == keys.client_id
    assert settings.credentials.client_secret == keys.client_secret
    assert settings.payment.journal_dir.startswith(f"{DATA_DIR}/")
    erp = settings.resolvers[0]
    assert erp.partner_service_ids == ("88899", "12345") and erp.timeout == 2.5
    assert dict(erp.options) == options and type(erp.options["retries"]) is int
    # The container listens where the probes, the Service and the NetworkPolicy look.
    pod = rendered.gateway_pod()
    assert container(pod)["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]


def test_chart_made_secret_feeds_the_config(keys: Keys, tmp_path: Path) -> None:
    files = secret_files(keys)
    values = merged(
        MINIMAL,
        {
            "doku": {"clientId": keys.client_id},
            "secrets": {
                "existingSecret": "",
                # A secret from --set-file usually ends in a newline: an HMAC key must not.
                "clientSecret": keys.client_secret + "\n",
                "dokuPublicKey": files["doku-public-key.pem"].decode(),
                "merchantPrivateKey": files["merchant-private-key.pem"].decode(),
            },
        },
    )
    rendered = render(values)
    secret = rendered.one("Secret")
    assert secret["metadata"]["name"] == FULLNAME
    mounted = secret_data(secret)
    assert set(mounted) == {"client-secret", "doku-public-key.pem", "merchant-private-key.pem"}
    assert mounted["client-secret"] == keys.client_secret.encode()
    settings = load_config(rendered.config_toml(), {SECRETS_DIR: mount(tmp_path, mounted)})
    assert settings.credentials.client_secret == keys.client_secret
    assert settings.credentials.merchant_public_key.public_numbers() == (
        keys.merchant.public_key().public_numbers()
    )
    secrets_volume = volumes(rendered.gateway_pod())["secrets"]["secret"]
    assert secrets_volume == {"secretName": FULLNAME, "defaultMode": 0o440}
    # Optional items are used only when given.
    with_public = merged(values, {"secrets": {"merchantPublicKey": "PEM"}})
    assert "merchant-public-key.pem" in secret_data(render(with_public).one("Secret"))
    assert (
        'public_key = "file:/etc/doku-gateway/secrets/merchant-public-key.pem"'
        in (render(with_public).config_toml().split("[merchant]")[1])
    )


def test_rotation_values_reach_the_gateway(keys: Keys, tmp_path: Path) -> None:
    """During a rotation the chart-made Secret carries DOKU's next secret and key, and both
    reach the gateway as doku.client_secret_next / doku.public_key_next."""
    files = secret_files(keys)
    next_key = generate_private_key()
    values = merged(
        MINIMAL,
        {
            "doku": {"clientId": keys.client_id},
            "secrets": {
                "existingSecret": "",
                "clientSecret": keys.client_secret,
                "clientSecretNext": "the-next-secret\n",
                "dokuPublicKey": files["doku-public-key.pem"].decode(),
                "dokuPublicKeyNext": public_key_pem(next_key.public_key()).decode(),
                "merchantPrivateKey": files["merchant-private-key.pem"].decode(),
            },
        },
    )
    rendered = render(values)
    mounted = secret_data(rendered.one("Secret"))
    assert mounted["client-secret-next"] == b"the-next-secret"  # trimmed, like the current one
    settings = load_config(rendered.config_toml(), {SECRETS_DIR: mount(tmp_path, mounted)})
    assert settings.credentials.client_secret_next == "the-next-secret"
    assert settings.credentials.doku_public_key_next is not None
    assert settings.credentials.doku_public_key_next.public_numbers() == (
        next_key.public_key().public_numbers()
    )
    without = render(merged(MINIMAL, {"doku": {"clientId": keys.client_id}}))
    assert "_next" not in without.config_toml()


def test_check_config_accepts_the_rendered_config(keys: Keys, tmp_path: Path) -> None:
    rendered = render(merged(MINIMAL, {"doku": {"clientId": keys.client_id}}))
    secrets = mount(tmp_path / "secrets", secret_files(keys))
    path = tmp_path / "config.toml"
    path.write_text(rendered.config_toml().replace(SECRETS_DIR, str(secrets)), encoding="utf-8")
    assert main(["check-config", "--config", str(path)]) == 0


def test_redis_url_secret_is_a_mounted_file(keys: Keys, tmp_path: Path) -> None:
    values = merged(MINIMAL, {"redis": {"urlSecret": {"name": "redis-url", "key": "uri"}}})
    rendered = render(values)
    pod = rendered.gateway_pod()
    assert volumes(pod)["redis-url"]["secret"]["items"] == [{"key": "uri", "path": "url"}]
    mounts = {m["name"]: m for m in container(pod)["volumeMounts"]}
    assert mounts["redis-url"] == {"name": "redis-url", "mountPath": REDIS_DIR, "readOnly": True}
    assert all("valueFrom" not in env for env in container(pod)["env"])
    redis = mount(tmp_path / "redis", {"url": b"rediss://:pw@redis-master:6380/0"})
    secrets = mount(tmp_path / "secrets", secret_files(keys))
    settings = load_config(rendered.config_toml(), {SECRETS_DIR: secrets, REDIS_DIR: redis})
    assert settings.cache.url == "rediss://:pw@redis-master:6380/0"
    assert settings.journal_on_redis


def test_container_arguments_parse_with_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The serve and reconcile arguments get past the real CLI's parser: with a config file that
    does not exist, each fails as a configuration error naming that file."""
    rendered = render(merged(MINIMAL, REDIS))
    cronjob = rendered.one("CronJob")["spec"]["jobTemplate"]["spec"]["template"]
    missing = str(tmp_path / "missing.toml")
    for pod in (rendered.gateway_pod(), cronjob):
        args = [missing if arg == CONFIG_PATH else arg for arg in container(pod)["args"]]
        assert missing in args
        assert main(args) == 2, args
        assert "missing.toml" in capsys.readouterr().err


@pytest.fixture
def demo_gateway(tmp_path: Path) -> Iterator[tuple[Rendered, str]]:
    """The demo pod's own arguments, run as a real process on a loopback port."""
    rendered = render({"demo": {"enabled": True}})
    args: list[str] = container(rendered.gateway_pod())["args"]
    port = free_port()
    replace = {"--demo-dir": str(tmp_path / "demo"), "--host": "127.0.0.1", "--port": str(port)}
    local = [replace.get(args[i - 1], arg) if i else arg for i, arg in enumerate(args)]
    assert local != args and local[:2] == ["serve", "--demo"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", *local],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"

    def live() -> bool:
        assert process.poll() is None, "the demo gateway exited"
        try:
            return httpx.get(f"{base}/livez", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        poll(live, timeout=30)
        yield rendered, base
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_helm_test_pod_checks_readyz_of_a_running_gateway(
    demo_gateway: tuple[Rendered, str],
) -> None:
    rendered, base = demo_gateway
    pod = rendered.one("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    command: list[str] = container({"spec": pod["spec"]})["command"]
    service = rendered.one("Service")
    url = f"http://{FULLNAME}.{NAMESPACE}.svc:{service['spec']['ports'][0]['port']}/readyz"
    assert command[0] == "python" and command[-1] == url
    assert service["metadata"]["name"] == FULLNAME
    result = subprocess.run(
        [sys.executable, *command[1:-1], f"{base}/readyz"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("200 ")


# --- rolling on changes -------------------------------------------------------------------------


def checksums(rendered: Rendered) -> dict[str, str]:
    annotations: dict[str, str] = rendered.gateway_pod()["metadata"].get("annotations", {})
    return {k: v for k, v in annotations.items() if k.startswith("checksum/")}


def test_config_and_chart_secret_changes_roll_the_pods() -> None:
    chart_secret = merged(
        MINIMAL,
        {
            "secrets": {
                "existingSecret": "",
                "clientSecret": "one",
                "dokuPublicKey": "PEM",
                "merchantPrivateKey": "PEM",
            }
        },
    )
    base = checksums(render(chart_secret))
    assert set(base) == {"checksum/config", "checksum/secret"}
    config_changed = checksums(render(merged(chart_secret, {"config": {"log_level": "DEBUG"}})))
    assert config_changed["checksum/config"] != base["checksum/config"]
    assert config_changed["checksum/secret"] == base["checksum/secret"]
    secret_changed = checksums(render(merged(chart_secret, {"secrets": {"clientSecret": "two"}})))
    assert secret_changed["checksum/secret"] != base["checksum/secret"]
    assert secret_changed["checksum/config"] == base["checksum/config"]
    # An existing Secret is not the chart's to hash: podAnnotations can carry its revision.
    existing = render(merged(MINIMAL, {"podAnnotations": {"example.com/secret-rev": "7"}}))
    assert set(checksums(existing)) == {"checksum/config"}
    assert existing.gateway_pod()["metadata"]["annotations"]["example.com/secret-rev"] == "7"


# --- payments survive the pod -------------------------------------------------------------------


def test_default_file_journal_lives_on_a_claim_with_one_pod() -> None:
    rendered = render(MINIMAL)
    claim = rendered.one("PersistentVolumeClaim")
    assert claim["metadata"]["name"] == f"{FULLNAME}-data"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "storageClassName" not in claim["spec"]
    deployment = rendered.one("Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    data = volumes(rendered.gateway_pod())["data"]
    assert data == {"name": "data", "persistentVolumeClaim": {"claimName": f"{FULLNAME}-data"}}
    assert f'journal_dir = "{DATA_DIR}/journal"' in rendered.config_toml()
    assert "CronJob" not in rendered.kinds()
    assert f"Payment journal: a file on PersistentVolumeClaim {FULLNAME}-data" in rendered.notes


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"persistence": {"enabled": False}}, "persistence.enabled=false puts it on an emptyDir"),
        ({"replicaCount": 2}, "a file payment journal is for one process"),
        ({"autoscaling": {"enabled": True}}, "a file payment journal is for one process"),
        (merged(REDIS, {"config": {"payment": {"journal": "file"}}, "replicaCount": 3}),
         "a file payment journal is for one process"),
        ({"strategy": {"type": "RollingUpdate"}}, "strategy.type=RollingUpdate with a Persistent"),
        ({"reconcile": {"enabled": True}}, "reconcile.enabled=true needs a Redis payment journal"),
        ({"config": {"payment": {"journal": "redis"}}}, "no Redis URL reaches the gateway"),
        ({**REDIS, "persistence": {"enabled": True}, "replicaCount": 2},
         "the pods would share one claim"),
    ],
)  # fmt: skip
def test_shapes_that_lose_payments_are_refused(override: dict[str, Any], message: str) -> None:
    assert message in render_error(merged(MINIMAL, override))


def test_statefulset_gives_the_file_journal_its_own_claim() -> None:
    rendered = render(
        merged(MINIMAL, {"workload": {"kind": "StatefulSet"}, "persistence": {"size": "5Gi"}})
    )
    assert {"PersistentVolumeClaim", "Deployment"}.isdisjoint(rendered.kinds())
    statefulset = rendered.one("StatefulSet")
    assert statefulset["spec"]["serviceName"] == rendered.one("Service")["metadata"]["name"]
    (template,) = statefulset["spec"]["volumeClaimTemplates"]
    assert template["metadata"]["name"] == "data"
    assert template["spec"]["resources"] == {"requests": {"storage": "5Gi"}}
    assert "data" not in volumes(rendered.gateway_pod())
    mounts = container(rendered.gateway_pod())["volumeMounts"]
    assert {"name": "data", "mountPath": DATA_DIR} in mounts


def test_existing_claim_and_storage_class() -> None:
    existing = render(merged(MINIMAL, {"persistence": {"existingClaim": "journal"}}))
    assert "PersistentVolumeClaim" not in existing.kinds()
    data = volumes(existing.gateway_pod())["data"]
    assert data["persistentVolumeClaim"] == {"claimName": "journal"}
    assert existing.one("Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    no_provisioning = render(merged(MINIMAL, {"persistence": {"storageClass": ""}}))
    assert no_provisioning.one("PersistentVolumeClaim")["spec"]["storageClassName"] == ""


def test_redis_journal_needs_no_claim_and_rolls_without_downtime() -> None:
    rendered = render(merged(MINIMAL, REDIS, {"replicaCount": 3}))
    assert "PersistentVolumeClaim" not in rendered.kinds()
    assert volumes(rendered.gateway_pod())["data"]["emptyDir"] == {"sizeLimit": "1Gi"}
    strategy = rendered.one("Deployment")["spec"]["strategy"]
    assert strategy == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert rendered.one("PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert "Payment journal: Redis Streams" in rendered.notes


def test_statefulset_with_redis_scales_by_hpa() -> None:
    values = merged(MINIMAL, REDIS, {"workload": {"kind": "StatefulSet"}})
    rendered = render(merged(values, {"autoscaling": {"enabled": True}}))
    assert "volumeClaimTemplates" not in rendered.one("StatefulSet")["spec"]
    target = rendered.one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert target == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": FULLNAME}


# --- reconcile ----------------------------------------------------------------------------------


def test_reconcile_is_on_by_default_with_a_redis_journal_only() -> None:
    assert "CronJob" in render(merged(MINIMAL, REDIS)).kinds()
    assert (
        "CronJob" not in render(merged(MINIMAL, REDIS, {"reconcile": {"enabled": False}})).kinds()
    )
    assert "CronJob" not in render(MINIMAL).kinds()
    assert "CronJob" not in render({"demo": {"enabled": True}}).kinds()


def test_reconcile_runs_with_the_gateways_image_config_secrets_and_security() -> None:
    values = merged(
        MINIMAL,
        {
            "redis": {"urlSecret": {"name": "redis-url"}},
            "reconcile": {"schedule": "*/7 * * * *", "minAge": 90, "maxAge": 3600},
            "image": {"digest": "sha256:" + "a" * 64, "pullPolicy": "Always"},
            "extraEnv": [{"name": "ERP_DSN", "value": "x"}],
        },
    )
    rendered = render(values)
    cronjob = rendered.one("CronJob")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert cronjob["spec"]["schedule"] == "*/7 * * * *"
    job = cronjob["spec"]["jobTemplate"]["spec"]["template"]
    gateway_pod = rendered.gateway_pod()
    assert job["spec"]["restartPolicy"] == "Never"
    for key in ("serviceAccountName", "automountServiceAccountToken", "securityContext"):
        assert job["spec"][key] == gateway_pod["spec"][key], key
    reconcile, serve = container(job), container(gateway_pod)
    for key in ("image", "imagePullPolicy", "securityContext", "env", "volumeMounts", "workingDir"):
        assert reconcile[key] == serve[key], key
    assert reconcile["args"] == [
        "reconcile", "--config", CONFIG_PATH, "--min-age", "90", "--max-age", "3600",
    ]  # fmt: skip
    shared = ("config", "secrets", "redis-url", "tmp")
    assert {name: volumes(job)[name] for name in shared} == {
        name: volumes(gateway_pod)[name] for name in shared
    }
    assert reconcile["resources"]["limits"]["cpu"]
    assert len(cronjob["metadata"]["name"]) <= 52


def test_long_release_names_keep_the_cronjob_name_valid() -> None:
    rendered = render(merged(MINIMAL, REDIS, {"fullnameOverride": "x" * 63}))
    assert len(rendered.one("CronJob")["metadata"]["name"]) <= 52
    assert len(rendered.one("Pod")["metadata"]["name"]) <= 63


# --- selectors, security, network ---------------------------------------------------------------


def test_only_gateway_pods_receive_traffic(ci_renders: dict[str, Rendered]) -> None:
    rendered = ci_renders["everything-values.yaml"]
    pods = dict(rendered.pod_templates())
    assert set(pods) == {"Deployment", "CronJob", "Pod"}
    service = rendered.one("Service")["spec"]["selector"]
    budget = rendered.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    workload = rendered.workload()["spec"]["selector"]["matchLabels"]
    for selector in (service, budget, workload):
        assert matches(selector, pods["Deployment"]["metadata"]["labels"])
        assert not matches(selector, pods["CronJob"]["metadata"]["labels"])
        assert not matches(selector, pods["Pod"]["metadata"]["labels"])
    # The NetworkPolicy covers every pod of the release, and lets the test pod in.
    policy = rendered.one("NetworkPolicy")["spec"]
    for pod in pods.values():
        assert matches(policy["podSelector"]["matchLabels"], pod["metadata"]["labels"])
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert {"podSelector": policy["podSelector"]} in rule["from"]


def test_every_pod_runs_with_the_same_security(ci_renders: dict[str, Rendered]) -> None:
    values_security = {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    for name, rendered in ci_renders.items():
        for kind, pod in rendered.pod_templates():
            spec = pod["spec"]
            assert spec["automountServiceAccountToken"] is False, (name, kind)
            assert spec["securityContext"]["runAsNonRoot"] is True, (name, kind)
            assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            assert spec["securityContext"]["fsGroup"] == 10001
            assert container(pod)["securityContext"] == values_security, (name, kind)
            assert container(pod)["image"] == container(rendered.gateway_pod())["image"]
            assert container(pod)["resources"]["limits"]["memory"], (name, kind)


def test_probes_and_shutdown(ci_renders: dict[str, Rendered]) -> None:
    pod = ci_renders["production-values.yaml"].gateway_pod()
    serve = container(pod)
    assert serve["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert serve["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert serve["startupProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    service_port = ci_renders["production-values.yaml"].one("Service")["spec"]["ports"][0]
    assert service_port["targetPort"] == "http"
    # The grace period covers the preStop sleep plus uvicorn's own graceful shutdown.
    sources = Path(gateway.__file__).parent.rglob("*.py")
    graceful = {
        int(found)
        for source in sources
        for found in re.findall(r"timeout_graceful_shutdown=(\d+)", source.read_text("utf-8"))
    }
    assert len(graceful) == 1
    sleep = int(serve["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["spec"]["terminationGracePeriodSeconds"] > sleep + graceful.pop()


def test_ingress_routes_only_dokus_paths(ci_renders: dict[str, Rendered]) -> None:
    rendered = ci_renders["everything-values.yaml"]
    ingress = rendered.one("Ingress")["spec"]
    assert [rule["host"] for rule in ingress["rules"]] == [
        "doku-gateway.example.com",
        "doku-gateway-backup.example.com",
    ]
    for rule in ingress["rules"]:
        paths = [(p["path"], p["pathType"]) for p in rule["http"]["paths"]]
        assert paths == [
            ("/doku/v1.0/access-token/b2b", "Exact"),
            ("/doku/v1.1/transfer-va/inquiry", "Exact"),
            ("/doku/v1.0/transfer-va/payment", "Exact"),
        ]


def test_demo_mode_needs_no_credentials() -> None:
    rendered = render({"demo": {"enabled": True}})
    assert {"Secret", "ConfigMap", "PersistentVolumeClaim"}.isdisjoint(rendered.kinds())
    assert "DEMO MODE" in rendered.notes
    assert container(rendered.gateway_pod())["args"][:2] == ["serve", "--demo"]


def test_every_config_section_reaches_the_gateway(keys: Keys, tmp_path: Path) -> None:
    """A non-default value in each [section] of values.config arrives in the gateway's
    Settings, so the chart's TOML writer knows every section."""
    changed: dict[str, dict[str, Any]] = {
        "paths": {"inquiry": "/v1.0/transfer-va/inquiry"},
        "http": {"body_timeout": 4},
        "security": {"timestamp_skew": 120},
        "inquiry": {"open_amount_value": "0"},
        "cache": {"prefix": "acme:"},
        "client": {"channel_id": "H2H2"},
        "payment": {"max_attempts": 3},
    }
    rendered = render(merged(MINIMAL, {"doku": {"clientId": keys.client_id}, "config": changed}))
    secrets = mount(tmp_path / "secrets", secret_files(keys))
    settings = load_config(rendered.config_toml(), {SECRETS_DIR: secrets})
    for section, table in changed.items():
        for key, value in table.items():
            assert getattr(getattr(settings, section), key) == value, f"{section}.{key}"
    assert set(changed) == set(gateway_sections())
    top = {"log_level", "log_format", "doku", "merchant"}
    written = set(tomllib.loads(rendered.config_toml())) - top
    assert written == {*changed, "resolvers"}


def test_config_and_secrets_are_mounted_where_the_config_points() -> None:
    rendered = render(MINIMAL)
    mounts = {m["name"]: m for m in container(rendered.gateway_pod())["volumeMounts"]}
    assert mounts["config"] == {
        "name": "config", "mountPath": CONFIG_PATH, "subPath": "config.toml", "readOnly": True,
    }  # fmt: skip
    assert mounts["secrets"] == {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True}
    assert mounts["data"]["mountPath"] == DATA_DIR and mounts["tmp"]["mountPath"] == "/tmp"
    config = volumes(rendered.gateway_pod())["config"]["configMap"]["name"]
    assert config == rendered.one("ConfigMap")["metadata"]["name"]
    assert container(rendered.gateway_pod())["workingDir"] == DATA_DIR
