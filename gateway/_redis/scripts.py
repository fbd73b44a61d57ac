"""The Lua scripts in ``lua/``, read once from the package (syntax-highlighted, written once)."""

from __future__ import annotations

import functools
import hashlib
from importlib import resources

__all__ = ["script", "script_sha"]


@functools.cache
def script(name: str) -> str:
    """The source of ``lua/<name>.lua``."""
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text("utf-8")


def script_sha(name: str) -> str:
    """The SHA-1 Redis names the script by (EVALSHA)."""
    return hashlib.sha1(script(name).encode()).hexdigest()  # noqa: S324 (Redis's own id)
