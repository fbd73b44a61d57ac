"""Settings: one frozen object, built and validated once at start (``load_settings``).

Sources, later wins: built-in defaults, a TOML file, ``DOKU_GATEWAY_<SECTION>_<KEY>`` environment
variables for every scalar (``DOKU_GATEWAY_HTTP_PORT=9000``; ``DOKU_GATEWAY_REDIS_URL`` is a
short alias of ``cache.url``). Secrets and keys may be written inline or as ``env:NAME`` /
``file:PATH`` references. Any problem raises :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import os
import tomllib
import types
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

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
    "check_cache_url",
    "load_journal_settings",
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
    #: After SIGTERM, seconds during which ``/readyz`` answers 503 while requests are still
    #: served (the load balancer stops routing here), before in-flight requests are finished
    #: and the process exits. A second SIGTERM or a SIGINT skips the wait.
    shutdown_delay: float = 5.0
    #: A request head (request line and headers) larger than this gets ``431`` and is closed.
    max_header_bytes: int = 16_384
    #: More request headers than this get ``431``.
    max_headers: int = 64
    #: Seconds from connection (or the previous answer) to the end of the request head; a
    #: slower client is cut off (``408``).
    header_timeout: float = 10.0
    #: JSON bodies nested deeper than this get ``4xx01 Invalid Field Format {body}``.
    max_json_depth: int = 32


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
    #: Seconds between checks of ``file:`` keys and secrets for changes on disk (a rotated
    #: Kubernetes Secret); 0 never re-reads them.
    key_reload_interval: float = 10.0


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
    #: Journal retention: the most recently delivered entries kept whole (the history
    #: ``payments list/show`` reads; per shard stream with Redis). The file journal compacts
    #: older delivered entries to their paymentRequestId, kept 3 days so a late duplicate is
    #: still recognised (Redis keeps its id keys 90 days); undelivered entries and dead letters
    #: are always kept. Bounds the journal's memory and file size.
    journal_keep_delivered: int = 1000
    #: ``async``: ack once journaled, deliver in the background (DOKU retries a failed
    #: notification only after 30 min). ``sync``: ack only after the hook returned.
    delivery: Literal["async", "sync"] = "async"
    hook_timeout: float = 10.0
    #: VAs delivered at once (each VA's payments one after the other): the most calls in
    #: flight to the merchant's ``on_payment`` hook. Each delivery waits for its record to be
    #: durable (an fsync, a Redis round trip): at 256 connections 128 fell behind the acks.
    delivery_concurrency: int = 512
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
    #: Rotation window: a second client secret / DOKU public key that also verifies.
    client_secret_next: str | None = field(default=None, repr=False)
    doku_public_key_next: rsa.RSAPublicKey | None = field(default=None, repr=False)
    merchant_private_key_password: str | None = field(default=None, repr=False)
    #: Config key -> path, for each value given as ``file:PATH`` (re-read when it changes).
    files: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


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
    #: ``text`` (one human-readable line) or ``json`` (one object per line, for log shippers).
    log_format: Literal["text", "json"] = "text"
    demo: bool = False
    #: Every value read through ``env:``/``file:``: the log filter redacts these wherever they
    #: would appear.
    redacted: tuple[str, ...] = field(default=(), repr=False)

    @property
    def journal_on_redis(self) -> bool:
        """Whether the payment journal (and the inquiry ledger) live in Redis."""
        return journal_on_redis(self.cache, self.payment)

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
#: Top-level scalar settings: type and allowed values.
_TOP_LEVEL: dict[str, tuple[type[Any], tuple[str, ...]]] = {
    "log_level": (str, ("DEBUG", "INFO", "WARNING", "ERROR")),
    "log_format": (str, ("text", "json")),
}
_SECRET_KEYS = {
    "doku": ("client_id", "client_secret", "public_key", "client_secret_next", "public_key_next"),
    "merchant": ("private_key", "private_key_password", "public_key"),
}


class _Problems:
    """Collects every configuration problem so one :class:`ConfigError` reports them all."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []
        #: Values read through ``env:``/``file:``: the log filter redacts them.
        self.references: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.items.append((key, message))

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Record a :class:`ConfigError` raised inside the block and carry on."""
        try:
            yield
        except ConfigError as exc:
            self.items.extend(exc.problems)

    def unknown(self, key: str, known: Iterable[str], what: str = "unknown setting") -> None:
        name = key.rpartition(".")[2]
        close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
        self.add(key, f"{what} (did you mean {close[0]}?)" if close else what)

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError.collected(self.items)


def resolve_reference(
    value: str, key: str, env: Mapping[str, str], references: list[str] | None = None
) -> str:
    """Expand ``env:NAME`` and ``file:PATH``; anything else is returned as it is.

    Each expanded value is appended to ``references`` (when given), for the log filter."""
    if value.startswith("env:"):
        name = value[4:]
        if name not in env:
            raise ConfigError(key, f"environment variable {name} is not set")
        resolved = env[name]
    elif value.startswith("file:"):
        try:
            resolved = Path(value[5:]).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(key, f"cannot read {value[5:]}: {exc.strerror}") from None
    else:
        return value
    if references is not None:
        references.extend({resolved, resolved.strip()})
    return resolved


def is_reference(value: Any) -> bool:
    """Whether ``value`` is an ``env:``/``file:`` reference."""
    return isinstance(value, str) and value.startswith(("env:", "file:"))


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The TOML document at ``path``; :class:`ConfigError` (key ``config``) when unreadable."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{path} is not valid TOML: {exc}") from None


def load_settings(
    path: str | os.PathLike[str] | None,
    env: Mapping[str, str] | None = None,
    *,
    check_resolvers: bool = False,
) -> Settings:
    """Read a TOML file (or none), apply the environment, validate, and parse keys.

    ``check_resolvers`` also imports every resolver plugin and runs its factory's optional
    ``check(options)`` hook, so every problem ``serve`` would meet is reported at once."""
    data = read_config_file(path) if path is not None else {}
    return settings_from_mapping(
        data, os.environ if env is None else env, check_resolvers=check_resolvers
    )


def load_journal_settings(
    path: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None
) -> tuple[CacheSettings, PaymentSettings]:
    """Only what the payment journal needs (``cache`` and ``payment``): for the ``payments``
    commands, which must work without the DOKU credentials or any resolver's secrets."""
    data = read_config_file(path) if path is not None else {}
    env = os.environ if env is None else env
    problems = _Problems()
    cache = _build_section(CacheSettings, "cache", _table(data, "cache", problems), env, problems)
    payment = _build_section(
        PaymentSettings, "payment", _table(data, "payment", problems), env, problems
    )
    problems.raise_if_any()
    return cache, payment


