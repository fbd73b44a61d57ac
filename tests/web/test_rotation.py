"""Rotation without downtime: a "next" client secret and DOKU key, ``file:`` credentials re-read
when Kubernetes swaps a mounted Secret, and warnings for secret files others can read."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.cli.main import main
from gateway.config import Settings
from gateway.doku.simulator import DokuSimulator, inquiry_body
from gateway.metrics import Metrics
from gateway.snap.keys import generate_private_key, private_key_pem, public_key_pem
from gateway.web.app import create_app
from gateway.web.rotation import loose_secret_files

from ..support import Keys, make_settings, poll, running_server, write_config

NEXT_SECRET = "SK-NextSecret-fedcba9876543210"


@pytest.fixture(scope="module")
def spare() -> rsa.RSAPrivateKey:
    """One more RSA key: DOKU's next key, or the merchant's next key."""
    return generate_private_key()


@contextlib.contextmanager
def serve(settings: Settings) -> Iterator[tuple[httpx.Client, Metrics]]:
    metrics = Metrics()
    with (
        running_server(create_app(settings, metrics=metrics)) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        yield client, metrics


def matches(metrics: Metrics, credential: str, key: str) -> float:
    return metrics.key_matches.labels(credential, key).value


def get_token(client: httpx.Client, simulator: DokuSimulator) -> httpx.Response:
    request = simulator.token_request()
    return client.post(request.path, headers=request.headers, content=request.body)


def inquire(client: httpx.Client, simulator: DokuSimulator, token: str) -> str:
    request = simulator.inquiry_request(token, inquiry_body("8889900001234", "   88899"))
    response = client.post(request.path, headers=request.headers, content=request.body)
    return str(response.json()["responseCode"])


def simulator_with(keys: Keys, secret: str | None = None, doku: Any = None) -> DokuSimulator:
    return DokuSimulator(keys.client_id, secret or keys.client_secret, doku or keys.doku)


# The rotation window: both values verify, a metric says which one matched.


def test_next_client_secret_verifies_and_is_counted_as_next(keys: Keys) -> None:
    settings = make_settings(
        keys,
        doku={
            "client_id": keys.client_id,
            "client_secret": keys.client_secret,
            "client_secret_next": NEXT_SECRET,
            "public_key": public_key_pem(keys.doku.public_key()).decode(),
        },
    )
    with serve(settings) as (client, metrics):
        token = get_token(client, simulator_with(keys)).json()["accessToken"]
        assert inquire(client, simulator_with(keys, NEXT_SECRET), token) == "2002400"
        assert inquire(client, simulator_with(keys), token) == "2002400"
        assert inquire(client, simulator_with(keys), token) == "2002400"
        wrong = inquire(client, simulator_with(keys, "SK-neither-of-them-000000"), token)
    assert wrong == "4012400"
    assert matches(metrics, "client_secret", "next") == 1
    assert matches(metrics, "client_secret", "current") == 2


def test_next_doku_key_verifies_token_requests_and_is_counted(
    keys: Keys, spare: rsa.RSAPrivateKey
) -> None:
    settings = make_settings(
        keys,
        doku={
            "client_id": keys.client_id,
            "client_secret": keys.client_secret,
            "public_key": public_key_pem(keys.doku.public_key()).decode(),
            "public_key_next": public_key_pem(spare.public_key()).decode(),
        },
    )
    with serve(settings) as (client, metrics):
        by_next = get_token(client, simulator_with(keys, doku=spare))
        by_current = get_token(client, simulator_with(keys))
        by_other = get_token(client, simulator_with(keys, doku=keys.merchant))
    assert by_next.json()["responseCode"] == "2007300"
    assert by_current.json()["responseCode"] == "2007300"
    assert by_other.json()["responseCode"] == "4017300"
    assert matches(metrics, "doku_public_key", "next") == 1
    assert matches(metrics, "doku_public_key", "current") == 1


def test_without_a_next_value_only_the_current_one_verifies(keys: Keys) -> None:
    with serve(make_settings(keys)) as (client, metrics):
        token = get_token(client, simulator_with(keys)).json()["accessToken"]
        assert inquire(client, simulator_with(keys, NEXT_SECRET), token) == "4012400"
    assert matches(metrics, "client_secret", "next") == 0


# Reloading file: credentials when a Kubernetes Secret volume is updated.


class SecretVolume:
    """A directory laid out as the kubelet mounts a Secret: each file is a symlink through
    ``..data``, itself a symlink to a timestamped directory that an update replaces at once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0
        root.mkdir()

    def path(self, name: str) -> Path:
        return self.root / name

    def publish(self, files: Mapping[str, bytes]) -> None:
        self.generation += 1
        target = self.root / f"..2026_01_01_00_00_{self.generation:02d}.{os.getpid()}"
        target.mkdir()
        for name, data in files.items():
            (target / name).write_bytes(data)
            (target / name).chmod(0o400)
        previous = self.root / "..data"
        old = os.readlink(previous) if previous.is_symlink() else None
        swap = self.root / "..data_tmp"
        os.symlink(target.name, swap)
        os.replace(swap, previous)  # the atomic step
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                os.symlink(f"..data/{name}", link)
        if old is not None:
            shutil.rmtree(self.root / old)


