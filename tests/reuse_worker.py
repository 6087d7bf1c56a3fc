"""One long-lived process that runs many actions of ``tests/pod_tasks.py``, as a reusable container.

A reusable container (``flyte.ReusePolicy``) is one process that runs many actions, up to
``concurrency`` at once, each through ``load_and_run_task`` as here. ``--waves`` lists the
actions: waves run one after the other, the actions of a wave concurrently (``holder+looker``).
After each ``--rss-every`` waves the process prints ``RSS <json>``: its own resident memory and
that of its children (wandb-core), in kB, read from ``/proc``.

Example:
    ```bash
    python tests/reuse_worker.py --waves holder+looker short short --rss-every 1
    ```
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found + [grand for child in found for grand in _children(child)]


def memory() -> dict[str, int]:
    """Resident memory of this process and of all its descendants (wandb-core), in kB."""
    me = os.getpid()
    return {"self_kb": _rss_kb(me), "children_kb": sum(_rss_kb(pid) for pid in _children(me))}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--waves", nargs="+", required=True)
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--rss-every", type=int, default=0)
    args = parser.parse_args()

    from flyte._internal.runtime.entrypoints import load_and_run_task
    from flyte.models import ActionID, RawDataPath

    workdir = Path(args.workdir)
    count = 0

    async def action(task: str) -> None:
        nonlocal count
        count += 1
        name = f"a{count}"
        out = workdir / "out" / name
        out.mkdir(parents=True, exist_ok=True)
        await load_and_run_task(
            action=ActionID(name=name, run_name="reused", project="p", domain="d", org="o"),
            raw_data_path=RawDataPath(path=str(workdir / "raw")),
            output_path=str(out),
            run_base_dir=str(workdir / "base"),
            version="v1",
            controller=None,
            resolver="flyte._internal.resolvers.default.DefaultTaskResolver",
            resolver_args=["mod", "pod_tasks", "instance", task],
            input_path=args.inputs,
        )

    started = time.monotonic()
    for index, wave in enumerate(args.waves, start=1):
        await asyncio.gather(*(action(task) for task in wave.split("+")))
        if args.rss_every and index % args.rss_every == 0:
            print(
                "RSS " + json.dumps({"wave": index, "seconds": time.monotonic() - started, **memory()}),
                flush=True,
            )
    print("DONE", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
