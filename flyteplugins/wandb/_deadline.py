"""A call that may take only so long: the bound every W&B wait of the plugin goes through.

W&B can block (a server that accepts connections and never answers, a service that does not
stop); a task, a pod's exit or a preemption may wait for it only so long. :func:`call_within`
runs the call in a daemon thread and waits for it up to a deadline; what is still running then
goes on in the background without holding the process up.

Example:
    >>> call_within(lambda: None, 1.0, "noop")
    (True, None)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["call_within"]


def call_within(fn: Callable[[], Any], seconds: float, name: str) -> tuple[bool, BaseException | None]:
    """Run ``fn`` in a daemon thread and wait at most ``seconds`` for it.

    Returns ``(done, error)``: ``done`` is false when ``fn`` was still running at the deadline
    (it keeps running in the background; a daemon thread does not hold the process up).

    Example:
        >>> import time
        >>> call_within(lambda: None, 1.0, "noop")
        (True, None)
        >>> call_within(lambda: time.sleep(5), 0.05, "sleep")[0]
        False
    """
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:  # handed back to the caller, who decides
            errors.append(exc)

    thread = threading.Thread(target=target, name=f"flyteplugins-wandb-{name}", daemon=True)
    thread.start()
    thread.join(max(0.0, seconds))
    if thread.is_alive():
        return False, None
    return True, errors[0] if errors else None