def journal_on_redis(cache: CacheSettings, payment: PaymentSettings) -> bool:
    """Whether the payment journal (and the inquiry ledger) live in Redis."""
    return payment.journal == "redis" or (
        payment.journal == "auto" and not is_memory_url(cache.url)
    )


def settings_from_mapping(
    data: Mapping[str, Any], env: Mapping[str, str], *, check_resolvers: bool = False
) -> Settings:
    """Build :class:`Settings` from a TOML-shaped mapping plus environment overrides.

    Every problem is collected; one :class:`ConfigError` then names them all."""
    problems = _Problems()
    known = (*_SECTIONS, *_SECRET_KEYS, "resolvers", *_TOP_LEVEL)
    for key in data:
        if key not in known:
            problems.unknown(key, known, "unknown section")
    tables = {name: dict(_table(data, name, problems)) for name in (*_SECTIONS, *_SECRET_KEYS)}
    for section, keys in _SECRET_KEYS.items():
        for key in list(tables[section]):
            if key not in keys:
                problems.unknown(f"{section}.{key}", keys)
        for key in keys:
            variable = f"{ENV_PREFIX}{section.upper()}_{key.upper()}"
            if variable in env:
                tables[section][key] = env[variable]
    sections = {
        name: _build_section(cls, name, tables[name], env, problems)
        for name, cls in _SECTIONS.items()
    }
    top: dict[str, Any] = {}
    for name, (hint, choices) in _TOP_LEVEL.items():
        raw = env.get(f"{ENV_PREFIX}{name.upper()}", data.get(name))
        if raw is None:
            continue
        value = str(raw).upper() if name == "log_level" else str(raw).lower()
        if hint is not str or value not in choices:
            problems.add(name, f"must be one of {', '.join(choices)}")
        else:
            top[name] = value
    credentials = _credentials(tables["doku"], tables["merchant"], env, problems)
    resolvers = _resolvers(data.get("resolvers", []), env, problems)
    _validate(sections, resolvers, problems)
    if check_resolvers:
        from .resolvers.loader import check_resolvers as check

        problems.items.extend(check(resolvers))
    problems.raise_if_any()
    assert credentials is not None
    return Settings(
        credentials=credentials,
        resolvers=resolvers,
        redacted=tuple(sorted({s for s in problems.references if s.strip()})),
        **top,
        **sections,
    )


