"""Lineage both ways: the Flyte backlink and inputs in each W&B run, outputs as reference artifacts,
and their use by consumer tasks.

Real local Flyte runs with real offline wandb; what reached W&B is read back from each run's
transaction log (``_offline.py``). The two online-only paths (``use_artifact`` and the console URL
of a remote action) are tested at the narrowest boundary, each said so where it happens.
"""

from __future__ import annotations

import enum
import logging
import os
import typing
from pathlib import Path
from typing import Any

import flyte
import pytest
from conftest import run_local, task_run
from flyte.io import Dir, File

from flyteplugins.wandb import WandbConfigError, explain, get_wandb_run, wandb_config, wandb_init
from flyteplugins.wandb._codec import decode_context, encode_fields
from flyteplugins.wandb._lineage import (
    ArtifactSpec,
    FlyteIdentity,
    _build_artifact,
    artifact_name,
    flyte_identity,
    plan_lineage,
    use_artifacts,
)
from flyteplugins.wandb._offline import OfflineRun, find_offline_run_dirs, read_offline_run
from flyteplugins.wandb._settings import RUN

env = flyte.TaskEnvironment(name="lineage")


class Color(enum.Enum):
    RED = "red"


class Opaque:
    """A type Flyte only pickles: recorded by its type name."""


class Trained(typing.NamedTuple):
    model: File
    score: float


def runs(root: Path) -> list[OfflineRun]:
    return [read_offline_run(d, wait=15) for d in find_offline_run_dirs(root)]


def the_run(root: Path, run_id: str) -> OfflineRun:
    dirs = find_offline_run_dirs(root, run_id)
    assert len(dirs) == 1, dirs
    return read_offline_run(dirs[0], wait=15)


def writer_keys(run: OfflineRun) -> list[str]:
    return sorted(k for k in run.config if k == "flyte" or k.startswith("flyte/"))


def whoami() -> dict[str, str]:
    ctx = flyte.ctx()
    assert ctx is not None
    return {"action": ctx.action.name, "run": ctx.action.run_name or "", "id": task_run().id}


# --- backlink --------------------------------------------------------------------------------------


@wandb_init
@env.task
async def child(tag: str) -> dict[str, str]:
    return whoami()


@wandb_init(run_mode="new")
@env.task
async def own_child() -> dict[str, str]:
    return whoami()


@wandb_init(project="lin")
@env.task
async def parent(n: int) -> list[dict[str, str]]:
    import asyncio

    kids = await asyncio.gather(child("a"), child("b"), own_child())
    return [whoami(), *kids]


def test_owner_records_backlink_and_notes_children_add_their_own_entries(wandb_root: Path) -> None:
    me, kid_a, kid_b, own = run_local(parent, 3).outputs
    owner = the_run(wandb_root, me["id"])
    entry = owner.config["flyte"]
    metadata = entry.pop("metadata")
    assert entry == {
        "run": me["run"],
        "action": me["action"],
        "task": "lineage.parent",
        "attempt": 0,
        "mode": "local",
        "inputs": {"n": 3},
    }
    # In a local run, the backlink is where Flyte keeps the action's metadata.
    assert metadata.endswith(f"/{me['run']}/{me['action']}")
    assert owner.notes is not None and owner.notes.startswith(
        f"Flyte local run {me['run']}, action {me['action']}"
    )
    # The two auto children wrote into the parent's run, each under its own key, none overwriting.
    assert kid_a["id"] == kid_b["id"] == me["id"]
    assert writer_keys(owner) == sorted(["flyte", f"flyte/{kid_a['action']}", f"flyte/{kid_b['action']}"])
    for kid, tag in ((kid_a, "a"), (kid_b, "b")):
        written = owner.config[f"flyte/{kid['action']}"]
        assert (written["task"], written["action"], written["inputs"]) == (
            "lineage.child",
            kid["action"],
            {"tag": tag},
        )
    # The child with a run of its own owns it: its backlink is "flyte", with its own notes.
    mine = the_run(wandb_root, own["id"])
    assert writer_keys(mine) == ["flyte"]
    assert (mine.config["flyte"]["task"], mine.config["flyte"]["action"]) == (
        "lineage.own_child",
        own["action"],
    )
    assert mine.notes is not None and own["action"] in mine.notes


