"""What a ``@wandb_init`` / ``@wandb_sweep`` function carries, and whether its decorators are in order.

``@wandb_init`` belongs above ``@env.task``: it then sees the Flyte task, gives it its W&B link
and runs the task's body inside the task's run. Below ``@env.task`` it sees a plain function (a
legitimate use: a sweep objective run by ``wandb.agent``), and Flyte then runs that plain-function
wrapper as the task's body: the run gets a random id and the task has no link. Nothing runs when
``@env.task`` is applied, so the wrong order is found at the wrapper's first call inside a task
(:func:`check_decorator_order`) and by ``flyte wandb check/explain --task``
(:func:`decorator_order_problem`).

Example:
    >>> decorator_order_problem(print) is None
    True
"""

from __future__ import annotations

import functools
import inspect
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from ._layers import Layer
from ._settings import DeclaredEnv

__all__ = [
    "LAYER_ATTRIBUTE",
    "PLAIN_ATTRIBUTE",
    "check_decorator_order",
    "decorator_order_problem",
    "task_layers",
    "within_decorated",
]

# Set on the function a decorated task runs (task.func) or a decorated plain function.
LAYER_ATTRIBUTE = "_flyteplugins_wandb_layer"
PLAIN_ATTRIBUTE = "_flyteplugins_wandb_plain"

_checked: set[int] = set()


def task_layers(task: Any) -> dict[str, Layer]:
    """The decorator layers (by schema, ``run`` / ``sweep``) a task's function carries.

    Example:
        >>> task_layers(print)
        {}
    """
    layers: dict[str, Layer] = {}
    func = getattr(task, "func", task)
    # Stacked decorators (@wandb_sweep on a @wandb_init task) wrap one another: the outermost wins.
    for _ in range(16):
        found = getattr(func, LAYER_ATTRIBUTE, None)
        if isinstance(found, Layer):
            layers.setdefault(found.schema, found)
        func = getattr(func, "__wrapped__", None)
        if func is None:
            break
    return layers


def _order_problem(name: str) -> tuple[str, str]:
    return (
        f"@wandb_init is below @env.task on {name!r}: Flyte runs the W&B wrapper of a plain function "
        "as the task's body, so its run gets a random id and the task gets no W&B link",
        f"put @wandb_init above @env.task: @wandb_init(...) / @env.task / def {name}(...)",
    )


def decorator_order_problem(task: Any) -> tuple[str, str] | None:
    """What is wrong with the order of ``task``'s W&B decorator, and the fix; ``None`` when nothing.

    Example:
        >>> decorator_order_problem(object()) is None
        True
    """
    func = getattr(task, "func", None)
    if func is None or not getattr(func, PLAIN_ATTRIBUTE, False):
        return None
    from ._compat import is_function_task

    if not is_function_task(task):
        return None
    return _order_problem(getattr(func, "__name__", "task"))


def _is_task_body(wrapper: Callable[..., Any]) -> bool:
    """Whether a Flyte task of ``wrapper``'s module (a module-level task, or a task of a
    module-level ``TaskEnvironment``) runs ``wrapper`` as its function."""
    import flyte

    from ._compat import is_function_task

    module = sys.modules.get(getattr(wrapper, "__module__", "") or "")
    if module is None:
        return False
    for value in list(vars(module).values()):
        if is_function_task(value):
            if getattr(value, "func", None) is wrapper:
                return True
        elif isinstance(value, flyte.TaskEnvironment):
            tasks: Mapping[str, Any] = value.tasks
            if any(getattr(t, "func", None) is wrapper for t in tasks.values()):
                return True
    return False


def check_decorator_order(wrapper: Callable[..., Any]) -> None:
    """At the first call of a plain-function wrapper inside a Flyte task: warn, naming the fix, when
    that task runs the wrapper as its body (``@env.task`` above ``@wandb_init``).

    Called inside a task's body (a helper, a sweep objective) the wrapper is legitimate: no warning.
    """
    key = id(wrapper)
    if key in _checked:
        return
    flyte = sys.modules.get("flyte")
    if flyte is None or not flyte.ctx():
        return  # outside a task: a plain function, as intended
    _checked.add(key)
    if _is_task_body(wrapper):
        problem, fix = _order_problem(getattr(wrapper, "__name__", "task"))
        warnings.warn(f"{problem}; {fix}", UserWarning, stacklevel=3)


def within_decorated(
    wrapper: Callable[..., Any], task_layer: Layer, plain: bool = False, declared_env: DeclaredEnv = ()
) -> Callable[..., Any]:
    """``wrapper`` recording, while it runs, that a decorated call runs here (for :func:`explain`).

    ``plain``: the wrapper was made for a plain function; at its first call inside a Flyte task it
    checks that it is not that task's own function (``@env.task`` above ``@wandb_init``).
    ``declared_env``: the task's declared W&B variables, which its resolution reads.
    """
    from ._active import current_action_name
    from ._layers import enter_decorated, leave_decorated

    if inspect.iscoroutinefunction(wrapper):

        @functools.wraps(wrapper)
        async def async_call(*args: Any, **kwargs: Any) -> Any:
            if plain:
                check_decorator_order(async_call)
            token = enter_decorated(task_layer, current_action_name(), declared_env)
            try:
                return await wrapper(*args, **kwargs)
            finally:
                leave_decorated(token)

        call: Callable[..., Any] = async_call
    else:

        @functools.wraps(wrapper)
        def sync_call(*args: Any, **kwargs: Any) -> Any:
            if plain:
                check_decorator_order(sync_call)
            token = enter_decorated(task_layer, current_action_name(), declared_env)
            try:
                return wrapper(*args, **kwargs)
            finally:
                leave_decorated(token)

        call = sync_call
    # `flyte wandb check/explain --task` read the decorator's layer from the task's function, and
    # whether it was made for a plain function (then the decorators are in the wrong order).
    setattr(call, LAYER_ATTRIBUTE, task_layer)
    if plain:
        setattr(call, PLAIN_ATTRIBUTE, True)
    return call
