"""Key and secret files: re-read when they change on disk, and flagged when others can read them.

Kubernetes updates a mounted Secret in place: it writes the new files into a fresh directory and
swaps the ``..data`` symlink, so the path in the config stays the same while the file behind it
changes. :class:`CredentialWatcher` notices that by the file's identity (device, inode, mtime,
size, following symlinks), checked every ``security.key_reload_interval`` seconds in a background
task, and switches the running gateway to the new credentials between two requests. A file that
does not parse leaves the current credentials in place (one warning), so a half-written update
never breaks verification.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import rsa

from ..config import Credentials
from ..exceptions import ConfigError
from ..log import get_logger, redact_also
from ..snap.keys import load_private_key, load_public_key

if TYPE_CHECKING:  # check-config imports this module without the web stack
    from .runtime import Runtime

__all__ = ["CredentialWatcher", "loose_secret_files", "reload_credentials"]

_log = get_logger("rotation")

#: Config keys whose file must not be readable by anyone but the gateway's user. Public keys
#: and the client id are not secret.
SECRET_KEYS = (
    "doku.client_secret",
    "doku.client_secret_next",
    "merchant.private_key",
    "merchant.private_key_password",
)

Identity = tuple[int, int, int, int]


def loose_secret_files(credentials: Credentials) -> list[str]:
    """One message per secret given as ``file:`` that others may access: any "other" bit, or a
    group bit for a group the gateway's process is not in.

    A group the process belongs to is its own: Kubernetes mounts a Secret's files owned by the
    pod's ``fsGroup`` (mode 0440), and only the gateway runs in its container. The mode is that
    of the file the path resolves to (a Kubernetes Secret's files are symlinks into the
    volume)."""
    own_groups = {os.getgid(), os.getegid(), *os.getgroups()}
    messages = []
    for key in SECRET_KEYS:
        path = credentials.files.get(key)
        if path is None:
            continue
        try:
            info = os.stat(path)
        except OSError:
            continue
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o007 or (mode & 0o070 and info.st_gid not in own_groups):
            messages.append(
                f"{key}: {path} is accessible to others (mode {mode:04o}); make it readable "
                "by the gateway's user only (chmod 600; Kubernetes: defaultMode 0440 with the "
                "pod's fsGroup)"
            )
    return messages


def reload_credentials(current: Credentials) -> Credentials:
    """``current`` with every ``file:`` value read and parsed again, as at start.

    Raises :class:`ConfigError` naming the key when a file cannot be read or parsed."""
    files = current.files
    changes: dict[str, Any] = {}
    if "doku.client_secret" in files:
        secret = _read(files, "doku.client_secret").strip()
        if not secret:
            raise ConfigError("doku.client_secret", "is empty")
        changes["client_secret"] = secret
    if "doku.client_secret_next" in files:
        # Emptying the file closes the rotation window.
        changes["client_secret_next"] = _read(files, "doku.client_secret_next").strip() or None
    if "doku.public_key" in files:
        changes["doku_public_key"] = _public(files, "doku.public_key")
    if "doku.public_key_next" in files:
        changes["doku_public_key_next"] = _public(files, "doku.public_key_next", optional=True)
    if "merchant.private_key" in files:
        password = current.merchant_private_key_password
        if "merchant.private_key_password" in files:
            password = _read(files, "merchant.private_key_password") or None
        try:
            private = load_private_key(_read(files, "merchant.private_key"), password)
        except ValueError as exc:
            raise ConfigError("merchant.private_key", str(exc)) from None
        public = private.public_key()
        if "merchant.public_key" in files:
            public = _public(files, "merchant.public_key")
            if public.public_numbers() != private.public_key().public_numbers():
                raise ConfigError("merchant.public_key", "does not match merchant.private_key")
        changes.update(
            merchant_private_key=private,
            merchant_public_key=public,
            merchant_private_key_password=password,
        )
    return dataclasses.replace(current, **changes)


def _read(files: Mapping[str, str], key: str) -> str:
    try:
        return Path(files[key]).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(key, f"cannot read {files[key]}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(key, f"{files[key]} is not UTF-8 text") from None


def _public(files: Mapping[str, str], key: str, optional: bool = False) -> Any:
    text = _read(files, key)
    if optional and not text.strip():
        return None
    try:
        public: rsa.RSAPublicKey = load_public_key(text)
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None
    return public


def _identities(files: Mapping[str, str]) -> dict[str, Identity | None]:
    identities: dict[str, Identity | None] = {}
    for key, path in files.items():
        try:
            info = os.stat(path)  # follows the symlinks a Kubernetes Secret volume is made of
        except OSError:
            identities[key] = None
        else:
            identities[key] = (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)
    return identities


class CredentialWatcher:
    """Re-reads the credentials given as ``file:`` when one of their files changes."""

    def __init__(self, runtime: Runtime, interval: float) -> None:
        self.runtime = runtime
        self.interval = interval
        self._files = runtime.settings.credentials.files
        self._seen = _identities(self._files)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Poll in the background (nothing to do without ``file:`` values or an interval)."""
        if self.interval > 0 and self._files and self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="doku-gateway-key-reload"
            )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:  # a surprise must not end the polling for the process's life
                _log.exception("checking key files failed")

    async def check(self) -> bool:
        """Reload if a file changed since the last check; True when new credentials are in use."""
        self.runtime.expire_retired_keys()
        # A stat per file: microseconds on the local or tmpfs files keys live on.
        seen = _identities(self._files)
        if seen == self._seen:
            return False
        changed = sorted(key for key in seen if seen[key] != self._seen.get(key))
        # Remembered before reading: a file that does not parse is reported once, and read
        # again when it changes next (the rest of a non-atomic write).
        self._seen = seen
        try:
            credentials = await asyncio.to_thread(
                reload_credentials, self.runtime.settings.credentials
            )
        except ConfigError as exc:
            _log.warning(
                "changed key files not reloaded, the current keys stay in use: %s",
                "; ".join(f"{key}: {message}" for key, message in exc.problems),
            )
            return False
        different = _differences(self.runtime.settings.credentials, credentials)
        if not different:
            # A Secret volume update rewrites every file, even those whose value stayed.
            _log.debug("key files %s rewritten with the same values", ", ".join(changed))
            return False
        # The new secrets are redacted from the logs before anything can log them.
        redact_also([credentials.client_secret, credentials.client_secret_next or ""])
        self.runtime.use_credentials(credentials)
        _log.info("reloaded credentials: new %s", ", ".join(different))
        return True


def _differences(old: Credentials, new: Credentials) -> list[str]:
    """Config keys whose value differs between ``old`` and ``new`` (names only)."""

    def numbers(key: rsa.RSAPublicKey | None) -> object:
        return None if key is None else key.public_numbers()

    pairs = (
        ("doku.client_secret", old.client_secret, new.client_secret),
        ("doku.client_secret_next", old.client_secret_next, new.client_secret_next),
        ("doku.public_key", numbers(old.doku_public_key), numbers(new.doku_public_key)),
        (
            "doku.public_key_next",
            numbers(old.doku_public_key_next),
            numbers(new.doku_public_key_next),
        ),
        (
            "merchant.private_key",
            numbers(old.merchant_public_key),
            numbers(new.merchant_public_key),
        ),
    )
    return [key for key, before, after in pairs if before != after]
