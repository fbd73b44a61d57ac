from __future__ import annotations

import importlib.resources
import subprocess
import sys
from pathlib import Path

import gateway

# The public API, pinned: a name added to or removed from ``gateway`` is a release-note change.
PUBLIC = [
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


def test_all_is_pinned() -> None:
    assert gateway.__all__ == PUBLIC


def test_all_is_complete_and_sorted() -> None:
    public = {name for name in vars(gateway) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(gateway, name)).__name__ == "module"}
    assert set(gateway.__all__) == public - modules | {"__version__"}
    assert gateway.__all__ == sorted(gateway.__all__)


def test_exception_tree_has_one_root() -> None:
    for name in PUBLIC:
        value = getattr(gateway, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, gateway.GatewayError), name


def test_typed_marker_is_shipped() -> None:
    assert importlib.resources.files("gateway").joinpath("py.typed").is_file()


def test_python_dash_m_gateway_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "serve" in result.stdout
    assert "check-config" in result.stdout


def test_reference_plugins_import_only_public_names() -> None:
    plugins = Path(__file__).resolve().parents[1] / "plugins"
    allowed = (
        "from gateway import",
        "from gateway.testing",
        "from gateway.snap",
        "import gateway\n",
    )
    offenders = [
        f"{source.relative_to(plugins)}: {line.strip()}"
        for source in sorted(plugins.glob("*/src/**/*.py"))
        for line in source.read_text(encoding="utf-8").splitlines()
        if line.strip().startswith(("from gateway", "import gateway"))
        and not (line.strip() + "\n").startswith(allowed)
    ]
    assert offenders == []
