"""Money as SNAP strings: ``^\\d{1,16}\\.\\d{2}$``, from and to :class:`~decimal.Decimal` only."""

from __future__ import annotations

import functools
import re
from decimal import Decimal, InvalidOperation

__all__ = ["format_amount", "is_amount", "parse_amount"]

# re.ASCII: a str pattern's \d also matches "١٢" and the like, which Decimal() would accept.
_AMOUNT = re.compile(r"\d{1,16}\.\d{2}", re.ASCII)
_CENT = Decimal("0.01")
_LIMIT = Decimal("10000000000000000")


def is_amount(value: str) -> bool:
    return _AMOUNT.fullmatch(value) is not None


def parse_amount(value: str) -> Decimal:
    """Parse a SNAP amount string; ``ValueError`` when it is not ``digits.dd``."""
    if not isinstance(value, str) or not is_amount(value):
        raise ValueError("amount must match ^\\d{1,16}\\.\\d{2}$")
    return Decimal(value)


def format_amount(value: Decimal) -> str:
    """Format a non-negative amount with exactly two decimals.

    Refuses rather than rounds: a bill of ``10.005`` is a bug in the merchant's data, and sending
    DOKU a different amount than the merchant computed would be worse than an error.
    """
    if not isinstance(value, Decimal):
        raise ValueError(f"amount must be a Decimal, not {type(value).__name__}")
    if not value.is_finite():  # (a signalling NaN cannot even be hashed for the cache)
        raise ValueError("amount must be finite, non-negative and below 10^16")
    return _format_finite(value)


# Bills repeat a handful of amounts, and each is checked and written twice per answer. Equal
# Decimals (25000, 25000.00, 2.5E+4) format alike, so caching by value is exact; refusals raise
# and are not cached.
@functools.lru_cache(maxsize=1024)
def _format_finite(value: Decimal) -> str:
    if value < 0 or value >= _LIMIT:
        raise ValueError("amount must be finite, non-negative and below 10^16")
    try:
        exact = value.quantize(_CENT)
    except InvalidOperation:
        raise ValueError("amount out of range") from None
    if exact != value:
        raise ValueError("amount has more than two decimals")
    # Decimal("-0") passes the sign check but would format as "-0.00".
    return f"{exact.copy_abs():f}"
