"""doku-gateway resolver plugin: forwards each lookup to the merchant's own HTTP service.

Configured as ``use = "http"``; see the README for the backend's answer format.
"""

from ._answer import parse_answer
from ._resolver import HttpBackend

__version__ = "0.1.0"

__all__ = ["HttpBackend", "__version__", "parse_answer"]
