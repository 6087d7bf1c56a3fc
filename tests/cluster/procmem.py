"""Resident memory of a process and of its descendants, read from ``/proc`` (Linux); stdlib only.

Used by a rehearsed replica (:mod:`cluster.replica`) after each wave of actions, and by
``benchmarks/run.py --pods`` (imported by path, in either plugin's interpreter) after each action.

Example::

    from cluster.procmem import memory
    print(memory())  # {'self_kb': 88312, 'children_kb': 42264}: this process, and wandb-core
"""

from __future__ import annotations

import os
from pathlib import Path


def rss_kb(pid: int) -> int:
    """The resident memory of process ``pid`` in kB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """The ids of every process below ``pid``: its children, theirs, and so on."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found + [grand for child in found for grand in descendants(child)]


def memory() -> dict[str, int]:
    """Resident memory of this process (``self_kb``) and of all its descendants (``children_kb``:
    wandb-core), in kB."""
    me = os.getpid()
    return {"self_kb": rss_kb(me), "children_kb": sum(rss_kb(pid) for pid in descendants(me))}
