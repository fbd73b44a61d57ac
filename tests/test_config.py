from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_settings, settings_from_mapping
from gateway.exceptions import ConfigError
from gateway.snap.keys import private_key_pem, public_key_pem

from .support import Keys, make_settings


def base(keys: Keys) -> dict[str, Any]:
    return {
        "doku": {
            "client_id": keys.client_id,
            "client_secret": keys.client_secret,
            "public_key": public_key_pem(keys.doku.public_key()).decode(),
        },
        "merchant": {"private_key": private_key_pem(keys.merchant).decode()},
        "resolvers": [{"use": "gateway.resolvers.demo:DemoResolver"}],
    }


def test_defaults_follow_the_spec(keys: Keys) -> None:
    settings = make_settings(keys)
    assert settings.paths.token == "/v1.0/access-token/b2b"
    assert settings.paths.inquiry == "/v1.1/transfer-va/inquiry"
    assert settings.paths.payment == "/v1.0/transfer-va/payment"
    assert settings.security.timestamp_skew == 300
    assert settings.security.signature_mode == "enforce"
    assert settings.security.token_lifetime == 900
    assert settings.security.accept_doku_tokens is False
    assert settings.inquiry.resolver_timeout == 3.0
    assert settings.inquiry.open_amount_value == "0.00"
    assert settings.http.max_body_bytes == 65_536
    assert settings.cache.url == "memory://"


def test_toml_file_with_references(tmp_path: Path, keys: Keys) -> None:
    (tmp_path / "doku.pem").write_bytes(public_key_pem(keys.doku.public_key()))
    (tmp_path / "merchant.pem").write_bytes(private_key_pem(keys.merchant))
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
[doku]
client_id = "{keys.client_id}"
client_secret = "env:MY_SECRET"
public_key = "file:{tmp_path / "doku.pem"}"

[merchant]
private_key = "file:{tmp_path / "merchant.pem"}"

[http]
port = 9000

[security]
timestamp_skew = 120

