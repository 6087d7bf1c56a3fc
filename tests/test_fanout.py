"""Fan-outs grouped in W&B: a child's own run names its parent's run (group, job_type, parent_run).

Real local Flyte runs with real offline wandb; what reached W&B is read back from each child's
transaction log (``_offline.py``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import flyte
import pytest
from conftest import run_local, task_run

from flyteplugins.wandb import get_wandb_run, wandb_config, wandb_init, wandb_sweep
from flyteplugins.wandb._fanout import plan_fanout_identity, with_fanout_identity
from flyteplugins.wandb._fanout_channel import DIGESTS_DIR, collect_digests
from flyteplugins.wandb._layers import resolve
from flyteplugins.wandb._offline import OfflineRun, find_offline_run_dirs, read_offline_run
from flyteplugins.wandb._run import plan_task_run

env = flyte.TaskEnvironment(name="fan")


def the_run(root: Path, run_id: str) -> OfflineRun:
    dirs = find_offline_run_dirs(root, run_id)
    assert len(dirs) == 1, dirs
    return read_offline_run(dirs[0], wait=15)


def me() -> dict[str, str]:
    ctx = flyte.ctx()
    assert ctx is not None
    return {"action": ctx.action.name, "id": str(task_run().id)}


@wandb_init(run_mode="new")
@env.task
async def trial(lr: float) -> dict[str, str]:
    task_run().log({"loss": lr})
    return me()


@wandb_init(run_mode="new", group="mine", job_type="sweep-trial")
@env.task
async def own_names(lr: float) -> dict[str, str]:
    return me()


@wandb_init
@env.task
async def attached(lr: float) -> dict[str, str]:
    return me()


@wandb_init(project="fan")
@env.task
async def fan_out(lrs: list[float]) -> list[dict[str, str]]:
    kids = await asyncio.gather(*(trial(lr) for lr in lrs), own_names(0.5), attached(0.7))
    return [me(), *kids]


@pytest.mark.smoke
def test_children_with_runs_of_their_own_are_grouped_under_the_parents_run(wandb_root: Path) -> None:
    parent, *kids = run_local(fan_out, [0.1, 0.01]).outputs
    *trials, own, att = kids
    for kid in trials:
        run = the_run(wandb_root, kid["id"])
        assert run.group == parent["id"]
        assert run.job_type == "fan.trial"
        assert run.config["flyte"]["parent_run"] == parent["id"]
        assert run.config["flyte"]["action"] == kid["action"]
    # The user's own group and job type win; the parent is still recorded.
    run = the_run(wandb_root, own["id"])
    assert (run.group, run.job_type) == ("mine", "sweep-trial")
    assert run.config["flyte"]["parent_run"] == parent["id"]
    # A child writing into its parent's run is no fan-out child: the parent's run is untouched.
    assert att["id"] == parent["id"]
    owner = the_run(wandb_root, parent["id"])
    assert owner.group is None and owner.job_type is None
    assert "parent_run" not in owner.config["flyte"]


@wandb_init(run_mode="new")
@env.task
async def lonely() -> dict[str, str]:
    return me()


def test_a_run_without_a_parent_run_gets_no_group(wandb_root: Path) -> None:
    kid = run_local(lonely).outputs
    run = the_run(wandb_root, kid["id"])
    assert run.group is None and run.job_type is None
    assert "parent_run" not in run.config["flyte"]


def test_a_group_from_any_layer_wins_over_the_fan_out_default() -> None:
    context = {"_wandb_run_id": "r-a0", "wandb_run_mode": "new", "wandb_group": "from-context"}
    resolved = resolve(context=context, use_current_context=False)
    plan = with_fanout_identity(
        plan_task_run(resolved, run_name="r", action_name="a1", remote=False), resolved, "t"
    )
    assert plan.init_kwargs["group"] == "from-context"
    assert plan.init_kwargs["job_type"] == "t"
    assert plan.parent_run == "r-a0"
    with wandb_config(job_type="jt"):
        resolved = resolve(context={"_wandb_run_id": "r-a0", "wandb_run_mode": "new"})
    plan = with_fanout_identity(
        plan_task_run(resolved, run_name="r", action_name="a1", remote=False), resolved, "t"
    )
    assert (plan.init_kwargs["group"], plan.init_kwargs["job_type"]) == ("r-a0", "jt")


def test_a_distributed_task_keeps_the_group_its_ranks_share() -> None:
    from flyteplugins.wandb._distributed import DistributedInfo

    context = {"_wandb_run_id": "r-a0", "wandb_run_mode": "new"}
    resolved = resolve(context=context, use_current_context=False)
    info = DistributedInfo(
        rank=0, local_rank=0, world_size=2, local_world_size=2, worker_index=0, num_workers=1
    )
    plan = plan_task_run(resolved, run_name="r", action_name="a1", remote=False, distributed=info)
    group = plan.init_kwargs["group"]
    plan = with_fanout_identity(plan, resolved, "env.ddp")
    # The ranks' group is what the task's link opens: the fan-out parent goes to job_type/parent_run.
    assert plan.init_kwargs["group"] == group != "r-a0"
    assert (plan.init_kwargs["job_type"], plan.parent_run) == ("env.ddp", "r-a0")
    # One run for all ranks (auto): no computed group, so it is grouped under the parent's run.
    resolved = resolve(context={"_wandb_run_id": "r-a0"}, use_current_context=False)
    plan = plan_task_run(resolved, run_name="r", action_name="a1", remote=False, distributed=info)
    plan = with_fanout_identity(plan, resolved, "env.ddp")
    assert (plan.init_kwargs["group"], plan.parent_run) == ("r-a0", "r-a0")


@pytest.mark.parametrize(
    ("parent", "own", "expected"),
    [
        (None, "c", (None, None, None)),
        ("p", "p", (None, None, None)),
        ("p" * 200, "c", ("p" * 128, "t", "p" * 200)),
    ],
)
def test_plan_fanout_identity(parent: str | None, own: str, expected: tuple[str | None, ...]) -> None:
    fan = plan_fanout_identity(parent_run_id=parent, own_run_id=own, task_name="t")
    assert (fan.group, fan.job_type, fan.parent_run) == expected


# --- the channel: children's digests in the parent's report tab ----------------------------------

report_env = flyte.TaskEnvironment(name="fanrep")


@wandb_init(run_mode="new")
@report_env.task
async def learner(lr: float, steps: int) -> float:
    run = get_wandb_run()
    for step in range(steps):
        run.log({"train/loss": lr * (steps - step), "acc": step / steps})
    if lr < 0:
        raise ValueError("negative learning rate")
    return lr


@wandb_init(project="fan", entity="team")
@report_env.task(report=True)
async def compare_parent(lrs: list[float]) -> str:
    results = await asyncio.gather(*(learner(lr, 20) for lr in lrs), return_exceptions=True)
    assert any(isinstance(r, Exception) for r in results) == any(lr < 0 for lr in lrs)
    return str(task_run().id)


@wandb_init(project="fan")
@report_env.task
async def quiet_parent(lrs: list[float]) -> str:
    await asyncio.gather(*(learner(lr, 5) for lr in lrs))
    return str(task_run().id)


@wandb_init(project="fan", report_tab=False)
@report_env.task(report=True)
async def tabless_parent(lrs: list[float]) -> str:
    await asyncio.gather(*(learner(lr, 5) for lr in lrs))
    return str(task_run().id)


def _local(task: object, *args: object) -> tuple[object, Path]:
    if not _compat_initialized():
        flyte.init()
    run = flyte.with_runcontext(mode="local").run(task, *args)
    return run.outputs()[0] if isinstance(run.outputs(), tuple) else run.outputs(), Path(run.url)


def _compat_initialized() -> bool:
    from flyteplugins.wandb import _compat

    return _compat.flyte_initialized()


def _report_of(root: Path, task: str) -> str:
    for path in root.rglob("report.html"):
        page = path.read_text()
        if f"<td>{task}</td>" in page:
            return page
    raise AssertionError(f"no report of {task} under {root}")


@pytest.mark.smoke
def test_the_parents_tab_compares_the_runs_its_children_started(wandb_root: Path) -> None:
    parent_id, root = _local(compare_parent, [0.1, 0.01, -1.0])
    folders = list(root.rglob(f"{DIGESTS_DIR}/*"))
    assert [f.name for f in folders] == [parent_id]
    collected = collect_digests(str(folders[0].parent.parent), str(parent_id))
    assert len(collected.digests) == 3 and not collected.missing
    by_lr = {d.inputs["lr"]: d for d in collected.digests}
    assert {lr: d.state for lr, d in by_lr.items()} == {0.1: "finished", 0.01: "finished", -1.0: "failed"}
    for lr, digest in by_lr.items():
        # The digest is what the child logged, read back from its own run's log.
        assert digest.final("train/loss") == pytest.approx(lr * 1)
        series = digest.series_of("train/loss")
        assert series is not None and series.logged == 20
        assert max(series.ys) == pytest.approx(max(lr * 20, lr)) and min(series.ys) == pytest.approx(
            min(lr * 20, lr)
        )
        assert (digest.parent_run_id, digest.group, digest.job_type) == (
            parent_id,
            parent_id,
            "fanrep.learner",
        )
    page = _report_of(root, "fanrep.compare_parent")
    assert "Runs of this task&#x27;s children" in page
    for digest in collected.digests:
        # One table row and one legend entry per child run.
        assert (
            page.count(f'<tr data-run-id="{digest.run_id}"')
            + page.count(f'<tr class="fw-best" data-run-id="{digest.run_id}"')
            == 1
        )
    # The W&B group page of the siblings, as the parent's run names it.
    assert f'href="https://wandb.ai/team/fan/groups/{parent_id}"' in page


def test_a_parent_without_a_tab_makes_its_children_write_nothing(wandb_root: Path) -> None:
    parent_id, root = _local(quiet_parent, [0.1, 0.2])
    assert parent_id
    # No tab draws a comparison: the children write no marker and no digest.
    assert not list(root.rglob(DIGESTS_DIR))


def test_a_parent_whose_wandb_tab_is_off_makes_its_children_write_nothing(wandb_root: Path) -> None:
    parent_id, root = _local(tabless_parent, [0.1, 0.2])
    assert parent_id
    # report_tab=False drops the W&B tab, so nothing would read a comparison.
    assert not list(root.rglob(DIGESTS_DIR))


def test_children_without_a_readable_digest_are_rows_that_say_why(tmp_path: Path) -> None:
    from flyteplugins.wandb._digest import RunDigest
    from flyteplugins.wandb._fanout_channel import StartMarker, digests_folder

    folder = Path(digests_folder(str(tmp_path), "r-a0"))
    folder.mkdir(parents=True)
    (folder / "a1.started").write_text(StartMarker("env.train", "a1", "r-a1").to_json())
    (folder / "a1.json").write_text(
        RunDigest("r-a1", task="env.train", action="a1", state="finished").to_json()
    )
    # a2 started its run and was killed before its end: a marker and nothing else.
    (folder / "a2.started").write_text(StartMarker("env.train", "a2", "r-a2").to_json())
    # a3's digest was cut short while it was written; a4's comes from a newer plugin.
    (folder / "a3.started").write_text(StartMarker("env.train", "a3", "r-a3").to_json())
    (folder / "a3.json").write_text(RunDigest("r-a3").to_json()[:20])
    (folder / "a4.json").write_text('{"format": 99, "run_id": "r-a4"}')
    (folder / "notes.txt").write_text("not ours")
    collected = collect_digests(str(tmp_path), "r-a0")
    assert [d.run_id for d in collected.digests] == ["r-a1"]
    missing = {marker.action: (marker.task, reason) for marker, reason in collected.missing}
    assert missing["a2"] == ("env.train", "no digest: the task failed or was stopped before its run ended")
    assert missing["a3"][0] == "env.train" and "could not be read" in missing["a3"][1]
    assert missing["a4"][0] is None and "newer" in missing["a4"][1]
    assert set(missing) == {"a2", "a3", "a4"}


def test_reading_the_channel_never_raises() -> None:
    # A storage path that cannot be listed (a file where the folder should be): a note, no error.
    collected = collect_digests("/dev/null", "r-a0")
    assert collected.digests == () and collected.missing == ()
    assert collected.notes and "could not be read" in collected.notes[0]


HOSTILE = "<script>alert(1)</script>"


@wandb_init(run_mode="new")
@report_env.task
async def hostile_child(label: str, db_password: str) -> str:
    run = task_run()
    run.config.update({"api_key": "k-123", "nested": {"client_secret": "s-456", "ok": 1}})
    for step in range(3):
        run.log({'<img src=x onerror="alert(2)">': float(step), "loss": 1.0 / (step + 1)})
    return label


@wandb_init(project="fan")
@report_env.task(report=True)
async def hostile_parent() -> str:
    await asyncio.gather(hostile_child(HOSTILE, "hunter2"), hostile_child("plain", "hunter2"))
    return str(task_run().id)


def test_hostile_inputs_and_metric_names_are_escaped_and_no_secret_travels(wandb_root: Path) -> None:
    _, root = _local(hostile_parent)
    texts = [p.read_text() for p in root.rglob(f"{DIGESTS_DIR}/*/*.json")]
    assert len(texts) == 2
    for text in texts:
        for secret in ("hunter2", "k-123", "s-456", "db_password", "api_key"):
            assert secret not in text
    page = _report_of(root, "fanrep.hostile_parent")
    section = page[page.index("Runs of this task&#x27;s children") :]
    assert "<script>alert(1)" not in section and "<img src=x" not in section
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section
    assert "&lt;img src=x" in section
    assert "hunter2" not in page and "k-123" not in page


# --- a @wandb_sweep parent: its sweep's metric ranks the children ------------------------------


@pytest.fixture
def fake_sweep_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """The W&B sweep service is out of reach: wandb.sweep (its registration call) returns an id."""
    import wandb

    monkeypatch.setattr(wandb, "sweep", lambda sweep, entity=None, project=None, prior_runs=None: "sw1")


@wandb_init(project="fan")
@wandb_sweep(method="grid", metric={"name": "acc", "goal": "minimize"}, parameters={"lr": {"values": [1]}})
@report_env.task(report=True)
async def sweep_parent(lrs: list[float]) -> str:
    await asyncio.gather(*(learner(lr, 4) for lr in lrs))
    return str(task_run().id)


def test_a_sweep_parent_ranks_its_children_by_the_sweeps_metric(
    wandb_root: Path, fake_sweep_service: None
) -> None:
    _, root = _local(sweep_parent, [0.1, 0.2])
    page = _report_of(root, "fanrep.sweep_parent")
    section = page[page.index("Runs of this task&#x27;s children") :]
    # Without the sweep's metric the first shared metric (acc) would be maximized.
    assert "Objective: acc, minimized (sweep metric)" in section


def test_a_storage_that_stalls_costs_the_parent_at_most_the_bound(tmp_path: Path) -> None:
    import os
    import time

    from flyteplugins.wandb._fanout_channel import digests_folder

    folder = Path(digests_folder(str(tmp_path), "r-a0"))
    folder.mkdir(parents=True)
    # A named pipe nobody writes to: reading it blocks, as a storage that never answers does.
    os.mkfifo(folder / "a1.json")
    start = time.monotonic()
    collected = collect_digests(str(tmp_path), "r-a0", seconds=0.5)
    assert time.monotonic() - start < 2.0
    assert collected.digests == () and "could not be read" in collected.notes[0]
    # Let the reader left behind finish: a writer opens the pipe and closes it (end of file).
    os.close(os.open(folder / "a1.json", os.O_WRONLY | os.O_NONBLOCK))


def test_the_children_are_listed_in_the_order_they_started(tmp_path: Path) -> None:
    from flyteplugins.wandb._digest import RunDigest
    from flyteplugins.wandb._fanout_channel import StartMarker, digests_folder

    folder = Path(digests_folder(str(tmp_path), "r-a0"))
    folder.mkdir(parents=True)
    for action, started in (("zz", 1.0), ("aa", 3.0), ("mm", 2.0)):
        (folder / f"{action}.started").write_text(
            StartMarker("t", action, f"r-{action}", 0, started).to_json()
        )
        (folder / f"{action}.json").write_text(RunDigest(f"r-{action}", action=action).to_json())
    assert [d.action for d in collect_digests(str(tmp_path), "r-a0").digests] == ["zz", "mm", "aa"]


@wandb_init(project="fan")
@report_env.task(report=True)
async def map_parent(lrs: list[float]) -> str:
    async for _ in flyte.map.aio(learner, lrs, [3] * len(lrs)):
        pass
    return str(task_run().id)


def test_a_flyte_map_fan_out_is_grouped_and_compared(wandb_root: Path) -> None:
    parent_id, root = _local(map_parent, [0.5, 0.25, 0.125])
    collected = collect_digests(str(next(root.rglob(DIGESTS_DIR)).parent), str(parent_id))
    assert sorted(d.inputs["lr"] for d in collected.digests) == [0.125, 0.25, 0.5]
    assert {(d.group, d.parent_run_id) for d in collected.digests} == {(parent_id, parent_id)}
    page = _report_of(root, "fanrep.map_parent")
    section = page[page.index("Runs of this task&#x27;s children") :]
    for digest in collected.digests:
        assert f'data-run-id="{digest.run_id}"' in section


def test_a_fan_out_under_a_mocked_wandb_init_still_runs(caplog: pytest.LogCaptureFixture) -> None:
    # A user's test suite replaces wandb.init: every run is the mock; the fan-out must still work
    # and say nothing alarming (no run folder to digest, nothing written).
    import logging
    from unittest import mock

    with mock.patch("wandb.init") as init, caplog.at_level(logging.WARNING, logger="flyteplugins.wandb"):
        init.return_value.id = "mocked"
        _, root = _local(compare_parent, [0.1, 0.2])
    assert init.call_count == 3
    assert {call.kwargs.get("group") for call in init.call_args_list} == {None, "mocked"}
    assert not list(root.rglob(f"{DIGESTS_DIR}/*/*.json"))
    assert "fan-out" not in caplog.text


@wandb_init(run_mode="new")
@report_env.task
async def odd_child(kind: str) -> str:
    run = task_run()
    if kind == "diverged":
        for value in (1.0, 0.5, float("nan"), float("inf")):
            run.log({"loss": value})
    elif kind == "words":
        run.log({"note": "no numbers here"})
    elif kind == "other":
        run.log({"reward": 3.0})
    return kind


@wandb_init(project="fan")
@report_env.task(report=True)
async def odd_parent() -> str:
    await asyncio.gather(*(odd_child(k) for k in ("diverged", "words", "other")))
    return str(task_run().id)


def test_children_with_non_finite_no_or_disjoint_metrics_are_compared_as_far_as_they_go(
    wandb_root: Path,
) -> None:
    parent_id, root = _local(odd_parent)
    collected = collect_digests(str(next(root.rglob(DIGESTS_DIR)).parent), str(parent_id))
    by_kind = {d.inputs["kind"]: d for d in collected.digests}
    assert set(by_kind) == {"diverged", "words", "other"}
    loss = by_kind["diverged"].series_of("loss")
    assert loss is not None and loss.ys == (1.0, 0.5) and loss.skipped == 2
    assert by_kind["words"].series == ()
    page = _report_of(root, "fanrep.odd_parent")
    section = page[page.index("Runs of this task&#x27;s children") :]
    # Every child is a row, whatever it logged.
    for digest in collected.digests:
        assert f'data-run-id="{digest.run_id}"' in section
    # ... and the page says what it skipped: a run without numbers, values not drawn.
    assert f"Run {by_kind['words'].run_id}: no numeric metrics" in section
    assert f"Run {by_kind['diverged'].run_id}: 2 logged values not drawn" in section
