"""Small type aliases shared across the package (internal)."""

from __future__ import annotations

from collections.abc import Callable

Clock = Callable[[], float]
