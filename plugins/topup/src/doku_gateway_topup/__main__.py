"""``python -m doku_gateway_topup schema postgresql|mysql``: print the tables to create."""

from __future__ import annotations

import argparse
import sys

from . import schema_sql


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m doku_gateway_topup", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    schema = commands.add_parser("schema", help="print the schema SQL")
    schema.add_argument("family", choices=("postgresql", "mysql"), help="mysql also for MariaDB")
    args = parser.parse_args(argv)
    sys.stdout.write(schema_sql(args.family))
    return 0


if __name__ == "__main__":
    sys.exit(main())
