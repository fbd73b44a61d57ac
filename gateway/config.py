"""Settings: one frozen object, built and validated once at start (``load_settings``).

Sources, later wins: built-in defaults, a TOML file, ``DOKU_GATEWAY_<SECTION>_<KEY>`` environment
variables for every scalar (``DOKU_GATEWAY_HTTP_PORT=9000``; ``DOKU_GATEWAY_REDIS_URL`` is a
short alias of ``cache.url``). Secrets and keys may be written inline or as ``env:NAME`` /
``file:PATH`` references. Any problem raises :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric import rsa

from .exceptions import ConfigError
from .snap.keys import load_private_key, load_public_key

__all__ = [
    "CacheSettings",
    "ClientSettings",
    "Credentials",
    "HttpSettings",
    "InquirySettings",
    "PathSettings",
    "PaymentSettings",
    "ResolverSettings",
    "SecuritySettings",
    "Settings",
    "load_settings",
    "resolve_reference",
    "settings_from_mapping",
]

ENV_PREFIX = "DOKU_GATEWAY_"


@dataclass(frozen=True, slots=True)
class PathSettings:
    """The request paths DOKU calls; also the paths in the string-to-sign."""

    token: str = "/v1.0/access-token/b2b"
    inquiry: str = "/v1.1/transfer-va/inquiry"
    payment: str = "/v1.0/transfer-va/payment"


@dataclass(frozen=True, slots=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 65_536
    #: Seconds a client may take to send its whole body before it gets ``4002400``.
    body_timeout: float = 10.0
    access_log: bool = False
    #: Read X-Forwarded-For/-Proto from ``forwarded_allow_ips`` (uvicorn's proxy headers).
    #: Off by default: the gateway uses no client address, and it saves a layer per request.
    proxy_headers: bool = False
    forwarded_allow_ips: str = "127.0.0.1"
    #: Prefix a reverse proxy strips before forwarding; signatures cover the path DOKU called.
    path_prefix: str = ""


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    #: Allowed X-TIMESTAMP skew in seconds (UNCONFIRMED by DOKU; spec §4.3 recommends 300).
    timestamp_skew: float = 300.0
    #: ``enforce`` answers a bad X-SIGNATURE with 4012400; ``log-only`` logs it and goes on
    #: (for UAT while DOKU's construction is unconfirmed, spec §5.2).
    signature_mode: Literal["enforce", "log-only"] = "enforce"
    token_lifetime: int = 900
    token_leeway: float = 60.0
    token_issuer: str = "doku-gateway"
    #: Also accept JWTs issued by DOKU and verified with DOKU's key (spec §19 Q3; UNCONFIRMED).
    accept_doku_tokens: bool = False
    #: ``expiresIn`` in the token answer: integer like DOKU's Python SDK, or string like BI/Java.
    expires_in_type: Literal["int", "string"] = "int"
    #: Require virtualAccountNo == partnerServiceId + customerNo (spaces removed), spec §11.
    check_va_composition: bool = True
    #: Log the likely cause of each X-SIGNATURE that does not verify (or X-TIMESTAMP outside the
    #: window), found by trying the known sender mistakes (gateway.snap.diagnostics). For sandbox
    #: and UAT: a failing request then costs a few hundred HMACs.
    signature_diagnostics: bool = False


@dataclass(frozen=True, slots=True)
class InquirySettings:
    #: Seconds a resolver may take; banks give the whole inquiry about 8 s end to end.
    resolver_timeout: float = 3.0
    #: ``totalAmount.value`` of an open bill: "0.00" (matches DOKU's regex) or "0" (seed doc).
    open_amount_value: Literal["0.00", "0"] = "0.00"


#: ``cache.url`` schemes: in-process, then the Redis deployments ``gateway._redis.connect`` knows.
CACHE_SCHEMES = (
    "memory",
    "redis",
    "rediss",
    "unix",
    "redis+sentinel",
    "redis+cluster",
    "rediss+cluster",
)


def is_memory_url(url: str) -> bool:
    """Whether ``cache.url`` names the in-process backend (``memory://``)."""
    return url.split("://", 1)[0] == "memory"


@dataclass(frozen=True, slots=True)
class CacheSettings:
    #: ``memory://`` (in-process) or a Redis URL.
    url: str = "memory://"
    prefix: str = "doku-gateway:"
    max_entries: int = 100_000
    #: Upper bound for caching a bill, whatever the resolver hints.
    bill_ttl: float = 30.0
    not_found_ttl: float = 5.0
    #: Paid and expired answers change rarely.
    final_ttl: float = 300.0
    #: Margin past the end of the WIB day that X-EXTERNAL-IDs are remembered.
    replay_margin: float = 3600.0
    #: In-process replay guard (no Redis): X-EXTERNAL-IDs kept at most, each with its answer
    #: (about 1 KiB). Past this, the oldest of the day are forgotten; size it for a day's
    #: traffic, or use Redis.
    replay_max_entries: int = 500_000
    #: Redis: connections per process; callers wait up to ``redis_pool_timeout`` for one.
    redis_max_connections: int = 64
    redis_pool_timeout: float = 1.0
    #: Redis: per-command and connect timeouts, seconds.
    redis_command_timeout: float = 0.25
    redis_connect_timeout: float = 0.5
    #: Redis: after a failure, answer from memory and retry Redis after this many seconds.
    redis_retry_interval: float = 1.0


@dataclass(frozen=True, slots=True)
class PaymentSettings:
    """Payment notifications: the journal and the delivery to resolvers' ``on_payment`` hooks."""

    #: Where accepted notifications are recorded before the ack: ``file`` (fsync'd JSON lines
    #: in ``journal_dir``, one process), ``redis`` (Redis Streams on ``cache.url``), or
    #: ``auto`` (redis when cache.url is Redis, else file).
    journal: Literal["auto", "file", "redis"] = "auto"
    journal_dir: str = "./doku-gateway-data"
    #: ``async``: ack once journaled, deliver in the background (DOKU retries a failed
    #: notification only after 30 min). ``sync``: ack only after the hook returned.
    delivery: Literal["async", "sync"] = "async"
    hook_timeout: float = 10.0
    max_attempts: int = 10
    backoff_initial: float = 0.5
    backoff_max: float = 60.0
    #: Redis journal: streams (delivery is ordered per stream, a VA always maps to one).
    shards: int = 4
    lease_ttl: float = 15.0
    #: Redis journal: replicas that must have the entry before the ack (Redis WAIT); 0 = none.
    wait_replicas: int = 0
    #: Code for a bad token on the notification: BI's ``4012501`` or DOKU SDK's ``4012701``
    #: (UNCONFIRMED which DOKU expects, spec §8.3).
    invalid_token_code: Literal["4012501", "4012701"] = "4012501"


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """The merchant's calls to DOKU's API (check status, VA management)."""

    #: ``https://api-sandbox.doku.com`` (sandbox) or ``https://api.doku.com`` (production).
    base_url: str = "https://api-sandbox.doku.com"
    timeout: float = 10.0
    connect_timeout: float = 5.0
    #: Retries after a connection failure or a 5xx, for calls that are safe to repeat.
    retries: int = 2
    channel_id: str = "H2H"


@dataclass(frozen=True, slots=True)
class ResolverSettings:
    """One ``[[resolvers]]`` table: which plugin, for which partnerServiceIds, with what options."""

    name: str
    use: str
    partner_service_ids: tuple[str, ...] = ()
    default: bool = False
    timeout: float | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class Credentials:
    """DOKU-issued identity and the keys of both sides, parsed once."""

    client_id: str
    client_secret: str = field(repr=False)
    doku_public_key: rsa.RSAPublicKey = field(repr=False)
    merchant_private_key: rsa.RSAPrivateKey = field(repr=False)
    merchant_public_key: rsa.RSAPublicKey = field(repr=False)


@dataclass(frozen=True, slots=True)
class Settings:
    credentials: Credentials
    resolvers: tuple[ResolverSettings, ...]
    paths: PathSettings = PathSettings()
    http: HttpSettings = HttpSettings()
    security: SecuritySettings = SecuritySettings()
    inquiry: InquirySettings = InquirySettings()
    cache: CacheSettings = CacheSettings()
    client: ClientSettings = ClientSettings()
    payment: PaymentSettings = PaymentSettings()
    log_level: str = "INFO"
    demo: bool = False

    @property
    def journal_on_redis(self) -> bool:
        """Whether the payment journal (and the inquiry ledger) live in Redis."""
        journal = self.payment.journal
        return journal == "redis" or (journal == "auto" and not is_memory_url(self.cache.url))

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


_SECTIONS: dict[str, type[Any]] = {
    "paths": PathSettings,
    "http": HttpSettings,
    "security": SecuritySettings,
    "inquiry": InquirySettings,
    "cache": CacheSettings,
    "client": ClientSettings,
    "payment": PaymentSettings,
}
_ALIASES = {"DOKU_GATEWAY_REDIS_URL": ("cache", "url")}
_SECRET_KEYS = {
    "doku": ("client_id", "client_secret", "public_key"),
    "merchant": ("private_key", "private_key_password", "public_key"),
}


def resolve_reference(value: str, key: str, env: Mapping[str, str]) -> str:
    """Expand ``env:NAME`` and ``file:PATH``; anything else is returned as it is."""
    if value.startswith("env:"):
        name = value[4:]
        if name not in env:
            raise ConfigError(key, f"environment variable {name} is not set")
        return env[name]
    if value.startswith("file:"):
        try:
            return Path(value[5:]).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(key, f"cannot read {value[5:]}: {exc.strerror}") from None
    return value


def load_settings(
    path: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None
) -> Settings:
    """Read a TOML file (or none), apply the environment, validate, and parse keys."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError("config", f"cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("config", f"{path} is not valid TOML: {exc}") from None
    return settings_from_mapping(data, os.environ if env is None else env)


def settings_from_mapping(data: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    """Build :class:`Settings` from a TOML-shaped mapping plus environment overrides."""
    known = set(_SECTIONS) | set(_SECRET_KEYS) | {"resolvers", "log_level"}
    for key in data:
        if key not in known:
            raise ConfigError(key, "unknown section")
    tables = {name: dict(_table(data, name)) for name in (*_SECTIONS, *_SECRET_KEYS)}
    for section, keys in _SECRET_KEYS.items():
        for key in keys:
            variable = f"{ENV_PREFIX}{section.upper()}_{key.upper()}"
            if variable in env:
                tables[section][key] = env[variable]
    sections = {
        name: _build_section(cls, name, tables[name], env) for name, cls in _SECTIONS.items()
    }
    log_level = str(env.get(f"{ENV_PREFIX}LOG_LEVEL", data.get("log_level", "INFO"))).upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("log_level", "must be DEBUG, INFO, WARNING or ERROR")
    settings = Settings(
        credentials=_credentials(tables["doku"], tables["merchant"], env),
        resolvers=_resolvers(data.get("resolvers", []), env),
        log_level=log_level,
        **sections,
    )
    _validate(settings)
    return settings


def _table(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(name, "must be a table")
    return table


def _build_section(
    cls: type[Any], section: str, table: Mapping[str, Any], env: Mapping[str, str]
) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in table:
        if key not in names:
            raise ConfigError(f"{section}.{key}", "unknown setting")
    values: dict[str, Any] = {}
    for name in names:
        key = f"{section}.{name}"
        variable = f"{ENV_PREFIX}{section.upper()}_{name.upper()}"
        raw: Any = table.get(name, dataclasses.MISSING)
        from_env = env.get(variable)
        for alias, target in _ALIASES.items():
            if target == (section, name) and alias in env:
                from_env = env[alias]
        if from_env is not None:
            raw = from_env
        if raw is dataclasses.MISSING:
            continue
        values[name] = _coerce(raw, hints[name], key, env)
    return cls(**values)


def _coerce(raw: Any, hint: Any, key: str, env: Mapping[str, str]) -> Any:
    if isinstance(raw, str):
        raw = resolve_reference(raw, key, env)
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if raw not in choices:
            raise ConfigError(key, f"must be one of {', '.join(map(str, choices))}")
        return raw
    if origin in (types.UnionType, typing.Union):
        inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _coerce(raw, inner[0], key, env)
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        lowered = str(raw).strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(key, "must be true or false")
    if hint in (int, float):
        if isinstance(raw, bool):
            raise ConfigError(key, f"must be a number, not {raw!r}")
        try:
            number = hint(raw)
        except (TypeError, ValueError):
            raise ConfigError(key, f"must be a number, not {raw!r}") from None
        if number < 0:
            raise ConfigError(key, "must not be negative")
        return number
    if hint is str:
        if not isinstance(raw, str):
            raise ConfigError(key, "must be a string")
        return raw
    raise ConfigError(key, "unsupported setting type")  # pragma: no cover


def _credentials(
    doku: Mapping[str, Any], merchant: Mapping[str, Any], env: Mapping[str, str]
) -> Credentials:
    def text(section: Mapping[str, Any], name: str, key: str, required: bool = True) -> str | None:
        value = section.get(name)
        if value is None or value == "":
            if required:
                raise ConfigError(key, "is required")
            return None
        if not isinstance(value, str):
            raise ConfigError(key, "must be a string")
        resolved = resolve_reference(value, key, env)
        if required and not resolved.strip():
            raise ConfigError(key, "is empty")
        return resolved

    client_id = text(doku, "client_id", "doku.client_id")
    secret = text(doku, "client_secret", "doku.client_secret")
    assert client_id is not None and secret is not None
    try:
        doku_key = load_public_key(text(doku, "public_key", "doku.public_key") or "")
    except ValueError as exc:
        raise ConfigError("doku.public_key", str(exc)) from None
    password = text(merchant, "private_key_password", "merchant.private_key_password", False)
    try:
        private = load_private_key(
            text(merchant, "private_key", "merchant.private_key") or "", password
        )
    except ValueError as exc:
        raise ConfigError("merchant.private_key", str(exc)) from None
    public_text = text(merchant, "public_key", "merchant.public_key", False)
    try:
        public = load_public_key(public_text) if public_text else private.public_key()
    except ValueError as exc:
        raise ConfigError("merchant.public_key", str(exc)) from None
    if public.public_numbers() != private.public_key().public_numbers():
        raise ConfigError("merchant.public_key", "does not match merchant.private_key")
    # A secret read from a file or a Kubernetes Secret often ends with a newline, which would
    # silently break every HMAC; no DOKU secret has surrounding whitespace.
    return Credentials(client_id.strip(), secret.strip(), doku_key, private, public)


def _resolvers(raw: Any, env: Mapping[str, str]) -> tuple[ResolverSettings, ...]:
    if not isinstance(raw, list):
        raise ConfigError("resolvers", "must be an array of tables ([[resolvers]])")
    result: list[ResolverSettings] = []
    for index, table in enumerate(raw):
        key = f"resolvers[{index}]"
        if not isinstance(table, dict):
            raise ConfigError(key, "must be a table")
        unknown = set(table) - {
            "name",
            "use",
            "partner_service_ids",
            "default",
            "timeout",
            "options",
        }
        if unknown:
            raise ConfigError(f"{key}.{sorted(unknown)[0]}", "unknown setting")
        use = table.get("use")
        if not isinstance(use, str) or not use:
            raise ConfigError(f"{key}.use", "is required (an entry point name or module:factory)")
        ids = table.get("partner_service_ids", [])
        if not isinstance(ids, list) or not all(
            isinstance(i, str) and i.strip().isdigit() for i in ids
        ):
            raise ConfigError(f"{key}.partner_service_ids", "must be a list of digit strings")
        timeout = table.get("timeout")
        if timeout is not None:
            timeout = _coerce(timeout, float, f"{key}.timeout", env)
            if timeout <= 0:
                raise ConfigError(f"{key}.timeout", "must be positive")
        options = table.get("options", {})
        if not isinstance(options, dict):
            raise ConfigError(f"{key}.options", "must be a table")
        result.append(
            ResolverSettings(
                name=str(table.get("name", use)),
                use=use,
                partner_service_ids=tuple(i.strip() for i in ids),
                default=_coerce(table.get("default", False), bool, f"{key}.default", env),
                timeout=timeout,
                options=MappingProxyType(_expand(options, f"{key}.options", env)),
            )
        )
    return tuple(result)


def _expand(value: Any, key: str, env: Mapping[str, str]) -> Any:
    """Resolve ``env:``/``file:`` references inside a resolver's options, so a plugin's secrets
    (an API key in a header, a DSN) need not be written into the config file."""
    if isinstance(value, str):
        return resolve_reference(value, key, env)
    if isinstance(value, dict):
        return {k: _expand(v, f"{key}.{k}", env) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{key}[{i}]", env) for i, v in enumerate(value)]
    return value


def _validate(settings: Settings) -> None:
    if not settings.resolvers:
        raise ConfigError("resolvers", "configure at least one [[resolvers]] table")
    defaults = [r for r in settings.resolvers if r.default]
    if len(defaults) > 1:
        raise ConfigError("resolvers", "only one resolver may be the default")
    names = [r.name for r in settings.resolvers]
    if len(set(names)) != len(names):
        raise ConfigError("resolvers", "resolver names must be unique")
    seen: dict[str, str] = {}
    for resolver in settings.resolvers:
        for prefix in resolver.partner_service_ids:
            if prefix in seen:
                raise ConfigError("resolvers", f"partnerServiceId {prefix} is routed twice")
            seen[prefix] = resolver.name
    for name in ("token", "inquiry", "payment"):
        value = getattr(settings.paths, name)
        if not value.startswith("/"):
            raise ConfigError(f"paths.{name}", "must start with /")
    if settings.http.port > 65535:
        raise ConfigError("http.port", "must be at most 65535")
    if settings.http.max_body_bytes < 1024:
        raise ConfigError("http.max_body_bytes", "must be at least 1024")
    if settings.security.token_lifetime < 60:
        raise ConfigError("security.token_lifetime", "must be at least 60 seconds")
    if settings.payment.shards < 1 or settings.payment.max_attempts < 1:
        raise ConfigError("payment.shards", "payment.shards and payment.max_attempts must be >= 1")
    if settings.payment.journal == "redis" and is_memory_url(settings.cache.url):
        raise ConfigError("payment.journal", "redis journal needs a Redis cache.url")
    if not settings.client.base_url.startswith(("https://", "http://")):
        raise ConfigError("client.base_url", "must be an http(s) URL")
    if settings.inquiry.resolver_timeout <= 0:
        raise ConfigError("inquiry.resolver_timeout", "must be positive")
    scheme = settings.cache.url.split("://", 1)[0]
    if scheme not in CACHE_SCHEMES:
        raise ConfigError("cache.url", f"scheme must be one of {', '.join(CACHE_SCHEMES)}")
