"""doku-gateway resolver plugin: one reusable top-up VA per customer account.

Configured as ``use = "topup"`` with a ``dsn``; the tables are in ``schema/`` (print them with
``python -m doku_gateway_topup schema postgresql``). See the README for the walk-through.
"""

from importlib.resources import files

from ._resolver import TopUp, holder_name

__version__ = "0.1.0"

__all__ = ["TopUp", "__version__", "holder_name", "schema_sql"]

_SCHEMAS = ("postgresql", "mysql")


def schema_sql(family: str) -> str:
    """The ``CREATE TABLE`` statements for ``"postgresql"`` or ``"mysql"`` (also MariaDB)."""
    if family not in _SCHEMAS:
        raise ValueError(f"no schema for {family!r} (known: {', '.join(_SCHEMAS)})")
    return files(__name__).joinpath("schema", f"{family}.sql").read_text(encoding="utf-8")
