"""doku-gateway resolver plugin: bills from PostgreSQL or MySQL/MariaDB.

Configured as ``use = "sql"`` with a ``dsn`` and a parameterised ``query``; see the README for
the column mapping and the payment table. :class:`Database` (the bounded pool with its
timeouts and error translation) and :class:`PaymentRecorder` are public so that other plugins,
such as ``doku-gateway-topup``, build on the same connection handling.
"""

from ._bills import COLUMNS, bill_from_row
from ._database import CONNECTION_OPTIONS, Database, DatabaseOptions, Statement
from ._lifecycle import DatabaseResolver
from ._payments import (
    PAYMENT_PARAMETERS,
    PaymentRecorder,
    payment_parameters,
    payments_table_sql,
    recording_sql,
    recording_statement,
)
from ._resolver import QUERY_PARAMETERS, SqlResolver, zone_option

__version__ = "0.1.0"

__all__ = [
    "COLUMNS",
    "CONNECTION_OPTIONS",
    "PAYMENT_PARAMETERS",
    "QUERY_PARAMETERS",
    "Database",
    "DatabaseOptions",
    "DatabaseResolver",
    "PaymentRecorder",
    "SqlResolver",
    "Statement",
    "__version__",
    "bill_from_row",
    "payment_parameters",
    "payments_table_sql",
    "recording_sql",
    "recording_statement",
    "zone_option",
]
