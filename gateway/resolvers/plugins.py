"""Installed resolver plugins, and a new plugin package to start from.

The two functions behind ``doku-gateway plugins`` and ``doku-gateway new-resolver NAME``:
:func:`list_resolvers` reports every entry point of the group ``doku_gateway.resolvers`` with
its distribution and whether it loads; :func:`write_resolver_package` writes a minimal,
installable plugin whose generated tests already run the resolver contract.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from .loader import ENTRY_POINT_GROUP

__all__ = ["ResolverInfo", "list_resolvers", "write_resolver_package"]

#: The entry point group resolver plugins register in (as in gateway.resolvers.loader).

_NAME = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")


@dataclass(frozen=True, slots=True)
class ResolverInfo:
    """One installed resolver plugin (one entry point)."""

    name: str
    #: ``module:attribute`` the entry point names.
    target: str
    distribution: str | None
    version: str | None
    loads: bool
    #: Why it does not load (``ImportError: No module named 'asyncpg'``), else None.
    error: str | None = None


def list_resolvers() -> list[ResolverInfo]:
    """Every installed resolver plugin, by name, each loaded once to see whether it works.

    Loading imports the plugin's module (not its factory call: no options, no connections).
    A plugin that fails to import, or names something that is not callable, is listed with
    ``loads=False`` and the error, never raised.
    """
    found = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (ep.name, ep.value))
    return [_describe(entry) for entry in found]


def _describe(entry: EntryPoint) -> ResolverInfo:
    dist = entry.dist
    name = dist.metadata["Name"] if dist is not None else None
    version = dist.version if dist is not None else None
    error: str | None = None
    try:
        target = entry.load()
    except Exception as exc:  # a broken plugin is reported, whatever it raises
        error = f"{type(exc).__name__}: {exc}"
    else:
        if not callable(target):
            error = f"{entry.value} is not callable"
    return ResolverInfo(entry.name, entry.value, name, version, error is None, error)


def write_resolver_package(dest: Path, name: str) -> list[Path]:
    """Write a new resolver plugin package for ``name`` into the directory ``dest``.

    ``name`` is the resolver's name in ``use = "…"`` (lower case, digits, ``-`` or ``_``); the
    distribution is ``doku-gateway-<name>`` and the package ``doku_gateway_<name>``. ``dest``
    must not exist or be empty. The package installs with ``pip install -e DEST``, registers
    the entry point, and its ``tests/test_contract.py`` runs the resolver contract
    (:class:`gateway.testing.ResolverContract`) against the skeleton resolver, which passes as
    written. Returns the files written.
    """
    if _NAME.fullmatch(name) is None:
        raise ValueError(
            f"resolver name {name!r}: use lower-case letters and digits, words joined by - or _"
        )
    module = "doku_gateway_" + name.replace("-", "_")
    if not module.isidentifier() or keyword.iskeyword(module):
        raise ValueError(f"resolver name {name!r} does not make a Python package name")
    class_name = "".join(part.capitalize() for part in re.split(r"[-_]", name)) + "Resolver"
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(f"{dest} exists and is not an empty directory")
    values = {
        "name": name,
        "distribution": f"doku-gateway-{name}",
        "module": module,
        "class_name": class_name,
    }
    files = {
        "pyproject.toml": _PYPROJECT,
        "README.md": _README,
        f"src/{module}/__init__.py": _INIT,
        f"src/{module}/_resolver.py": _RESOLVER,
        f"src/{module}/py.typed": "",
        "tests/test_contract.py": _TESTS,
    }
    written: list[Path] = []
    for relative, template in files.items():
        path = dest / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_fill(template, values), encoding="utf-8")
        written.append(path)
    return written


def _fill(template: str, values: dict[str, str]) -> str:
    # str.format would trip over the braces of the TOML and Python in the templates.
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    return template


_PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.21"]
build-backend = "hatchling.build"

[project]
name = "{{distribution}}"
version = "0.1.0"
description = "doku-gateway resolver plugin: {{name}}"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["doku-gateway>=0.1"]

[project.optional-dependencies]
test = ["pytest>=8"]

# The gateway finds the resolver by this name: use = "{{name}}" in [[resolvers]].
[project.entry-points."doku_gateway.resolvers"]
{{name}} = "{{module}}:{{class_name}}"

[tool.hatch.build.targets.wheel]
packages = ["src/{{module}}"]

[tool.pytest.ini_options]
testpaths = ["tests"]
addopts = "--strict-markers -ra"
"""

