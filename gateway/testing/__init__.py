"""Test helpers for merchants and plugin authors (public API).

* :class:`FakeDoku` / :func:`create_fake_doku`: DOKU's remote API in memory, verifying what DOKU
  verifies, for testing code that calls DOKU through :class:`gateway.DokuClient`.
* :func:`make_inquiry` / :func:`make_payment`: the :class:`~gateway.Inquiry` and
  :class:`~gateway.Payment` the gateway hands a resolver after verifying DOKU's call, built
  through the gateway's own parsers; :func:`make_context` (with :class:`Invalidations`): the
  :class:`~gateway.ResolverContext` a resolver's ``startup`` receives.
* :class:`ResolverContract` / :func:`resolver_contract`: the contract every resolver plugin must
  keep, as pytest tests to subclass (valid outcomes, ``ResolverUnavailable`` for temporary
  failures, ``health()`` within a second, idempotent ``shutdown()`` and ``on_payment``,
  behaviour under the gateway's timeout). They need pytest, so they are imported on first use.
"""

from typing import TYPE_CHECKING, Any

from ._fake_doku import FakeDoku, create_fake_doku
from ._kit import Invalidations, make_context, make_inquiry, make_payment

if TYPE_CHECKING:
    from .contract import Expectation, ResolverContract, resolver_contract

__all__ = [
    "Expectation",
    "FakeDoku",
    "Invalidations",
    "ResolverContract",
    "create_fake_doku",
    "make_context",
    "make_inquiry",
    "make_payment",
    "resolver_contract",
]

_CONTRACT = ("Expectation", "ResolverContract", "resolver_contract")


def __getattr__(name: str) -> Any:
    # The contract suite imports pytest; the rest of gateway.testing must not need it.
    if name in _CONTRACT:
        from . import contract

        return getattr(contract, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
