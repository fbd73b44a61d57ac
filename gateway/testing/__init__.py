"""Test helpers for merchants and plugin authors (public API).

* :class:`FakeDoku` / :func:`create_fake_doku`: DOKU's remote API in memory, verifying what DOKU
  verifies, for testing code that calls DOKU through :class:`gateway.DokuClient`.
"""

from ._fake_doku import FakeDoku, create_fake_doku

__all__ = ["FakeDoku", "create_fake_doku"]