_README = """\
# {{distribution}}

A resolver plugin for doku-gateway: answers DOKU's inquiries for virtual accounts from
<your billing system>.

```console
$ pip install -e '.[test]'
$ pytest                                   # the resolver contract of gateway.testing
$ doku-gateway plugins                     # lists "{{name}}" once installed
```

Use it in the gateway's configuration:

```toml
[[resolvers]]
name = "{{name}}"
use = "{{name}}"
default = true

[resolvers.options]
dsn = "env:BILLING_DSN"
```

Replace the example bills in `src/{{module}}/_resolver.py` with your own lookup: open the
connection pool in `startup()`, close it in `shutdown()`, check it in `health()`, and raise
`ResolverUnavailable` when the lookup cannot be done right now. Then list a few of your real VA
numbers in `tests/test_contract.py`.
"""

_INIT = '''\
"""doku-gateway resolver plugin "{{name}}" (``use = "{{name}}"``)."""

from ._resolver import {{class_name}}

__all__ = ["{{class_name}}"]
'''

_RESOLVER = '''\
"""The "{{name}}" resolver: what is the bill behind a VA number?"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from gateway import Bill, BillStatus, Inquiry, Outcome, ResolverContext, ResolverUnavailable

__all__ = ["{{class_name}}"]

# Stands in for your database until you replace it: payment code (VA number without spaces)
# -> bill. Money is always a Decimal, never a float.
_EXAMPLE_BILLS = {
    "8889900000001": Bill(name="Budi Santoso", amount=Decimal("25000.00"), trx_id="INV-0001"),
    "8889900000002": Bill(
        name="Donation",
        amount=Decimal("0.00"),
        trx_type="O",
        min_amount=Decimal("10000.00"),
        max_amount=Decimal("5000000.00"),
    ),
}


class {{class_name}}:
    """Looks bills up in <your billing system>.

    ``options`` is the ``[resolvers.options]`` table of the gateway's configuration.
    """

    def __init__(self, options: Mapping[str, Any]) -> None:
        # Check the options here and raise ValueError naming the one that is wrong; the gateway
        # reports it as a configuration error. Do no I/O here: an async driver's pool can only
        # be opened inside the event loop, in startup().
        self.dsn = options.get("dsn", "")
        self._bills: Mapping[str, Bill] | None = None
        self._logger = logging.getLogger("doku_gateway.resolver.{{name}}")

    async def startup(self, context: ResolverContext) -> None:
        """Open connections (e.g. ``await asyncpg.create_pool(self.dsn)``)."""
        self._logger = context.logger
        self._bills = _EXAMPLE_BILLS

    async def health(self) -> bool:
        """True while the backend answers (``/readyz``); answer within a second."""
        return self._bills is not None

    async def shutdown(self) -> None:
        """Close connections; may be called twice, or without startup()."""
        self._bills = None

    async def resolve(self, inquiry: Inquiry) -> Outcome:
        bills = self._bills
        if bills is None:
            raise ResolverUnavailable("{{name}} resolver is not started")
        try:
            bill = bills.get(inquiry.payment_code)  # your query, with its own timeout
        except (OSError, TimeoutError) as exc:
            # Temporarily unavailable: DOKU gets 5042400 and may retry; nothing is cached.
            raise ResolverUnavailable(f"billing backend: {exc}") from exc
        if bill is None:
            return BillStatus.NOT_FOUND
        return bill
'''

_TESTS = '''\
"""The resolver contract of doku-gateway (gateway.testing.ResolverContract), in one line.

List a few VA numbers your resolver knows, with what each should answer. Set
unavailable_options (the backend unreachable) and slow_options (the backend too slow) to run the
checks that are skipped until then; see gateway.testing.contract.
"""

from gateway import Bill, BillStatus
from gateway.testing import resolver_contract

from {{module}} import {{class_name}}

Test{{class_name}}Contract = resolver_contract(
    {{class_name}},
    {"dsn": "postgresql://localhost/billing"},
    {
        "8889900000001": Bill,
        "8889900000002": Bill,
        "8889900009999": BillStatus.NOT_FOUND,
    },
)
'''