def volume_settings(keys: Keys, volume: SecretVolume, **sections: Any) -> Settings:
    return make_settings(
        keys,
        doku={
            "client_id": keys.client_id,
            "client_secret": f"file:{volume.path('client-secret')}",
            "public_key": f"file:{volume.path('doku.pem')}",
        },
        merchant={"private_key": f"file:{volume.path('merchant.pem')}"},
        security={"key_reload_interval": 0.05},
        **sections,
    )


def secret_files(
    secret: str, doku: rsa.RSAPrivateKey, merchant: rsa.RSAPrivateKey
) -> dict[str, bytes]:
    return {
        # Kubernetes Secrets made with kubectl often end in a newline; it is not the secret's.
        "client-secret": (secret + "\n").encode(),
        "doku.pem": public_key_pem(doku.public_key()),
        "merchant.pem": private_key_pem(merchant),
    }


def test_a_swapped_secret_volume_switches_keys_within_the_poll_interval(
    tmp_path: Path, keys: Keys, spare: rsa.RSAPrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="doku_gateway.rotation")
    volume = SecretVolume(tmp_path / "secret")
    volume.publish(secret_files(keys.client_secret, keys.doku, keys.merchant))
    old, new = simulator_with(keys), simulator_with(keys, NEXT_SECRET, doku=spare)
    with serve(volume_settings(keys, volume)) as (client, _):
        old_token = get_token(client, old).json()["accessToken"]
        assert inquire(client, old, old_token) == "2002400"
        assert get_token(client, new).json()["responseCode"] == "4017300"

        # DOKU's key and the client secret change; the merchant key stays.
        volume.publish(secret_files(NEXT_SECRET, spare, keys.merchant))
        poll(lambda: get_token(client, new).json()["responseCode"] == "2007300", timeout=5)

        new_token = get_token(client, new).json()["accessToken"]
        assert inquire(client, new, new_token) == "2002400"
        assert inquire(client, old, new_token) == "4012400"  # the old secret is refused
        assert get_token(client, old).json()["responseCode"] == "4017300"  # so is DOKU's old key
        # A token issued before the swap was signed with the merchant key, which stayed.
        assert inquire(client, new, old_token) == "2002400"
    reloaded = [r.getMessage() for r in caplog.records if "reloaded" in r.getMessage()]
    assert reloaded == ["reloaded credentials: new doku.client_secret, doku.public_key"]
    assert all(NEXT_SECRET not in r.getMessage() for r in caplog.records)


def test_a_new_merchant_key_signs_new_tokens_and_old_tokens_still_verify(
    tmp_path: Path, keys: Keys, spare: rsa.RSAPrivateKey
) -> None:
    volume = SecretVolume(tmp_path / "secret")
    volume.publish(secret_files(keys.client_secret, keys.doku, keys.merchant))
    doku = simulator_with(keys)

    def signed_by(key: rsa.RSAPrivateKey, token: str) -> bool:
        try:
            jwt.decode(token, key.public_key(), algorithms=["RS256"])
        except jwt.PyJWTError:
            return False
        return True

    with serve(volume_settings(keys, volume)) as (client, _):
        before = get_token(client, doku).json()["accessToken"]
        volume.publish(secret_files(keys.client_secret, keys.doku, spare))
        poll(lambda: signed_by(spare, get_token(client, doku).json()["accessToken"]), timeout=5)
        after = get_token(client, doku).json()["accessToken"]
        assert inquire(client, doku, after) == "2002400"
        # Issued with the replaced key: still good until it expires (the key is retired, not
        # dropped, for the token lifetime plus the leeway).
        assert inquire(client, doku, before) == "2002400"
    assert signed_by(keys.merchant, before)
    assert not signed_by(keys.merchant, after)


