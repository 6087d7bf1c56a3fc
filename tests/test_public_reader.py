"""``read_wandb_run``: what a local run recorded, read back through the public API, and the rule that
the demo and the examples use only the public API (no ``flyteplugins.wandb._private`` import)."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import flyte
import pytest
from conftest import run_local, task_run
from flyte.io import File

import flyteplugins.wandb as public
from flyteplugins.wandb import OfflineRun, WandbRunError, read_wandb_run, wandb_init

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.smoke
env = flyte.TaskEnvironment(name="public_reader")


@wandb_init(project="reader", entity="team", log_outputs=True)
@env.task
async def produce(text: str) -> File:
    task_run().log({"loss": 0.5})
    task_run().log({"loss": 0.25})
    path = Path(os.environ["READER_BLOB_DIR"]) / "model.txt"
    path.write_text(text)
    return await File.from_local(str(path))


def test_a_local_runs_lineage_is_read_back_with_the_public_reader(
    wandb_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("READER_BLOB_DIR", str(tmp_path))
    result = run_local(produce, "weights")
    (action,) = result.task_of_action
    (run_dir,) = [p for p in (wandb_root).iterdir() if p.name.startswith("offline-run-")]
    run_id = next(run_dir.glob("run-*.wandb")).name.removeprefix("run-").removesuffix(".wandb")
    for target in (
        run_id,
        run_id[:10],
        str(run_dir),
        run_dir / f"run-{run_id}.wandb",
        wandb_root / "latest-run",
    ):
        run = read_wandb_run(target, wait=20)
        assert isinstance(run, OfflineRun)
        assert run.path.resolve() == run_dir.resolve() and run.run_id == run_id
        assert run.finished and run.exit_code == 0
        assert run.column("loss") == [0.5, 0.25]
        # Lineage: the backlink to the Flyte action, and the output as a reference artifact.
        assert run.config["flyte"]["action"] == action
        assert run.notes and action in run.notes
        (artifact,) = run.artifacts
        assert artifact.type == "flyte-file"
        assert artifact.uris == [f"file://{tmp_path / 'model.txt'}"]


def test_an_unknown_run_is_a_clear_error_naming_where_it_looked(wandb_root: Path) -> None:
    with pytest.raises(
        WandbRunError, match=r"no local W&B run folder, run id or run id prefix 'nope'"
    ) as caught:
        read_wandb_run("nope")
    assert str(wandb_root) in str(caught.value)


def test_the_reader_and_its_types_are_public_and_documented() -> None:
    for name in ("read_wandb_run", "OfflineRun", "OfflineArtifact", "OfflineRunFormatError"):
        assert name in public.__all__
        doc = getattr(public, name).__doc__ or ""
        assert "Example" in doc, name


def private_imports(path: Path) -> list[str]:
    """Imports of private modules or names: ``flyteplugins.wandb._x``, ``from ._x import``, ``_name``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            parts = module.split(".")
            if module != "__future__" and (
                any(p.startswith("_") for p in parts) or any(a.name.startswith("_") for a in node.names)
            ):
                found.append(f"{path.name}:{node.lineno}: from {'.' * node.level}{module} import ...")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if any(p.startswith("_") for p in alias.name.split(".")):
                    found.append(f"{path.name}:{node.lineno}: import {alias.name}")
    return found


@pytest.mark.parametrize(
    "path",
    [*sorted(ROOT.glob("examples/*.py")), ROOT / "flyteplugins" / "wandb" / "demo.py"],
    ids=lambda p: p.name,
)
def test_the_demo_and_the_examples_use_only_public_api(path: Path) -> None:
    assert private_imports(path) == []


def test_the_private_import_check_finds_private_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from __future__ import annotations\n"
        "from flyteplugins.wandb._offline import iter_records\n"
        "from ._compat import action_tracker\n"
        "import flyte._internal\n"
        "from flyteplugins.wandb import read_wandb_run\n"
    )
    assert [line.split(": ", 1)[0] for line in private_imports(sample)] == [
        "sample.py:2",
        "sample.py:3",
        "sample.py:4",
    ]


@wandb_init(run_mode="new", project="from-decorator")
@env.task
async def decorated() -> None:
    return None


def test_explain_takes_a_decorated_task_as_the_demo_uses_it() -> None:
    fields = {f.name: f for f in public.explain(task=decorated, context={"wandb_project": "from-context"})}
    assert (fields["run_mode"].value, fields["run_mode"].origin) == ("new", "@wandb_init(...)")
    # The task's own argument wins over the context it gets, as in its run.
    assert fields["project"].value == "from-decorator"
    assert fields["project"].overridden == (("from-context", "custom_context key wandb_project"),)
    # A task without @wandb_init has no settings of its own.
    assert public.explain(task=object(), context={}).as_dict()["run_mode"] == "auto"
