"""What every command shares: loading settings, one-line failures, JSON output."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from typing import Any, TypeAlias

from ..config import Settings, load_settings
from ..exceptions import ConfigError

__all__ = [
    "Subcommands",
    "describe",
    "fail",
    "load",
    "log_secrets",
    "print_json",
    "with_base_url",
]

# A string: argparse's class is not subscriptable at run time.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def load(config: str | None) -> Settings:
    """Settings from ``--config`` (or defaults) and the ``DOKU_GATEWAY_*`` environment."""
    return load_settings(config, dict(os.environ))


def with_base_url(settings: Settings, base_url: str | None) -> Settings:
    """``--base-url`` overrides ``client.base_url`` (a sandbox, a fake DOKU)."""
    if not base_url:
        return settings
    if not base_url.startswith(("https://", "http://")):
        raise ConfigError("--base-url", "must be an http(s) URL")
    return settings.replace(client=dataclasses.replace(settings.client, base_url=base_url))


def fail(message: str, code: int = 1) -> int:
    """Print one line for a person to act on and return the exit code."""
    print(f"doku-gateway: {message}", file=sys.stderr)
    return code


def print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, ensure_ascii=False))


def describe(docstring: str | None) -> str:
    """A module docstring as ``--help`` text: without the reStructuredText markup (double
    backquotes, roles) that reads well in the source and badly in a terminal."""
    text = docstring or ""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    return text.replace("``", "").replace("`", "")


def version() -> str:
    """The installed distribution's version, else the package's own."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("doku-gateway")
    except PackageNotFoundError:
        from .. import __version__

        return __version__


def log_secrets(settings: Settings) -> list[str]:
    """Every secret value the logs must never show: the client secrets (current and next),
    the private key's password, and each value that came from ``env:`` or ``file:``."""
    credentials = settings.credentials
    values = [
        credentials.client_secret,
        credentials.client_secret_next,
        credentials.merchant_private_key_password,
        *settings.redacted,
    ]
    return [value for value in values if value]
