"""doku-gateway resolver plugin: bills from a JSON file keyed by payment code.

Configured as ``use = "static"``; see the README for the file format.
"""

from ._bills import parse_bills
from ._resolver import StaticBills

__version__ = "0.1.0"

__all__ = ["StaticBills", "__version__", "parse_bills"]
