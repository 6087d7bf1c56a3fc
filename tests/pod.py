"""Run tasks of ``tests/pod_tasks.py`` as a cluster does, in real processes on this machine.

:func:`run_a0` starts Flyte's pod entrypoint ``a0`` (``python -m flyte._bin.runtime a0``) for
one action, with its inputs in an ``inputs.pb`` as the control plane writes them and no
controller (``FLYTE_CLUSTERED_WORKER=1``, which is how Flyte starts a process that launches no
sub-tasks; there is no control plane here to enqueue them). :func:`run_reused` starts
``tests/reuse_worker.py``, one long-lived process that runs many actions through
``load_and_run_task``, several at once, as a reusable container (``flyte.ReusePolicy``) does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TESTS = Path(__file__).parent
RESOLVER = "flyte._internal.resolvers.default.DefaultTaskResolver"


@dataclass
class Pod:
    """A finished process: its wall time from start to exit, exit code and output."""

    seconds: float
    returncode: int
    output: str


def write_inputs(path: Path, steps: int) -> Path:
    """Write the ``inputs.pb`` of a ``(steps: int)`` task of ``pod_tasks``, as the control plane does."""
    code = (
        "import asyncio, sys\n"
        "import pod_tasks\n"
        "from flyte._internal.runtime.convert import convert_from_native_to_inputs\n"
        "from flyte._internal.runtime.io import upload_inputs\n"
        "interface = pod_tasks.plain.native_interface\n"
        "inputs = asyncio.run(convert_from_native_to_inputs(interface, int(sys.argv[2])))\n"
        "asyncio.run(upload_inputs(inputs, sys.argv[1]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    subprocess.run([sys.executable, "-c", code, str(path), str(steps)], check=True, env=env, timeout=120)
    return path


def a0_command(task: str, inputs: Path, out: Path, action: str = "a1", run_name: str = "r1") -> list[str]:
    """The command line of Flyte's pod entrypoint for ``pod_tasks.<task>``."""
    return [
        sys.executable, "-m", "flyte._bin.runtime", "a0",
        "--inputs", str(inputs), "--outputs-path", str(out), "--version", "v1",
        "--run-base-dir", str(out.parent / "base"), "--raw-data-path", str(out.parent / "raw"),
        "--name", action, "--run-name", run_name, "--project", "p", "--domain", "d", "--org", "o",
        "--resolver", RESOLVER, "mod", "pod_tasks", "instance", task,
    ]  # fmt: skip


def pod_env(workdir: Path, **extra: str) -> dict[str, str]:
    """The environment of a pod: this one, ``pod_tasks`` importable, no controller, ``extra`` on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "FLYTEPLUGINS_WANDB_"))}
    env.update(
        PYTHONPATH=str(TESTS),
        FLYTE_CLUSTERED_WORKER="1",  # no controller: these tasks launch no sub-tasks
        WANDB_DIR=str(workdir),
        POD_REPORT=str(workdir / "report.jsonl"),
        POD_RELEASE=str(workdir / "release"),
        POD_HELD=str(workdir / "held"),
    )
    env.update(extra)
    return env


def run_a0(task: str, workdir: Path, env: dict[str, str], timeout: float = 180, **names: str) -> Pod:
    """Run ``pod_tasks.<task>`` as a pod does and time the process from start to exit."""
    inputs = workdir / "inputs.pb"
    if not inputs.exists():
        write_inputs(inputs, 4)
    out = workdir / f"out-{task}-{time.monotonic_ns()}"
    out.mkdir(parents=True)
    log = out.with_suffix(".log")
    # Output to a file, not a pipe: wandb's service inherits it and may outlive the process a
    # little, while the pod ends with its main process.
    with log.open("w") as output:
        started = time.monotonic()
        command = a0_command(task, inputs, out, **names)
        process = subprocess.Popen(command, env=env, cwd=workdir, stdout=output, stderr=subprocess.STDOUT)
        returncode = process.wait(timeout)
        seconds = time.monotonic() - started
    return Pod(seconds, returncode, log.read_text())


def reports(workdir: Path) -> list[dict[str, Any]]:
    """What the tasks reported, in order."""
    path = workdir / "report.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
