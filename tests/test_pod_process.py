"""What a cluster does to W&B runs, rehearsed with real processes: a pod per action, a reused process.

A pod runs one action through Flyte's entrypoint ``a0`` (``tests/pod.py`` starts the real one,
with an ``inputs.pb`` and no controller) and its cost ends when the process exits; a reusable
container (``flyte.ReusePolicy``) is one process running many actions, several at once
(``tests/reuse_worker.py``, through ``load_and_run_task`` as Flyte runs them). wandb runs for
real, offline, or online against a local socket on 127.0.0.1 that accepts and never answers;
what reached W&B is read back from the runs' transaction logs.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pod import TESTS, pod_env, reports, run_a0, write_inputs

from flyteplugins.wandb import _compat
from flyteplugins.wandb._offline import find_offline_run_dirs, read_offline_run

TIMEOUT_S = 6.0
# What the timeout does not cover: importing wandb and ending its service at exit (about 1 s).
SLACK_S = 2.0
FAKE_KEY = "podfake" + "0" * 33


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    write_inputs(tmp_path / "inputs.pb", 4)
    return tmp_path


@pytest.fixture
def stalled_url() -> Iterator[str]:
    """A W&B server address whose socket accepts connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.mark.skipif(
    not _compat.wandb_at_least("0.28.2"),
    reason="an online start that timed out continues offline from wandb 0.28.2 on (docs/versions.md)",
)
def test_a_stalled_server_adds_at_most_the_timeout_to_the_pods_life(workdir: Path, stalled_url: str) -> None:
    # Not silent, as in a pod: wandb's "logged in" message asks the server who the user is.
    env = pod_env(
        workdir,
        WANDB_MODE="online",
        WANDB_BASE_URL=stalled_url,
        WANDB_API_KEY=FAKE_KEY,
        FLYTEPLUGINS_WANDB_TIMEOUT=str(TIMEOUT_S),
    )
    without = run_a0("plain", workdir, env)
    with_wandb = run_a0("logged", workdir, env)
    assert (without.returncode, with_wandb.returncode) == (0, 0), with_wandb.output[-3000:]
    added = with_wandb.seconds - without.seconds
    assert added <= TIMEOUT_S + SLACK_S, (
        f"W&B added {added:.1f} s to the pod, timeout={TIMEOUT_S}: {with_wandb.output[-3000:]}"
    )
    (seen,) = reports(workdir)
    assert seen["offline"] is True
    offline = [
        d for d in find_offline_run_dirs(workdir / "wandb", seen["run"]) if d.name.startswith("offline-")
    ]
    assert len(offline) == 1
    assert read_offline_run(offline[0], wait=15).column("loss") == [1.0 / (step + 1) for step in range(4)]
    assert FAKE_KEY not in with_wandb.output


def test_a_pods_own_run_is_not_called_shared_and_its_plain_threads_get_it(workdir: Path) -> None:
    pod = run_a0("logged", workdir, pod_env(workdir, WANDB_MODE="offline"))
    assert pod.returncode == 0, pod.output[-3000:]
    (seen,) = reports(workdir)
    # One action runs in the process: a thread it started without its context can only be its.
    assert seen["plain_thread"] == seen["run"] == "r1-a1"
    # No other task writes into this run: nothing about shared mode, nor about plain threads.
    assert "shared mode" not in pod.output
    assert "does not carry its task's context" not in pod.output


def test_a_failed_attempts_offline_folder_is_said_to_be_lost_with_its_pod(workdir: Path) -> None:
    pod = run_a0("fails", workdir, pod_env(workdir, WANDB_MODE="offline"))
    (folder,) = [
        d for d in find_offline_run_dirs(workdir / "wandb", "r1-a1") if d.name.startswith("offline-")
    ]
    assert read_offline_run(folder, wait=15).exit_code == 1
    said = [line for line in pod.output.splitlines() if "this attempt failed" in line]
    assert len(said) == 1, pod.output[-3000:]
    assert str(folder) in said[0] and "lost when the container goes away" in said[0]
    assert "download_logs" not in said[0]


# --- a reusable container ----------------------------------------------------------------------


def run_reused(workdir: Path, *waves: str, rss_every: int = 0, timeout: float = 600) -> str:
    """Run ``waves`` of ``pod_tasks`` actions in one process; its output."""
    done = subprocess.run(
        [sys.executable, str(TESTS / "reuse_worker.py"), "--waves", *waves,
         "--inputs", str(workdir / "inputs.pb"), "--workdir", str(workdir), "--rss-every", str(rss_every)],
        env=pod_env(workdir, WANDB_MODE="offline", WANDB_SILENT="true"),
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0 and "DONE" in done.stdout, done.stdout[-3000:]
    return done.stdout


# What an action without @wandb_init gets from every API: no run, and wandb.log fails.
NOTHING = {"task": "looker", "run": None, "wandb_run": None, "plain_thread": None, "wandb_log": "error"}


def test_an_action_in_a_reused_process_never_gets_another_actions_run(workdir: Path) -> None:
    output = run_reused(workdir, "holder+looker", "looker")
    holder, beside, after = reports(workdir)
    assert holder == {"task": "holder", "run": "reused-a1", "wandb_run": "reused-a1"}
    # Beside a live run of another action: no run through any API, wandb.log fails as in its own pod.
    assert beside == {
        "task": "looker",
        "run": None,
        "wandb_run": None,
        "plain_thread": None,
        "wandb_log": "error",
    }
    # Two actions ran: a thread without context could not tell whose it was, and said so.
    assert output.count("does not carry its task's context") == 1
    # Alone in the process afterwards: nothing to leak, nothing logged into the finished run.
    assert after == {
        "task": "looker",
        "run": None,
        "wandb_run": None,
        "plain_thread": None,
        "wandb_log": "error",
    }
    (folder,) = find_offline_run_dirs(workdir / "wandb", "reused-a1")
    run = read_offline_run(folder, wait=15)
    assert run.column("loss") == [1.0] and run.column("leak") == []


def test_memory_stays_flat_over_many_actions_in_a_reused_process(workdir: Path) -> None:
    # One run per action, one after another: nothing of a finished action may stay behind, in the
    # process or in wandb-core. 60 actions here; `benchmarks/run.py --pods` runs 200.
    output = run_reused(workdir, *["short"] * 60, "holder+looker", "looker", rss_every=1)
    seen = [json.loads(line[4:]) for line in output.splitlines() if line.startswith("RSS ")]
    early, late = seen[19], seen[-1]
    growth_mb = (late["self_kb"] + late["children_kb"] - early["self_kb"] - early["children_kb"]) / 1024
    assert growth_mb <= 10.0, f"grew {growth_mb:.1f} MB from action 20 to 62: {seen[19:]}"
    # After 60 runs came and went, an action beside another's live run still gets none of it.
    assert reports(workdir)[1:] == [NOTHING, NOTHING]
    assert len(find_offline_run_dirs(workdir / "wandb", "reused-a60")) == 1