@wandb_init(notes="my own notes", config={"flyte": "mine", "lr": 1})
@env.task
async def user_keys(lr: float) -> str:
    return str(task_run().id)


def test_user_notes_and_user_config_keys_are_never_overwritten(
    wandb_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flyteplugins.wandb"):
        run_id = run_local(user_keys, 0.5).outputs
    run = the_run(wandb_root, run_id)
    assert run.notes == "my own notes"
    assert run.config["flyte"] == "mine" and run.config["lr"] == 1
    assert "already has a 'flyte' key" in caplog.text


@wandb_init
@env.task
async def writer_into_foreign_run() -> dict[str, str]:
    return whoami()


def test_writer_into_a_run_of_another_process_adds_only_its_own_key(wandb_root: Path) -> None:
    # The parent's run lives in another process (as in a remote run): this task attaches as a
    # shared-mode writer (offline here, so its records land in a directory of its own).
    context = {"_wandb_run_id": "parent-run", "_wandb_run_project": "lin"}
    me = run_local(writer_into_foreign_run, custom_context=context).outputs
    assert me["id"] == "parent-run"
    run = the_run(wandb_root, "parent-run")
    assert writer_keys(run) == [f"flyte/{me['action']}"]
    assert run.notes is None


def remote_task_context(tmp_path: Path) -> tuple[Any, Any, Any]:
    """A remote task context (action a7 of run r42 in ml/development, org acme), an init config
    with a stand-in for the Flyte control-plane client that holds Flyte's real Console URL
    builder, and that builder. No network: the client is never asked anything."""
    from flyte._initialize import _InitConfig
    from flyte.models import ActionID, RawDataPath, TaskContext
    from flyte.remote._client.controlplane import Console
    from flyte.report import Report

    console = Console("dns:///flyte.example.com")

    class ControlPlaneClient:
        pass

    client = ControlPlaneClient()
    client.console = console  # type: ignore[attr-defined]
    action = ActionID(name="a7", run_name="r42", project="ml", domain="development", org="acme")
    tctx = TaskContext(
        action=action,
        version="v1",
        raw_data_path=RawDataPath(path=str(tmp_path)),
        output_path="s3://bucket/metadata/r42/a7",
        run_base_dir="s3://bucket/metadata/r42",
        report=Report(name="a7"),
        mode="remote",
    )
    return tctx, _InitConfig(root_dir=tmp_path, client=client), console  # type: ignore[arg-type]


def test_console_url_of_a_remote_action_comes_from_flytes_console_helper(tmp_path: Path) -> None:
    # Online-only path at the narrowest boundary: see remote_task_context.
    from flyte._context import internal_ctx
    from flyte._initialize import _InitConfig, init_config_context

    tctx, configured, console = remote_task_context(tmp_path)
    with init_config_context(configured), internal_ctx().replace_task_context(tctx):
        identity = flyte_identity("env.train")
    expected = console.action_url("ml", "development", "r42", "a7")
    assert identity is not None and identity.console_url == expected
    assert expected.startswith("https://flyte.example.com/")
    assert identity.as_entry()["url"] == expected
    assert (identity.org, identity.project, identity.domain, identity.mode) == (
        "acme",
        "ml",
        "development",
        "remote",
    )
    assert identity.notes().endswith(expected)
    # No endpoint configured: no URL, whatever the mode.
    with init_config_context(_InitConfig(root_dir=tmp_path)), internal_ctx().replace_task_context(tctx):
        identity = flyte_identity("env.train")
    assert identity is not None and identity.console_url is None


@wandb_init(project="lin")
@env.task
async def remote_owner(lr: float) -> str:
    return str(task_run().id)


def test_a_remote_tasks_run_links_back_to_its_console_page(wandb_root: Path, tmp_path: Path) -> None:
    # What runs in a task pod: the decorated task function inside a remote task context (the
    # control-plane client is the stand-in of remote_task_context; W&B is offline).
    import asyncio

    from flyte._context import internal_ctx
    from flyte._initialize import init_config_context

    tctx, configured, console = remote_task_context(tmp_path)
    with init_config_context(configured), internal_ctx().replace_task_context(tctx):
        run_id = asyncio.run(remote_owner.func(lr=0.3))
    url = console.action_url("ml", "development", "r42", "a7")
    run = the_run(wandb_root, run_id)
    assert run_id == "r42-a7"
    assert run.config["flyte"] == {
        "org": "acme",
        "project": "ml",
        "domain": "development",
        "run": "r42",
        "action": "a7",
        "task": "lineage.remote_owner",
        "attempt": 0,
        "mode": "remote",
        "url": url,
        "metadata": "s3://bucket/metadata/r42/a7",
        "inputs": {"lr": 0.3},
    }
    assert run.notes == f"Flyte action a7 of run r42 (task lineage.remote_owner): {url}"


# --- inputs ----------------------------------------------------------------------------------------


@wandb_init
@env.task
async def many_inputs(
    lr: float,
    name: str,
    flag: bool,
    color: Color,
    layers: list[int],
    opts: dict[str, int],
    big: list[int],
    data: File,
    folder: Dir,
    api_key: str,
    thing: Opaque,
) -> str:
    return str(task_run().id)


def test_inputs_are_recorded_by_kind_within_limits_and_credentials_never(
    wandb_root: Path, tmp_path: Path
) -> None:
    blob = tmp_path / "data.csv"
    blob.write_text("a,b\n")
    run_id = run_local(
        many_inputs,
        lr=0.01,
        name="x" * 300,
        flag=True,
        color=Color.RED,
        layers=[64, 32],
        opts={"depth": 3},
        big=list(range(1000)),
        data=File(path=str(blob)),
        folder=Dir(path="s3://bucket/prefix/images"),
        api_key="hunter2",
        thing=Opaque(),
    ).outputs
    run = the_run(wandb_root, run_id)
    inputs = run.config["flyte"]["inputs"]
    assert inputs["lr"] == 0.01 and inputs["flag"] is True and inputs["color"] == "red"
    assert inputs["layers"] == [64, 32] and inputs["opts"] == {"depth": 3}
    assert len(inputs["name"]) == 256 and inputs["name"].endswith("...")
    assert inputs["big"] == "<list of 1000 items>"
    assert inputs["data"] == f"file://{blob}"
    assert inputs["folder"] == "s3://bucket/prefix/images"
    assert inputs["thing"] == "<Opaque>"
    assert "api_key" not in inputs
    assert "hunter2" not in repr(run.config)


@wandb_init(log_inputs=["lr"])
@env.task
async def only_lr(lr: float, epochs: int) -> str:
    return str(task_run().id)


@wandb_init
@env.task
async def inputs_by_layers(lr: float, epochs: int) -> str:
    return str(task_run().id)


def test_log_inputs_selects_inputs_through_every_layer(
    wandb_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = run_local(only_lr, 0.1, 5).outputs
    assert the_run(wandb_root, run_id).config["flyte"]["inputs"] == {"lr": 0.1}
    # custom_context key wandb_log_inputs (what wandb_config(...) writes)
    context = dict(wandb_config(log_inputs=False))
    assert context == {"wandb_log_inputs": "false"}
    run_id = run_local(inputs_by_layers, 0.2, 6, custom_context=context).outputs
    assert "inputs" not in the_run(wandb_root, run_id).config["flyte"]
    # the environment: comma-separated names
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_LOG_INPUTS", "epochs")
    run_id = run_local(inputs_by_layers, 0.3, 7).outputs
    assert the_run(wandb_root, run_id).config["flyte"]["inputs"] == {"epochs": 7}


def test_new_settings_show_in_explain_and_travel_through_custom_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = explain().as_dict()
    assert (shown["log_inputs"], shown["log_outputs"]) == (True, False)
    config = tmp_path / "wandb.toml"
    config.write_text('log_inputs = ["lr"]\nlog_outputs = true\n')
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_CONFIG", str(config))
    explained = {f.name: f for f in explain()}
    assert explained["log_inputs"].value == ("lr",) and explained["log_inputs"].origin == f"file {config}"
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_LOG_OUTPUTS", "model,score")
    explained = {f.name: f for f in explain()}
    assert explained["log_outputs"].value == ("model", "score")
    assert explained["log_outputs"].origin == "env FLYTEPLUGINS_WANDB_LOG_OUTPUTS"
    assert "log_outputs" in str(explain())
    encoded = encode_fields(RUN, {"log_inputs": ("lr",), "log_outputs": True}, "test")
    assert encoded == {"wandb_log_inputs": '["lr"]', "wandb_log_outputs": "true"}
    assert decode_context(encoded).run == {"log_inputs": ("lr",), "log_outputs": True}
    with pytest.raises(WandbConfigError, match="log_inputs"):
        wandb_config(log_inputs=[1])  # type: ignore[list-item]


# --- outputs and their consumers -------------------------------------------------------------------


@wandb_init(log_outputs=True)
@env.task
async def train(size: int) -> Trained:
    path = Path(os.environ["LINEAGE_BLOB_DIR"]) / "model.bin"
    path.write_bytes(b"m" * size)
    return Trained(await File.from_local(str(path)), 0.75)


@wandb_init
@env.task
async def evaluate(model: File) -> str:
    get_wandb_run().log({"acc": 1.0})
    return str(task_run().id)


@wandb_init(project="lin", run_mode="new")
@env.task
async def pipeline(size: int) -> list[str]:
    trained = await train(size)
    consumer = await evaluate(trained[0])
    return [str(task_run().id), consumer]


def test_file_output_is_a_reference_artifact_and_its_consumer_records_the_use(
    wandb_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINEAGE_BLOB_DIR", str(tmp_path))
    owner_id, consumer_id = run_local(pipeline, 1000).outputs
    assert consumer_id == owner_id  # evaluate wrote into the pipeline's run (auto)
    run = the_run(wandb_root, owner_id)
    uri = f"file://{tmp_path / 'model.bin'}"
    [artifact] = run.artifacts
    assert (artifact.name, artifact.type) == (artifact_name(uri), "flyte-file")
    assert artifact.references == ((("model.bin", uri, artifact.references[0][2], 1000)),)
    trainer = next(
        v for k, v in run.config.items() if k.startswith("flyte/") and v["task"] == "lineage.train"
    )
    assert artifact.metadata["flyte_task"] == "lineage.train"
    assert artifact.metadata["flyte_action"] == trainer["action"]
    assert artifact.metadata["flyte_run"] == trainer["run"]
    assert (artifact.metadata["flyte_output"], artifact.metadata["uri"]) == ("model", uri)
    assert "train-model" in artifact.aliases
    # The other output went to the summary, under the task's namespace.
    assert run.summary["flyte/train/score"] == 0.75
    # Offline, the consumer records what it used (W&B refuses use_artifact offline).
    consumer = next(
        v for k, v in run.config.items() if k.startswith("flyte/") and v["task"] == "lineage.evaluate"
    )
    assert consumer["used"] == {"model": {"artifact": artifact.name, "uri": uri}}


class RecordingOnlineRun:
    """Stands in for an online W&B run (the W&B service is not reachable here): records what the
    consumer hands to ``use_artifact``. The narrowest boundary of the online-only path."""

    offline = False

    def __init__(self) -> None:
        self.used: list[Any] = []

    def use_artifact(self, artifact: Any) -> None:
        self.used.append(artifact)


def test_online_consumer_uses_the_producers_artifact_version_without_a_lookup(
    wandb_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINEAGE_BLOB_DIR", str(tmp_path))
    owner_id, _ = run_local(pipeline, 10).outputs
    [logged] = the_run(wandb_root, owner_id).artifacts
    model = File(path=str(tmp_path / "model.bin"))
    consumer = plan_lineage(FlyteIdentity("r", "a9", "lineage.evaluate"), {"model": model}, True, label="a9")
    online = RecordingOnlineRun()
    assert use_artifacts(online, consumer.uses) == 1
    [used] = online.used
    # Same name and same manifest digest as what the producer logged: W&B resolves it to the
    # producer's version (artifacts are versioned by digest), with no name lookup first.
    assert (used.name, used.type, used.digest) == (logged.name, "flyte-file", logged.digest)
    assert [e.ref for e in used.manifest.entries.values()] == [f"file://{tmp_path / 'model.bin'}"]
    # A run never uses what it logged itself (a sibling task writing into the same run).
    from flyteplugins.wandb._lineage import OutputsPlan, log_output_plan

    class OnlineRunThatLogs(RecordingOnlineRun):
        id = "shared-run"

        def log_artifact(self, artifact: Any, aliases: list[str]) -> None:
            pass

    shared = OnlineRunThatLogs()
    log_output_plan(shared, OutputsPlan(artifacts=(("o0", consumer.uses[0]),)), "lineage.train")
    assert use_artifacts(shared, consumer.uses) == 0 and shared.used == []
    # Offline runs (and user mocks without a real "offline" flag) never call use_artifact.
    assert use_artifacts(type("OfflineRun", (), {"offline": True})(), consumer.uses) == 0


@wandb_init(log_outputs=True)
@env.task
async def big_output(size: int) -> File:
    path = Path(os.environ["LINEAGE_BLOB_DIR"]) / "weights.bin"
    with open(path, "wb") as f:
        f.write(b"FLYTE-BLOB-MARKER")
        f.truncate(size)
    return await File.from_local(str(path))


def test_reference_artifact_copies_no_blob_bytes(
    wandb_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Everything wandb writes (run folders, artifact staging and cache) goes under tmp_path/w.
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    for var, sub in (("WANDB_DATA_DIR", "data"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_ARTIFACT_DIR", "art")):
        monkeypatch.setenv(var, str(tmp_path / "w" / sub))
    monkeypatch.setenv("LINEAGE_BLOB_DIR", str(blobs))
    size = 8 * 1024 * 1024
    run_local(big_output, size)
    [run] = runs(wandb_root)
    [artifact] = run.artifacts
    [(_, ref, digest, recorded_size)] = artifact.references
    assert ref == f"file://{blobs / 'weights.bin'}" and recorded_size == size
    # The digest is the path's, not the content's: the bytes were never read.
    import base64
    import hashlib

    path_digest = base64.b64encode(
        hashlib.md5((blobs / "weights.bin").resolve().as_uri().encode()).digest()
    ).decode()
    assert digest == path_digest
    # And nothing anywhere holds a copy of them.
    for root in (wandb_root, tmp_path / "w"):
        for path in root.rglob("*") if root.exists() else ():
            if path.is_file():
                assert path.stat().st_size < size, path
                assert b"FLYTE-BLOB-MARKER" not in path.read_bytes(), path


# --- bad input and W&B failures ---------------------------------------------------------------------


def test_log_outputs_naming_no_output_fails_at_decoration() -> None:
    with pytest.raises(WandbConfigError) as info:

        @wandb_init(log_outputs=["nope"])
        @env.task
        async def produce() -> Trained:
            raise AssertionError("never runs")

    message = str(info.value)
    assert "lineage.produce" in message and "model, score" in message and "nope" in message


@wandb_init(log_outputs=True)
@env.task
async def refused_output() -> File:
    # W&B refuses: the run is finished before the outputs are logged.
    task_run().finish()
    return File(path="s3://bucket/model.pt")


@wandb_init(log_outputs=True)
@env.task
async def unreferenceable_outputs() -> tuple[Dir, File, int]:
    # The Dir's local path does not exist; the File has no path at all.
    return Dir(path="/nonexistent/folder"), File(path=""), 7


def lineage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("lineage:")]


def test_an_artifact_refused_by_wandb_is_one_warning_and_the_result_is_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="flyteplugins.wandb"):
        result = run_local(refused_output)
    assert result.outputs.path == "s3://bucket/model.pt"
    [warning] = lineage_warnings(caplog)
    assert "'o0'" in warning and "lineage.refused_output" in warning and "result is kept" in warning


def test_each_output_that_cannot_be_referenced_is_one_warning_naming_it(
    wandb_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flyteplugins.wandb"):
        result = run_local(unreferenceable_outputs)
    assert result.outputs.path == "/nonexistent/folder"
    warnings = lineage_warnings(caplog)
    assert len(warnings) == 2, warnings
    assert "'o0'" in warnings[1] and "'o1'" in warnings[0], warnings
    [run] = runs(wandb_root)
    assert run.artifacts == [] and run.summary["flyte/unreferenceable_outputs/o2"] == 7


def test_object_store_references_need_no_cloud_sdk() -> None:
    # boto3 / google-cloud-storage are not installed here: the reference is still built, with
    # the entry wandb itself makes for checksum=False (digest = URI), and no network call.
    for uri in (
        "s3://bucket/run/model.pt",
        "gs://bucket/run/model.pt",
        "abfs://c@acct.dfs.core.windows.net/m.pt",
    ):
        artifact = _build_artifact(ArtifactSpec.for_blob(uri, "file"))
        [entry] = artifact.manifest.entries.values()
        assert (entry.ref, entry.digest, entry.path) == (uri, uri, "model.pt" if "run" in uri else "m.pt")


# --- who logs outputs, and the command line ---------------------------------------------------------


@env.task
async def decide_outputs(owner: bool, rank: str) -> list[bool]:
    """Inside a real task context: whether a writer of a distributed run would log outputs."""
    from flyteplugins.wandb._codec import RunIdentity
    from flyteplugins.wandb._layers import resolve
    from flyteplugins.wandb._lineage import TaskLineage
    from flyteplugins.wandb._run import RunScope, TaskRunPlan

    os.environ.update(RANK=rank, WORLD_SIZE="2")
    try:
        shared = {"mode": "shared", "x_primary": owner, "x_label": f"rank-{rank}"}
        plan = TaskRunPlan("init", RunIdentity("job"), {}, shared, owner=owner, finishes=True)
        lineage = TaskLineage("lineage.train", "train", [], ["model"])
        call = lineage.prepare(RunScope(plan, resolve("run", context={"wandb_log_outputs": "true"})), (), {})
        assert call is not None
        return [call.wants_outputs, call.plan.key == ("flyte" if owner else f"flyte/rank-{rank}")]
    finally:
        for var in ("RANK", "WORLD_SIZE"):
            os.environ.pop(var, None)


def test_in_distributed_training_only_the_run_owner_logs_outputs() -> None:
    assert run_local(decide_outputs, True, "0").outputs == [True, True]
    assert run_local(decide_outputs, False, "1").outputs == [False, True]


def test_flyte_wandb_explain_shows_the_lineage_settings() -> None:
    from click.testing import CliRunner

    from flyteplugins.wandb._cli import wandb_group

    result = CliRunner().invoke(
        wandb_group,
        ["explain", "-c", 'log_inputs=["lr"]', "-c", "wandb_log_outputs=true"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0
    rows = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert "['lr']" in rows["log_inputs"] and "custom_context key wandb_log_inputs" in rows["log_inputs"]
    assert "True" in rows["log_outputs"] and "custom_context key wandb_log_outputs" in rows["log_outputs"]
    bad = CliRunner().invoke(wandb_group, ["explain", "-c", "log_outputs=[1]"])
    assert bad.exit_code == 2 and "log_outputs" in bad.output


def test_only_flytes_own_types_are_recorded_by_uri() -> None:
    from flyte.io import DataFrame

    from flyteplugins.wandb._lineage import describe_value

    class File:  # a user's class that happens to share a name with Flyte's
        path = "/secret/place"

    class UserFrame:
        uri = "s3://not/a/flyte/frame"

    UserFrame.__name__ = "DataFrame"
    assert describe_value(DataFrame(uri="s3://bucket/frame.parquet")) == "s3://bucket/frame.parquet"
    assert describe_value(DataFrame()) == "<DataFrame>"
    assert describe_value(File()) == "<File>"
    assert describe_value(UserFrame()) == "<DataFrame>"
    assert plan_lineage(FlyteIdentity("r", "a", "t"), {"f": File()}, True).uses == ()


def test_a_remote_tasks_local_path_is_not_referenced_but_its_flyte_storage_is() -> None:
    # In a remote task, Flyte uploads a File returned with a pod-local path after the task: that
    # path is not the blob. A path inside the task's raw data path (Flyte's own, shared storage) is.
    from flyteplugins.wandb._lineage import plan_outputs

    remote = FlyteIdentity("r", "a0", "env.train", mode="remote", raw_data_path="/mnt/flyte/raw")
    outputs = {
        "scratch": File(path="/tmp/model.pt"),
        "stored": File(path="/mnt/flyte/raw/ab/model.pt"),
        "uploaded": File(path="s3://bucket/ab/model.pt"),
    }
    plan = plan_outputs(remote, "train", outputs, True)
    assert plan.unreferenceable == ("scratch",)
    assert [name for name, _ in plan.artifacts] == ["stored", "uploaded"]
    local = plan_outputs(
        FlyteIdentity("r", "a0", "env.train"), "train", {"scratch": outputs["scratch"]}, True
    )
    assert [name for name, _ in local.artifacts] == ["scratch"]