[[resolvers]]
name = "main"
use = "gateway.resolvers.demo:DemoResolver"
partner_service_ids = ["   88899", "12345"]
timeout = 1.5
options = {{ amount = "10000.00" }}
""")
    settings = load_settings(config, {"MY_SECRET": "SK-from-env", "DOKU_GATEWAY_HTTP_PORT": "9100"})
    assert settings.credentials.client_secret == "SK-from-env"
    assert settings.http.port == 9100
    assert settings.security.timestamp_skew == 120
    resolver = settings.resolvers[0]
    assert resolver.partner_service_ids == ("88899", "12345")
    assert resolver.timeout == 1.5
    assert resolver.options["amount"] == "10000.00"


def test_every_scalar_has_an_environment_override(keys: Keys) -> None:
    env = {
        "DOKU_GATEWAY_SECURITY_SIGNATURE_MODE": "log-only",
        "DOKU_GATEWAY_SECURITY_ACCEPT_DOKU_TOKENS": "true",
        "DOKU_GATEWAY_INQUIRY_OPEN_AMOUNT_VALUE": "0",
        "DOKU_GATEWAY_PATHS_INQUIRY": "/snap/v1.1/transfer-va/inquiry",
        "DOKU_GATEWAY_REDIS_URL": "redis://127.0.0.1:6390/0",
        "DOKU_GATEWAY_CACHE_BILL_TTL": "12.5",
        "DOKU_GATEWAY_DOKU_CLIENT_ID": "BRN-ENV",
        "DOKU_GATEWAY_LOG_LEVEL": "debug",
    }
    settings = settings_from_mapping(base(keys), env)
    assert settings.security.signature_mode == "log-only"
    assert settings.security.accept_doku_tokens is True
    assert settings.inquiry.open_amount_value == "0"
    assert settings.paths.inquiry == "/snap/v1.1/transfer-va/inquiry"
    assert settings.cache.url == "redis://127.0.0.1:6390/0"
    assert settings.cache.bill_ttl == 12.5
    assert settings.credentials.client_id == "BRN-ENV"
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("change", "env", "key"),
    [
        ({"http": {"port": "eighty"}}, {}, "http.port"),
        ({"http": {"prot": 1}}, {}, "http.prot"),
        ({"security": {"signature_mode": "off"}}, {}, "security.signature_mode"),
        ({"security": {"token_lifetime": 10}}, {}, "security.token_lifetime"),
        ({}, {"DOKU_GATEWAY_HTTP_ACCESS_LOG": "maybe"}, "http.access_log"),
        ({"inquiry": {"open_amount_value": "0.0"}}, {}, "inquiry.open_amount_value"),
        ({"paths": {"inquiry": "no-slash"}}, {}, "paths.inquiry"),
        ({"cache": {"url": "memcached://x"}}, {}, "cache.url"),
        (
            {"doku": {"client_id": "x", "client_secret": "env:NOPE", "public_key": "k"}},
            {},
            "doku.client_secret",
        ),
        ({"resolvers": []}, {}, "resolvers"),
        ({"resolvers": [{"name": "a"}]}, {}, "resolvers[0].use"),
        (
            {"resolvers": [{"use": "a:b", "partner_service_ids": ["abc"]}]},
            {},
            "resolvers[0].partner_service_ids",
        ),
        (
            {
                "resolvers": [
                    {"use": "a:b", "default": True, "name": "a"},
                    {"use": "a:b", "default": True, "name": "b"},
                ]
            },
            {},
            "resolvers",
        ),
        ({"bogus": {}}, {}, "bogus"),
    ],
)
def test_bad_config_names_the_key(
    keys: Keys, change: dict[str, Any], env: dict[str, str], key: str
) -> None:
    data = base(keys)
    for section, value in change.items():
        if isinstance(value, dict) and isinstance(data.get(section), dict):
            data[section] = {**data[section], **value}
        else:
            data[section] = value
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(data, env)
    assert info.value.key == key


def test_bad_keys_are_reported(keys: Keys) -> None:
    data = base(keys)
    data["merchant"] = {
        "private_key": "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----"
    }
    with pytest.raises(ConfigError, match=r"merchant\.private_key"):
        settings_from_mapping(data, {})
    data = base(keys)
    data["merchant"]["public_key"] = public_key_pem(keys.doku.public_key()).decode()
    with pytest.raises(ConfigError, match="does not match"):
        settings_from_mapping(data, {})


def test_secret_is_not_in_repr(keys: Keys) -> None:
    settings = make_settings(keys)
    assert keys.client_secret not in repr(settings)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.toml", {})
    broken = tmp_path / "broken.toml"
    broken.write_text("[http\nport = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken, {})


def test_resolver_options_may_reference_secrets(keys: Keys, tmp_path: Path) -> None:
    (tmp_path / "dsn").write_text("postgres://billing")
    data = base(keys)
    data["resolvers"] = [
        {
            "use": "gateway.resolvers.demo:DemoResolver",
            "options": {
                "headers": {"Authorization": "env:API_KEY"},
                "dsn": f"file:{tmp_path / 'dsn'}",
                "hosts": ["env:HOST"],
                "retries": 3,
            },
        }
    ]
    settings = settings_from_mapping(data, {"API_KEY": "Bearer k", "HOST": "h1"})
    options = settings.resolvers[0].options
    assert options == {
        "headers": {"Authorization": "Bearer k"},
        "dsn": "postgres://billing",
        "hosts": ["h1"],
        "retries": 3,
    }
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(data, {"HOST": "h1"})
    assert info.value.key == "resolvers[0].options.headers.Authorization"


def _problems(data: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(data, env or {})
    assert info.value.key == info.value.problems[0][0]
    return dict(info.value.problems)


def test_every_problem_is_reported_at_once(keys: Keys) -> None:
    data = base(keys)
    data["doku"]["clinet_secret"] = data["doku"].pop("client_secret")
    data["payment"] = {"max_attempts": 10.5}
    data["resolvers"][0]["default"] = "yes"
    data["client"] = {"base_url": "http://api.doku.com"}
    data["cache"] = {"url": "redis://localhost:63799x/0"}
    data["htp"] = {"port": 1}
    problems = _problems(data)
    assert problems["doku.clinet_secret"] == "unknown setting (did you mean client_secret?)"
    assert problems["doku.client_secret"] == "is required"
    assert problems["payment.max_attempts"] == "must be an integer, not 10.5"
    assert problems["resolvers[0].default"] == "must be true or false, not 'yes'"
    assert "must be https" in problems["client.base_url"]
    assert "'63799x'" in problems["cache.url"]
    assert problems["htp"] == "unknown section (did you mean http?)"


def test_unknown_setting_in_a_section_suggests_the_close_match(keys: Keys) -> None:
    data = base(keys)
    data["security"] = {"timestamp_skw": 10}
    assert _problems(data) == {
        "security.timestamp_skw": "unknown setting (did you mean timestamp_skew?)"
    }


@pytest.mark.parametrize(
    ("section", "value", "message"),
    [
        ({"payment": {"max_attempts": "3"}}, {}, "must be an integer, not '3'"),
        ({"http": {"access_log": "yes"}}, {}, "must be true or false, not 'yes'"),
        ({"http": {"access_log": 1}}, {}, "must be true or false, not 1"),
        ({"http": {"port": True}}, {}, "must be an integer, not True"),
    ],
)
def test_wrong_types_are_errors_not_conversions(
    keys: Keys, section: dict[str, Any], value: dict[str, str], message: str
) -> None:
    data = {**base(keys), **section}
    assert list(_problems(data, value).values()) == [message]


def test_environment_text_is_parsed_strictly(keys: Keys) -> None:
    env = {"DOKU_GATEWAY_PAYMENT_MAX_ATTEMPTS": "10.5", "DOKU_GATEWAY_HTTP_ACCESS_LOG": "maybe"}
    problems = _problems(base(keys), env)
    assert problems["payment.max_attempts"] == "must be an integer, not '10.5'"
    assert problems["http.access_log"] == "must be true or false, not 'maybe'"
    good = {"DOKU_GATEWAY_PAYMENT_MAX_ATTEMPTS": "7", "DOKU_GATEWAY_HTTP_ACCESS_LOG": "yes"}
    settings = settings_from_mapping(base(keys), good)
    assert settings.payment.max_attempts == 7
    assert settings.http.access_log is True


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://api.doku.com", True),
        ("http://127.0.0.1:9999", True),
        ("http://localhost:9999", True),
        ("http://api.doku.com", False),
        ("http://api-sandbox.doku.com", False),
        ("ftp://api.doku.com", False),
    ],
)
def test_base_url_must_be_https_off_localhost(keys: Keys, url: str, ok: bool) -> None:
    data = {**base(keys), "client": {"base_url": url}}
    if ok:
        assert settings_from_mapping(data, {}).client.base_url == url
    else:
        assert list(_problems(data)) == ["client.base_url"]


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("redis://localhost:6379/0", True),
        ("redis://:pw@localhost/1", True),
        ("redis+sentinel://a:26379,b:26379/mymaster", True),
        ("redis+cluster://a:7000,b:7001", True),
        ("unix:///run/redis.sock", True),
        ("redis://localhost:63799x/0", False),
        ("redis://localhost:6379/zero", False),
        ("redis://:0", False),
        ("mongodb://x", False),
    ],
)
def test_cache_url_is_parsed_as_the_client_will(keys: Keys, url: str, ok: bool) -> None:
    data = {**base(keys), "cache": {"url": url}}
    if ok:
        assert settings_from_mapping(data, {}).cache.url == url
    else:
        assert list(_problems(data)) == ["cache.url"]


def test_resolvers_are_loaded_when_asked(keys: Keys, tmp_path: Path) -> None:
    data = base(keys)
    data["resolvers"] = [
        {"name": "a", "use": "mybilling:make"},
        {"name": "b", "use": "tests.resolvers.test_loader:CheckedResolver", "options": {}},
    ]
    data["http"] = {"port": 99999}
    settings_from_mapping(data | {"http": {}}, {})  # parsing alone does not import
    problems = _problems_checked(data)
    assert set(problems) == {"http.port", "resolvers[0].use", "resolvers[1].options"}
    assert "cannot import mybilling" in problems["resolvers[0].use"]


def _problems_checked(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(data, {}, check_resolvers=True)
    return dict(info.value.problems)


def test_referenced_values_are_collected_for_redaction(keys: Keys, tmp_path: Path) -> None:
    data = base(keys)
    data["resolvers"][0]["options"] = {"dsn": "env:DSN", "plain": "visible-value"}
    settings = settings_from_mapping(data, {"DSN": "postgres://u:hunter22@db/bills"})
    assert "postgres://u:hunter22@db/bills" in settings.redacted
    assert keys.client_secret in settings.redacted
    assert "visible-value" not in settings.redacted


def test_single_problem_error_is_one_line(keys: Keys) -> None:
    data = {**base(keys), "cache": {"url": "redis://localhost:63799x/0"}}
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(data, {})
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("cache.url: ")


def test_waiting_for_replicas_is_refused_on_a_cluster(keys: Keys) -> None:
    # The cluster client would send WAIT on another connection than the append's.
    with pytest.raises(ConfigError) as caught:
        make_settings(
            keys, cache={"url": "redis+cluster://127.0.0.1:7000"}, payment={"wait_replicas": 1}
        )
    assert caught.value.key == "payment.wait_replicas"
