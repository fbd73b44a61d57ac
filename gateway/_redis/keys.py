"""The key format version, part of every key: a change of value format never reads old keys."""

from __future__ import annotations

__all__ = ["FORMAT_VERSION"]

FORMAT_VERSION = "v1"
