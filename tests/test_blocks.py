"""``wandb_config`` / ``wandb_sweep_config`` blocks: only what is passed is set, nesting and restore,
one object reused concurrently, immutability, and how blocks reach tasks (as a run's
``custom_context``, inside a task around child calls, and around local runs)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import flyte
import pytest
from conftest import run_local

from flyteplugins.wandb import (
    WandbConfig,
    get_wandb_context,
    get_wandb_sweep_context,
    wandb_config,
    wandb_sweep_config,
)
from flyteplugins.wandb._layers import blocks, resolve

env = flyte.TaskEnvironment(name="test_blocks")


@pytest.fixture(autouse=True)
def no_env_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    # No run is started here; without the sandbox's WANDB_MODE the settings a task sees are the
    # blocks' alone.
    monkeypatch.delenv("WANDB_MODE", raising=False)


def current(name: str) -> Any:
    return resolve(context={}).get(name)


def test_block_sets_only_the_fields_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_RUN_MODE", "new")
    monkeypatch.setenv("FLYTEPLUGINS_WANDB_DOWNLOAD_LOGS", "true")
    with wandb_config(rank_scope="worker"), wandb_config(project="x"):
        resolved = resolve(context={})
        assert resolved.get("project") == "x"
        assert (resolved.get("run_mode"), resolved.origin("run_mode")) == (
            "new",
            "env FLYTEPLUGINS_WANDB_RUN_MODE",
        )
        assert (resolved.get("download_logs"), resolved.origin("download_logs")) == (
            True,
            "env FLYTEPLUGINS_WANDB_DOWNLOAD_LOGS",
        )
        assert resolved.get("rank_scope") == "worker"
    context = {"wandb_run_mode": "shared"}
    with wandb_config(project="x"):
        assert resolve(context=context).get("run_mode") == "shared"


def test_nested_blocks_override_inner_first_and_restore_outer() -> None:
    with wandb_config(project="outer", entity="team"):
        assert (current("project"), current("entity")) == ("outer", "team")
        with wandb_config(project="inner", tags=["t"]):
            assert (current("project"), current("entity"), current("tags")) == ("inner", "team", ("t",))
        assert (current("project"), current("tags")) == ("outer", None)
    assert current("project") is None


def test_config_dicts_merge_key_by_key_across_blocks() -> None:
    with wandb_config(config={"lr": 0.1, "epochs": 3}), wandb_config(config={"lr": 0.2}):
        assert current("config") == {"lr": 0.2, "epochs": 3}


def test_exit_restores_even_when_the_body_raises() -> None:
    cfg = wandb_config(project="boom")
    with pytest.raises(KeyError), wandb_config(project="outer"), cfg:
        raise KeyError("x")
    assert current("project") is None
    assert blocks() == ()
    with cfg:  # still usable afterwards
        assert current("project") == "boom"


def test_same_block_nested_in_itself() -> None:
    cfg = wandb_config(project="same")
    with cfg:
        with cfg:
            assert len(blocks()) == 2
            assert current("project") == "same"
        assert len(blocks()) == 1
    assert blocks() == ()


async def test_same_block_entered_by_concurrent_asyncio_tasks() -> None:
    cfg = wandb_config(project="shared")
    seen: list[tuple[int, int, int, Any]] = []

    async def worker(i: int) -> None:
        await asyncio.sleep(0.001 * (i % 3))
        with cfg:
            await asyncio.sleep(0.002)
            with cfg:
                await asyncio.sleep(0.001 * (5 - i % 5))
                seen.append((i, 2, len(blocks()), current("project")))
            await asyncio.sleep(0.001 * (i % 2))
            seen.append((i, 1, len(blocks()), current("project")))
        seen.append((i, 0, len(blocks()), current("project")))

    await asyncio.gather(*(worker(i) for i in range(12)))
    assert sorted(seen) == sorted(
        (i, depth, depth, "shared" if depth else None) for i in range(12) for depth in (0, 1, 2)
    )
    assert blocks() == ()


async def test_blocks_are_isolated_between_asyncio_tasks() -> None:
    inside = asyncio.Event()
    checked = asyncio.Event()

    async def in_block() -> Any:
        with wandb_config(project="mine"):
            inside.set()
            await checked.wait()
            return current("project")

    async def outside() -> Any:
        await inside.wait()
        project = current("project")
        checked.set()
        return project

    assert await asyncio.gather(in_block(), outside()) == ["mine", None]


def test_same_block_entered_by_threads() -> None:
    cfg = wandb_config(project="threads")
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker() -> None:
        try:
            start.wait()
            for _ in range(100):
                with cfg:
                    assert current("project") == "threads"
                    with cfg:
                        assert len(blocks()) == 2
                assert blocks() == ()
        except BaseException as exc:  # reported below, with the thread's own assertion
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert blocks() == ()


def test_blocks_are_immutable() -> None:
    cfg = wandb_config(project="p", tags=["a"])
    with pytest.raises(TypeError):
        cfg.update(project="q")
    with pytest.raises(TypeError):
        cfg["wandb_project"] = "q"  # type: ignore[index]
    with pytest.raises(TypeError):
        cfg.project = "q"
    with pytest.raises(TypeError):
        del cfg["wandb_project"]  # type: ignore[attr-defined]
    sweep = wandb_sweep_config(method="grid")
    with pytest.raises(TypeError):
        sweep.update(method="random")
    assert dict(cfg) == {"wandb_project": "p", "wandb_tags": '["a"]'}
    assert cfg.project == "p"
    assert cfg.tags == ("a",)
    assert cfg.entity is None


def test_block_reads_as_a_mapping_of_its_context_entries() -> None:
    cfg = wandb_config(project="p", download_logs=True, notes="n", save_code=True)
    assert isinstance(cfg, WandbConfig)
    assert dict(cfg) == {
        "wandb_project": "p",
        "wandb_download_logs": "true",
        "wandb_notes": "n",
        "wandb_kwargs": '{"save_code": true}',
    }
    assert cfg.to_dict() == dict(cfg)
    assert {**cfg} == dict(cfg)
    assert cfg == wandb_config(project="p", download_logs=True, notes="n", save_code=True)
    assert not wandb_config()


def test_sweep_block_sets_sweep_settings_only() -> None:
    with wandb_sweep_config(method="grid", project="sweeps"):
        assert resolve("sweep", context={}).get("method") == "grid"
        assert resolve("sweep", context={}).get("project") == "sweeps"
        assert current("project") is None
        assert get_wandb_sweep_context().method == "grid"
    assert resolve("sweep", context={}).get("method") is None


# --- blocks and Flyte tasks ---------------------------------------------------------------------


@env.task
async def child_settings() -> dict[str, str]:
    return dict(get_wandb_context())


@env.task
async def parent_with_blocks() -> list[dict[str, str]]:
    results = [await child_settings()]
    with wandb_config(project="inner", run_mode="new"):
        results.append(await child_settings())
        with wandb_config(tags=["deep"]):
            results.append(await child_settings())
    try:
        with wandb_config(project="raised"):
            raise ValueError("fails inside the block")
    except ValueError:
        pass
    results.append(await child_settings())
    return results


def test_block_inside_a_task_reaches_child_tasks_and_is_undone() -> None:
    outer = wandb_config(project="outer", entity="team")
    before, inner, deep, after = run_local(parent_with_blocks, custom_context=dict(outer)).outputs
    assert before == {"wandb_project": "outer", "wandb_entity": "team"}
    assert inner == {"wandb_project": "inner", "wandb_entity": "team", "wandb_run_mode": "new"}
    assert deep == {
        "wandb_project": "inner",
        "wandb_entity": "team",
        "wandb_run_mode": "new",
        "wandb_tags": '["deep"]',
    }
    assert after == before


@env.task
async def concurrent_blocks_parent() -> list[dict[str, str]]:
    shared = wandb_config(run_mode="new")

    async def call(i: int) -> dict[str, str]:
        await asyncio.sleep(0.005 * (3 - i))
        with shared, wandb_config(project=f"p{i}"):
            await asyncio.sleep(0.005 * i)
            return await child_settings()

    return list(await asyncio.gather(*(call(i) for i in range(4))))


def test_same_block_in_concurrent_child_calls_inside_a_task() -> None:
    results = run_local(concurrent_blocks_parent).outputs
    assert results == [{"wandb_project": f"p{i}", "wandb_run_mode": "new"} for i in range(4)]


def test_block_as_run_custom_context() -> None:
    if not flyte._initialize.is_initialized():
        flyte.init()
    cfg = wandb_config(project="2024", tags=["a", "b"], download_logs=False)
    run = flyte.with_runcontext(mode="local", custom_context=cfg).run(child_settings)
    assert run.outputs()[0] == {
        "wandb_project": "2024",
        "wandb_tags": '["a", "b"]',
        "wandb_download_logs": "false",
    }


def test_block_outside_any_task_applies_to_local_runs_started_in_it() -> None:
    with wandb_config(project="around", entity="team"):
        assert run_local(child_settings).outputs == {"wandb_project": "around", "wandb_entity": "team"}
    assert run_local(child_settings).outputs == {}


def test_block_outside_any_task_layers_over_the_run_context() -> None:
    with wandb_config(entity="from-block"):
        result = run_local(
            child_settings, custom_context=dict(wandb_config(project="from-run", entity="ctx"))
        )
    assert result.outputs == {"wandb_project": "from-run", "wandb_entity": "from-block"}
