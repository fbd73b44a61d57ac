"""``doku-gateway plugins`` and ``doku-gateway new-resolver``: the resolvers installed, and a
new one to start from."""

from __future__ import annotations

import argparse
from pathlib import Path

from .._common import Subcommands, fail


def register(commands: Subcommands) -> None:
    plugins = commands.add_parser(
        "plugins",
        help="list the installed resolver plugins, their distribution and version, "
        "and whether each loads",
    )
    plugins.set_defaults(func=_plugins)
    new = commands.add_parser(
        "new-resolver",
        help="write a new resolver plugin package whose tests already run the resolver contract",
    )
    new.add_argument("name", help='the resolver\'s name in use = "..." (e.g. acme)')
    new.add_argument("--dir", help="where to write it (default ./doku-gateway-NAME)")
    new.set_defaults(func=_new_resolver)


def _plugins(args: argparse.Namespace) -> int:
    from ...resolvers.plugins import list_resolvers

    found = list_resolvers()
    width = max((len(info.name) for info in found), default=4)
    for info in found:
        origin = f"{info.distribution or '?'} {info.version or ''}".strip()
        state = "ok" if info.loads else f"does not load: {info.error}"
        print(f"{info.name:<{width}}  {origin:<32}  {state}")
    if not found:
        return fail("no resolver plugins are installed")
    return 0 if all(info.loads for info in found) else 1


def _new_resolver(args: argparse.Namespace) -> int:
    from ...resolvers.plugins import write_resolver_package

    dest = Path(args.dir or f"doku-gateway-{args.name}")
    try:
        written = write_resolver_package(dest, args.name)
    except (ValueError, FileExistsError, OSError) as exc:
        return fail(f"cannot write {dest}: {exc}", 2)
    for path in written:
        print(path)
    print(
        f"\nnext: pip install -e {dest} && pytest {dest}/tests\n"
        f'then in your config: [[resolvers]] use = "{args.name}"'
    )
    return 0
