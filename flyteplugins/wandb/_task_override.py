"""A decorated task keeps its W&B behaviour right through ``task.override(env_vars=...)``.

``@wandb_init`` and ``@wandb_sweep`` read a task's declared W&B variables
(``TaskEnvironment(env_vars=...)``) when they decorate it: its links and, in a local run, its run
read the environment as the task's container sees it. ``task.override(env_vars=...)`` gives the
task's container other variables; the overridden task is decorated again from the undecorated
function, so that its link (rendered by the parent) and its run read the new ones, as its pod
does. So is a task whose ``secrets`` are overridden (the local-run warnings read their names). An
override that changes none of what the plugin reads keeps the decorated task's wrapper and links.

Example:
    ```python
    @wandb_init
    @env.task
    async def train() -> None: ...

    # Its link and its run follow WANDB_PROJECT=ablation, as its container does.
    await train.override(env_vars={"WANDB_PROJECT": "ablation"})()
    ```
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._rehearsal import DeclaredEnvironment

__all__ = ["follow_env_overrides"]


def follow_env_overrides(
    decorated: Any, func: Callable[..., Any], ours: tuple[Any, ...], redecorate: Callable[[Any], Any]
) -> Any:
    """Make ``decorated.override(...)`` decorate the overridden task again when its variables change.

    ``func`` is the task's undecorated function, ``ours`` the links the decorator added, and
    ``redecorate`` decorates an undecorated task as the decorator did. Returns ``decorated``.
    """
    class_override = type(decorated).override

    def override(*args: Any, **kwargs: Any) -> Any:
        new = class_override(decorated, *args, **kwargs)
        if DeclaredEnvironment.of(new) == DeclaredEnvironment.of(decorated):
            return follow_env_overrides(new, func, ours, redecorate)
        # Its container sees other variables: decorate it afresh, from the undecorated function.
        new.func = func
        new.links = tuple(link for link in (new.links or ()) if not any(link is mine for mine in ours))
        return redecorate(new)

    override.__doc__ = class_override.__doc__
    # An attribute of this task only: flyte's own override builds the new task from its fields.
    decorated.override = override
    return decorated
