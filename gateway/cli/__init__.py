"""The ``doku-gateway`` command line: ``main`` and its command table (internal)."""

from .main import main

__all__ = ["main"]
