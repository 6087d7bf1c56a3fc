"""User test suites replace ``wandb.init``: with ``unittest.mock.patch`` or a plain wrapper function.

The plugin must keep working under them, as the reference plugin does: the run start checks extra
``wandb.init`` arguments against wandb's own function, never against whatever ``wandb.init`` is now.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest import mock

import flyte
import pytest
from conftest import run_local

from flyteplugins.wandb import WandbConfigError, get_wandb_run, wandb_init
from flyteplugins.wandb._offline import find_offline_run_dirs, read_offline_run

env = flyte.TaskEnvironment(name="user_mocks")


@wandb_init(project="p", entity="e")
@env.task
async def train() -> str:
    run = get_wandb_run()
    assert run is not None
    run.log({"loss": 0.5})
    return "trained"


@wandb_init(project="p", entity="e", save_code=False)
@env.task
async def train_with_extra_argument() -> str:
    get_wandb_run().log({"loss": 0.25})
    return "trained"


@wandb_init(project="p", entity="e", not_a_wandb_argument=1)
@env.task
async def train_with_bogus_argument() -> str:
    return "never"


def test_a_mocked_wandb_init_runs_the_task_with_the_decorators_arguments() -> None:
    with mock.patch("wandb.init") as init:
        result = run_local(train)
    assert result.outputs == "trained"
    assert init.call_count == 1
    kwargs = init.call_args.kwargs
    assert (kwargs["project"], kwargs["entity"]) == ("p", "e")
    # The task logged into what the mock returned.
    init.return_value.log.assert_called_once_with({"loss": 0.5})
    init.return_value.finish.assert_called_once()


def test_a_mocked_wandb_init_accepts_extra_arguments() -> None:
    with mock.patch("wandb.init") as init:
        result = run_local(train_with_extra_argument)
    assert result.outputs == "trained"
    assert init.call_args.kwargs["save_code"] is False


def test_a_plain_wrapper_replacing_wandb_init_records_a_real_run(
    wandb_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wandb

    real = wandb.init
    seen: list[dict[str, Any]] = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:  # no functools.wraps: signature (*args, **kwargs)
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(wandb, "init", wrapper)
    result = run_local(train_with_extra_argument)
    assert result.outputs == "trained"
    assert len(seen) == 1
    (run_dir,) = find_offline_run_dirs(wandb_root)
    recorded = read_offline_run(run_dir, wait=15)
    assert (recorded.entity, recorded.project) == ("e", "p")
    assert recorded.column("loss") == [0.25]
    assert recorded.exit_code == 0


def test_arguments_wandb_does_not_accept_are_still_refused_under_a_wrapper(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import wandb

    real = wandb.init
    monkeypatch.setattr(wandb, "init", lambda *a, **k: real(*a, **k))
    with pytest.raises(Exception) as caught:
        run_local(train_with_bogus_argument)
    # Flyte wraps task errors; the plugin's message names the argument and what is allowed.
    text = str(caught.value)
    assert "not_a_wandb_argument" in text
    assert "a wandb.init() argument" in text
    assert WandbConfigError.__name__ in text or "invalid W&B setting" in text