def test_an_unusable_update_keeps_the_current_keys_and_says_why(
    tmp_path: Path, keys: Keys, spare: rsa.RSAPrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="doku_gateway.rotation")
    volume = SecretVolume(tmp_path / "secret")
    volume.publish(secret_files(keys.client_secret, keys.doku, keys.merchant))
    doku = simulator_with(keys)
    broken = {**secret_files(NEXT_SECRET, keys.doku, keys.merchant), "doku.pem": b"not a key"}
    with serve(volume_settings(keys, volume)) as (client, _):
        token = get_token(client, doku).json()["accessToken"]
        volume.publish(broken)
        poll(lambda: any("not reloaded" in r.getMessage() for r in caplog.records), timeout=5)
        # Nothing was half applied: the old secret and key still verify, the new secret not.
        assert get_token(client, doku).json()["responseCode"] == "2007300"
        assert inquire(client, doku, token) == "2002400"
        assert inquire(client, simulator_with(keys, NEXT_SECRET), token) == "4012400"
        volume.publish(secret_files(NEXT_SECRET, keys.doku, keys.merchant))
        poll(lambda: inquire(client, simulator_with(keys, NEXT_SECRET), token) == "2002400", 5)
    warning = next(r.getMessage() for r in caplog.records if "not reloaded" in r.getMessage())
    assert "doku.public_key: not a usable public key" in warning
    assert NEXT_SECRET not in warning


# Secret files others can read.


def test_secret_files_readable_by_others_are_reported(tmp_path: Path, keys: Keys) -> None:
    secret = tmp_path / "client-secret"
    secret.write_text(keys.client_secret)
    config = write_config(tmp_path, keys, client_secret=f"file:{secret}")
    (tmp_path / "doku.pem").chmod(0o644)  # a public key: nothing to hide
    (tmp_path / "merchant.pem").chmod(0o600)
    secret.chmod(0o640)
    os.chown(secret, -1, 4242)  # a group the test's process is not in
    settings = make_settings(
        keys,
        doku={
            "client_id": keys.client_id,
            "client_secret": f"file:{secret}",
            "public_key": f"file:{tmp_path / 'doku.pem'}",
        },
        merchant={"private_key": f"file:{tmp_path / 'merchant.pem'}"},
    )
    assert loose_secret_files(settings.credentials) == [
        f"doku.client_secret: {secret} is accessible to others (mode 0640); make it readable "
        "by the gateway's user only (chmod 600; Kubernetes: defaultMode 0440 with the pod's "
        "fsGroup)"
    ]
    os.chown(secret, -1, os.getgid())  # the gateway's own group (Kubernetes' fsGroup)
    assert loose_secret_files(settings.credentials) == []
    os.chown(secret, -1, 4242)
    (tmp_path / "merchant.pem").chmod(0o604)
    assert [m.split(":")[0] for m in loose_secret_files(settings.credentials)] == [
        "doku.client_secret",
        "merchant.private_key",
    ]
    secret.chmod(0o600)
    (tmp_path / "merchant.pem").chmod(0o400)
    assert loose_secret_files(settings.credentials) == []
    assert config.exists()


def test_check_config_warns_about_a_readable_private_key(
    tmp_path: Path, keys: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, keys)
    (tmp_path / "merchant.pem").chmod(0o644)
    assert main(["check-config", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ok: ")
    assert f"warning: merchant.private_key: {tmp_path / 'merchant.pem'} is accessible" in err
    (tmp_path / "merchant.pem").chmod(0o600)
    assert main(["check-config", "--config", str(config)]) == 0
    assert "warning" not in capsys.readouterr().err


def test_the_gateway_warns_at_start_about_a_readable_secret(
    tmp_path: Path, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="doku_gateway.app")
    key = tmp_path / "merchant.pem"
    key.write_bytes(private_key_pem(keys.merchant))
    key.chmod(0o644)
    settings = make_settings(keys, merchant={"private_key": f"file:{key}"})
    with serve(settings):
        pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith(f"merchant.private_key: {key} is accessible") for m in warnings)
