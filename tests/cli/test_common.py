"""What every command shares: one-line failures on unreadable files, and which values the logs
must never show."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.cli._common import log_secrets
from gateway.snap.keys import public_key_pem

from ..support import Keys, make_settings


@pytest.mark.parametrize(
    "args",
    [
        ["sign", "--secret", "s3cret-value", "--body", "/nonexistent/body.json"],
        ["sign", "--asymmetric", "--client-id", "c", "--private-key", "/nonexistent/key.pem"],
    ],
)
def test_sign_names_an_unreadable_file_in_one_line(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("doku-gateway: cannot read") and "/nonexistent/" in err
    assert len(err.strip().splitlines()) == 1


def test_sign_refuses_a_file_that_is_not_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "key.pem").write_text("not a key")
    args = ["sign", "--asymmetric", "--client-id", "c", "--private-key", str(tmp_path / "key.pem")]
    assert main(args) == 2
    assert "cannot read the private key" in capsys.readouterr().err


def test_log_secrets_cover_the_next_secret_and_env_values(keys: Keys) -> None:
    settings = make_settings(
        keys,
        {"PASSWORD_OF_THE_DSN": "env-held-value"},
        doku={
            "client_id": keys.client_id,
            "client_secret": keys.client_secret,
            "client_secret_next": "inline-next-secret",
            "public_key": public_key_pem(keys.doku.public_key()).decode(),
        },
        resolvers=[
            {
                "name": "demo",
                "use": "gateway.resolvers.demo:DemoResolver",
                "default": True,
                "options": {"dsn": "env:PASSWORD_OF_THE_DSN"},
            }
        ],
    )
    secrets = log_secrets(settings)
    for value in (keys.client_secret, "inline-next-secret", "env-held-value"):
        assert value in secrets
    assert "" not in secrets
