"""doku-gateway: the merchant side of DOKU's SNAP Direct Inquiry for virtual accounts.

Resolver authors need only this module::

    from gateway import Bill, BillStatus, Inquiry, ResolverUnavailable
"""

from .config import Settings, load_settings
from .doku.client import DokuClient
from .exceptions import (
    ConfigError,
    DokuError,
    DokuProtocolError,
    DokuUnavailable,
    ResolverError,
    ResolverUnavailable,
)
from .resolvers.contract import PaymentHook, Resolver, ResolverContext, ResolverFactory
from .resolvers.dispatch import ResolverSet
from .snap.errors import GatewayError, SignatureError, SnapError
from .snap.inquiry import validate_bill
from .snap.models import Bill, BillStatus, FreeText, Inquiry, Outcome, Payment, TrxType
from .web.app import create_app

__version__ = "0.1.0"

__all__ = [
    "Bill",
    "BillStatus",
    "ConfigError",
    "DokuClient",
    "DokuError",
    "DokuProtocolError",
    "DokuUnavailable",
    "FreeText",
    "GatewayError",
    "Inquiry",
    "Outcome",
    "Payment",
    "PaymentHook",
    "Resolver",
    "ResolverContext",
    "ResolverError",
    "ResolverFactory",
    "ResolverSet",
    "ResolverUnavailable",
    "Settings",
    "SignatureError",
    "SnapError",
    "TrxType",
    "__version__",
    "create_app",
    "load_settings",
    "validate_bill",
]
