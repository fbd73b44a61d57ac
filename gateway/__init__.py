"""doku-gateway: the merchant side of DOKU's SNAP Direct Inquiry for virtual accounts.

Resolver authors need only this module::

    from gateway import Bill, BillStatus, Inquiry, ResolverUnavailable

The public API is what this module exports (``__all__``), :mod:`gateway.testing` (fake DOKU and
the resolver kit) and, for tooling, :mod:`gateway.snap` (the protocol: signatures, timestamps,
codes). Every other module is internal and may change between releases.
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
from .snap.errors import FieldError, GatewayError, SignatureError, SnapError
from .snap.inquiry import validate_bill
from .snap.models import Bill, BillStatus, FreeText, Inquiry, Outcome, Payment, TrxType
from .snap.va import CheckStatusRequest, CreateVaRequest, DeleteVaRequest, UpdateVaRequest
from .snap.va_results import CheckStatusResult, VaResult
from .web.app import create_app

__version__ = "0.1.0"

__all__ = [
    "Bill",
    "BillStatus",
    "CheckStatusRequest",
    "CheckStatusResult",
    "ConfigError",
    "CreateVaRequest",
    "DeleteVaRequest",
    "DokuClient",
    "DokuError",
    "DokuProtocolError",
    "DokuUnavailable",
    "FieldError",
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
    "UpdateVaRequest",
    "VaResult",
    "__version__",
    "create_app",
    "load_settings",
    "validate_bill",
]
