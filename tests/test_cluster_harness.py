"""The cluster rehearsal itself (``tests/cluster/harness.py``) on a workflow package of one's own."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster.harness import Cluster, fill_templates

PACKAGE = """
import os

import flyte

env = flyte.TaskEnvironment(name="own", env_vars={"OWN_SETTING": "declared"})


@env.task
async def child(x: int) -> dict[str, str]:
    return {"cwd": os.getcwd(), "x": str(x), "setting": os.environ.get("OWN_SETTING", ""),
            "shell": os.environ.get("OWN_SHELL_ONLY", "")}


@env.task
async def pipeline(x: int) -> list[dict[str, str]]:
    return [await child(x), await child(x + 1), {"cwd": os.getcwd()}]
"""


@pytest.fixture
def own_package(tmp_path: Path) -> Iterator[Any]:
    root = tmp_path / "src"
    (root / "own_project").mkdir(parents=True)
    (root / "own_project" / "__init__.py").write_text("")
    (root / "own_project" / "workflows.py").write_text(textwrap.dedent(PACKAGE))
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("own_project.workflows")
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n.startswith("own_project")]:
            del sys.modules[name]


def test_each_action_of_an_own_package_runs_in_its_own_pod_with_only_its_environment(
    own_package: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OWN_SHELL_ONLY", "from the test's shell")
    cluster = Cluster(tmp_path / "cluster", code=Path(own_package.__file__).parent)
    result = cluster.run(own_package.pipeline, 1)
    assert result.ok, result.root.log()
    first, second, parent = result.outputs
    assert (first["x"], second["x"]) == ("1", "2")
    assert len({first["cwd"], second["cwd"], parent["cwd"]}) == 3  # three pods
    assert all(Path(seen["cwd"], "own_project", "workflows.py").exists() for seen in result.outputs)
    assert first["setting"] == "declared" and first["shell"] == ""  # the pod's environment only
    assert {a.parent for a in result.children_of("a0")} == {"a0"} and len(result.children_of("a0")) == 2
    assert {a.exit_code for a in result.final()} == {0}


def test_an_unknown_template_is_an_error() -> None:
    assert fill_templates("{{.runName}}/{{ .actionName }}", {"runName": "r", "actionName": "a"}) == "r/a"
    with pytest.raises(KeyError, match="podUID"):
        fill_templates("{{.podUID}}", {})
