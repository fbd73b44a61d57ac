from __future__ import annotations

import importlib.resources

import gateway


def test_all_is_complete_and_sorted() -> None:
    public = {name for name in vars(gateway) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(gateway, name)).__name__ == "module"}
    assert set(gateway.__all__) == public - modules | {"__version__"}
    assert gateway.__all__ == sorted(gateway.__all__)


def test_typed_marker_is_shipped() -> None:
    assert importlib.resources.files("gateway").joinpath("py.typed").is_file()
