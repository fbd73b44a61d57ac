"""keys."""

from __future__ import annotations

FORMAT_VERSION = "v1"
