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
from flyteplugins.wandb._compat import init_arguments
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


# An argument only a newer wandb accepts (pretended: the table gets a release above the installed
# one that adds it): accepted when the decorator is applied, refused at run start by wandb's own
# signature, which says which release added it.
FUTURE_ARGUMENT = "argument_of_a_future_wandb"
_rows = init_arguments.WANDB_INIT_ARGUMENTS
FUTURE_TABLE = (*_rows, init_arguments.InitArguments("99.0.0", None, _rows[-1].names | {FUTURE_ARGUMENT}))
init_arguments.WANDB_INIT_ARGUMENTS = FUTURE_TABLE
try:

    @wandb_init(project="p", entity="e", **{FUTURE_ARGUMENT: 1})
    @env.task
    async def train_with_bogus_argument() -> str:
        return "never"

finally:
    init_arguments.WANDB_INIT_ARGUMENTS = _rows


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
    monkeypatch.setattr(init_arguments, "WANDB_INIT_ARGUMENTS", FUTURE_TABLE)
    with pytest.raises(Exception) as caught:
        run_local(train_with_bogus_argument)
    # Flyte wraps task errors; the plugin's message names the argument and what is allowed.
    text = str(caught.value)
    assert FUTURE_ARGUMENT in text
    assert "a wandb.init() argument of the installed wandb" in text
    assert "needs wandb 99.0.0 or newer" in text
    assert WandbConfigError.__name__ in text or "invalid W&B setting" in text