def _table(data: Mapping[str, Any], name: str, problems: _Problems) -> Mapping[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        problems.add(name, "must be a table")
        return {}
    return table


def _build_section(
    cls: type[Any],
    section: str,
    table: Mapping[str, Any],
    env: Mapping[str, str],
    problems: _Problems,
) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in table:
        if key not in names:
            problems.unknown(f"{section}.{key}", names)
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
        with problems.guard():
            values[name] = _coerce(
                raw, hints[name], key, env, textual=from_env is not None, problems=problems
            )
    return cls(**values)


def _coerce(
    raw: Any,
    hint: Any,
    key: str,
    env: Mapping[str, str],
    *,
    textual: bool = False,
    problems: _Problems | None = None,
) -> Any:
    """Check ``raw`` against ``hint``. TOML values must have the right type already; text from
    the environment (or an ``env:``/``file:`` reference) is parsed, never truncated."""
    if isinstance(raw, str) and is_reference(raw):
        raw = resolve_reference(raw, key, env, problems.references if problems else None)
        textual = True
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if raw not in choices:
            raise ConfigError(key, f"must be one of {', '.join(map(str, choices))}, not {raw!r}")
        return raw
    if origin in (types.UnionType, typing.Union):
        inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _coerce(raw, inner[0], key, env, textual=textual, problems=problems)
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        if textual and isinstance(raw, str):
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
        raise ConfigError(key, f"must be true or false, not {raw!r}")
    if hint is int or hint is float:
        return _number(raw, hint, key, textual)
    if hint is str:
        if not isinstance(raw, str):
            raise ConfigError(key, f"must be a string, not {raw!r}")
        return raw
    raise ConfigError(key, "unsupported setting type")  # pragma: no cover


def _number(raw: Any, hint: type[int] | type[float], key: str, textual: bool) -> int | float:
    kind = "an integer" if hint is int else "a number"
    number: int | float
    if isinstance(raw, bool):
        raise ConfigError(key, f"must be {kind}, not {raw!r}")
    if textual and isinstance(raw, str):
        try:
            number = hint(raw.strip())
        except ValueError:
            raise ConfigError(key, f"must be {kind}, not {raw!r}") from None
    elif isinstance(raw, int) or (hint is float and isinstance(raw, float)):
        number = hint(raw)
    else:
        raise ConfigError(key, f"must be {kind}, not {raw!r}")
    if number < 0:
        raise ConfigError(key, "must not be negative")
    return number


def _credentials(
    doku: Mapping[str, Any],
    merchant: Mapping[str, Any],
    env: Mapping[str, str],
    problems: _Problems,
) -> Credentials | None:
    files: dict[str, str] = {}

    def text(section: Mapping[str, Any], name: str, key: str, required: bool = True) -> str | None:
        value = section.get(name)
        if value is None or value == "":
            if required:
                raise ConfigError(key, "is required")
            return None
        if not isinstance(value, str):
            raise ConfigError(key, "must be a string")
        resolved = resolve_reference(value, key, env, problems.references)
        if value.startswith("file:"):
            files[key] = str(Path(value[5:]).expanduser())
        if required and not resolved.strip():
            raise ConfigError(key, "is empty")
        return resolved

    found: dict[str, Any] = {}
    with problems.guard():
        found["client_id"] = text(doku, "client_id", "doku.client_id")
    with problems.guard():
        # A secret read from a file or a Kubernetes Secret often ends with a newline, which
        # would silently break every HMAC; no DOKU secret has surrounding whitespace.
        secret = text(doku, "client_secret", "doku.client_secret") or ""
        found["client_secret"] = secret.strip()
        problems.references.append(secret.strip())
    with problems.guard():
        try:
            found["doku_key"] = load_public_key(text(doku, "public_key", "doku.public_key") or "")
        except ValueError as exc:
            raise ConfigError("doku.public_key", str(exc)) from None
    # Rotation window (SECURITY.md): a second value that also verifies; empty means none.
    following: dict[str, Any] = {}
    with problems.guard():
        secret_next = text(doku, "client_secret_next", "doku.client_secret_next", False) or ""
        following["client_secret_next"] = secret_next.strip() or None
        problems.references.append(secret_next.strip())
    with problems.guard():
        key_next = text(doku, "public_key_next", "doku.public_key_next", False) or ""
        try:
            following["doku_public_key_next"] = (
                load_public_key(key_next) if key_next.strip() else None
            )
        except ValueError as exc:
            raise ConfigError("doku.public_key_next", str(exc)) from None
    password: str | None = None
    with problems.guard():
        password = text(merchant, "private_key_password", "merchant.private_key_password", False)
        if password:
            problems.references.append(password)
    with problems.guard():
        try:
            found["private"] = load_private_key(
                text(merchant, "private_key", "merchant.private_key") or "", password
            )
        except ValueError as exc:
            raise ConfigError("merchant.private_key", str(exc)) from None
    with problems.guard():
        public_text = text(merchant, "public_key", "merchant.public_key", False)
        private = found.get("private")
        try:
            if public_text:
                found["public"] = load_public_key(public_text)
            elif private is not None:
                found["public"] = private.public_key()
        except ValueError as exc:
            raise ConfigError("merchant.public_key", str(exc)) from None
        public = found.get("public")
        matches = (
            private is None
            or public is None
            or public.public_numbers() == private.public_key().public_numbers()
        )
        if not matches:
            raise ConfigError("merchant.public_key", "does not match merchant.private_key")
    if len(found) < 5:
        return None
    return Credentials(
        found["client_id"].strip(),
        found["client_secret"],
        found["doku_key"],
        found["private"],
        found["public"],
        merchant_private_key_password=password,
        files=MappingProxyType(files),
        **following,
    )


_RESOLVER_KEYS = ("name", "use", "partner_service_ids", "default", "timeout", "options")


def _resolvers(
    raw: Any, env: Mapping[str, str], problems: _Problems
) -> tuple[ResolverSettings, ...]:
    if not isinstance(raw, list):
        problems.add("resolvers", "must be an array of tables ([[resolvers]])")
        return ()
    result: list[ResolverSettings] = []
    for index, table in enumerate(raw):
        key = f"resolvers[{index}]"
        if not isinstance(table, dict):
            problems.add(key, "must be a table")
            continue
        before = len(problems.items)
        for unknown in sorted(set(table) - set(_RESOLVER_KEYS)):
            problems.unknown(f"{key}.{unknown}", _RESOLVER_KEYS)
        use = table.get("use")
        if not isinstance(use, str) or not use:
            problems.add(f"{key}.use", "is required (an entry point name or module:factory)")
        ids = table.get("partner_service_ids", [])
        if not isinstance(ids, list) or not all(
            isinstance(i, str) and i.strip().isdigit() for i in ids
        ):
            problems.add(f"{key}.partner_service_ids", "must be a list of digit strings")
            ids = []
        timeout: float | None = None
        with problems.guard():
            if table.get("timeout") is not None:
                timeout = _coerce(table["timeout"], float, f"{key}.timeout", env)
                if not timeout:
                    raise ConfigError(f"{key}.timeout", "must be positive")
        default = False
        with problems.guard():
            default = _coerce(table.get("default", False), bool, f"{key}.default", env)
        options = table.get("options", {})
        if not isinstance(options, dict):
            problems.add(f"{key}.options", "must be a table")
            options = {}
        expanded = _expand(options, f"{key}.options", env, problems)
        if len(problems.items) > before or not isinstance(use, str):
            continue
        result.append(
            ResolverSettings(
                name=str(table.get("name", use)),
                use=use,
                partner_service_ids=tuple(i.strip() for i in ids),
                default=default,
                timeout=timeout,
                options=MappingProxyType(expanded),
            )
        )
    return tuple(result)


def _expand(value: Any, key: str, env: Mapping[str, str], problems: _Problems) -> Any:
    """Resolve ``env:``/``file:`` references inside a resolver's options, so a plugin's secrets
    (an API key in a header, a DSN) need not be written into the config file."""
    if isinstance(value, str):
        with problems.guard():
            return resolve_reference(value, key, env, problems.references)
        return value
    if isinstance(value, dict):
        return {k: _expand(v, f"{key}.{k}", env, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{key}[{i}]", env, problems) for i, v in enumerate(value)]
    return value


_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def _validate(
    sections: Mapping[str, Any], resolvers: Sequence[ResolverSettings], problems: _Problems
) -> None:
    add = problems.add
    if not resolvers and not any(k.startswith("resolvers") for k, _ in problems.items):
        add("resolvers", "configure at least one [[resolvers]] table")
    if len([r for r in resolvers if r.default]) > 1:
        add("resolvers", "only one resolver may be the default")
    names = [r.name for r in resolvers]
    if len(set(names)) != len(names):
        add("resolvers", "resolver names must be unique")
    seen: dict[str, str] = {}
    for resolver in resolvers:
        for prefix in resolver.partner_service_ids:
            if prefix in seen:
                add("resolvers", f"partnerServiceId {prefix} is routed twice")
            seen[prefix] = resolver.name
    paths: PathSettings = sections["paths"]
    for name in ("token", "inquiry", "payment"):
        if not getattr(paths, name).startswith("/"):
            add(f"paths.{name}", "must start with /")
    http: HttpSettings = sections["http"]
    if http.port > 65535:
        add("http.port", "must be at most 65535")
    if http.max_body_bytes < 1024:
        add("http.max_body_bytes", "must be at least 1024")
    if http.max_header_bytes < 1024:
        add("http.max_header_bytes", "must be at least 1024")
    if http.max_headers < 16:
        add("http.max_headers", "must be at least 16")
    if http.header_timeout <= 0:
        add("http.header_timeout", "must be positive")
    if http.max_json_depth < 4:
        add("http.max_json_depth", "must be at least 4")
    elif http.max_json_depth > 512:
        # Deeper, checking the signature (which re-encodes the body) nears Python's recursion
        # limit: a body the parser accepted could then be answered 5xx instead of refused.
        add("http.max_json_depth", "must be at most 512")
    if sections["security"].token_lifetime < 60:
        add("security.token_lifetime", "must be at least 60 seconds")
    payment: PaymentSettings = sections["payment"]
    cache: CacheSettings = sections["cache"]
    if payment.shards < 1:
        add("payment.shards", "must be at least 1")
    if payment.max_attempts < 1:
        add("payment.max_attempts", "must be at least 1")
    if payment.delivery_concurrency < 1:
        add("payment.delivery_concurrency", "must be at least 1")
    if payment.journal_keep_delivered < 0:
        add("payment.journal_keep_delivered", "must be at least 0")
    if payment.wait_replicas and "+cluster" in cache.url.split("://", 1)[0]:
        # WAIT counts the writes of its own connection; a cluster client sends it to another
        # connection than the append's, where it would count nothing and always pass.
        add("payment.wait_replicas", "is not supported with redis+cluster:// (use 0)")
    if payment.journal == "redis" and is_memory_url(cache.url):
        add("payment.journal", "redis journal needs a Redis cache.url")
    client: ClientSettings = sections["client"]
    _check_base_url(client.base_url, problems)
    if sections["inquiry"].resolver_timeout <= 0:
        add("inquiry.resolver_timeout", "must be positive")
    with problems.guard():
        check_cache_url(cache.url)


def _check_base_url(url: str, problems: _Problems) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        problems.add("client.base_url", f"must be an http(s) URL, not {url!r}")
    elif parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        # DOKU's hosts (sandbox and production) are https only; plain http would send the
        # merchant's signed requests and tokens in clear text.
        problems.add("client.base_url", f"must be https (got {url}); http only for localhost")


def check_cache_url(url: str) -> None:
    """Parse ``cache.url`` as the Redis client will; :class:`ConfigError` naming ``cache.url``
    (a port that is not a number would otherwise surface as a traceback at start)."""
    scheme, sep, _ = url.partition("://")
    if not sep or scheme not in CACHE_SCHEMES:
        raise ConfigError("cache.url", f"scheme must be one of {', '.join(CACHE_SCHEMES)}")
    if scheme in ("memory", "unix"):
        return
    netloc = urlsplit(url).netloc.rpartition("@")[2]
    for host in netloc.split(","):
        name, colon, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if colon and not (port.isdigit() and 0 < int(port) < 65536):
            raise ConfigError("cache.url", f"port {port!r} of {host!r} is not a port number")
        if not (name if colon else host):
            raise ConfigError("cache.url", f"{url!r} names no host")
    database = urlsplit(url).path.strip("/")
    if database and not database.isdigit() and "sentinel" not in scheme:
        raise ConfigError("cache.url", f"database {database!r} must be a number")
