"""A fan-out rehearsed as on a cluster: the parent and every child each in its own ``a0`` process.

The parent cannot read its children's run folders (each is in its own pod directory); it compares
them from the digests they wrote into the Flyte run's storage. Real flyte serialization and ``a0``
entrypoint, real offline wandb; each child's run is read back from its own transaction log.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cluster import fanout_workflows
from cluster.harness import Cluster

from flyteplugins.wandb._fanout_channel import DIGESTS_DIR, collect_digests
from flyteplugins.wandb._offline import find_offline_run_dirs, read_offline_run

POD_ENV = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off"}


def test_each_child_in_its_own_pod_reaches_the_parents_comparison(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "cluster", env=dict(POD_ENV))
    result = cluster.run(fanout_workflows.tune, [0.1, 0.01, -1.0], 30)
    assert result.ok, result.root.log()
    parent_id = result.outputs
    children = result.children_of(result.root.action)
    assert len(children) == 3
    assert sorted(c.ok for c in children) == [False, True, True]
    killed = next(c for c in children if not c.ok)
    # Every pod has its own folder: the parent's holds none of its children's runs.
    assert all(Path(c.pod_dir) != Path(result.root.pod_dir) for c in children)
    assert len(find_offline_run_dirs(Path(result.root.pod_dir))) == 1

    # W&B side: each child's own run, read from its own pod's transaction log, names its parent
    # (the killed child's log ends before its first records: nothing to read there).
    for child in (c for c in children if c.ok):
        (run_dir,) = find_offline_run_dirs(Path(child.pod_dir))
        run = read_offline_run(run_dir, wait=15)
        assert run.group == parent_id
        assert run.job_type == "fanout.learner"
        assert run.config["flyte"]["parent_run"] == parent_id
        assert run.config["flyte"]["action"] == child.action

    # The channel: the run's storage holds two digests and the killed child's marker only.
    base = tmp_path / "cluster" / "outputs"
    assert sorted(p.name for p in (base / DIGESTS_DIR / parent_id).iterdir()) == sorted(
        [f"{c.action}.started" for c in children] + [f"{c.action}.json" for c in children if c.ok]
    )
    collected = collect_digests(str(base), parent_id)
    assert sorted(d.inputs["lr"] for d in collected.digests) == [0.01, 0.1]
    for digest in collected.digests:
        lr = digest.inputs["lr"]
        assert digest.final("train/loss") == pytest.approx(lr)
        series = digest.series_of("train/loss")
        assert series is not None and series.logged == 30
        assert (min(series.ys), max(series.ys)) == pytest.approx((lr, lr * 30))
    assert [(m.action, m.task) for m, _ in collected.missing] == [(killed.action, "fanout.learner")]

    # The parent's report tab (written by its own pod) compares them, the killed child as a row.
    pages = [p.read_text() for p in tmp_path.rglob("report.html")]
    page = next(p for p in pages if "Runs of this task&#x27;s children" in p)
    for digest in collected.digests:
        assert f'data-run-id="{digest.run_id}"' in page
    assert killed.action in page and "no digest: the task failed or was stopped before its run ended" in page


def test_parents_sharing_a_reusable_container_each_compare_only_their_own_children(tmp_path: Path) -> None:
    from cluster.harness import read_outputs

    cluster = Cluster(tmp_path / "cluster", env=dict(POD_ENV))
    replica = cluster.replica(concurrency=2)
    replica.add(fanout_workflows.tune, [0.1, 0.2], 10)
    replica.add(fanout_workflows.tune, [0.3], 10)
    attempts = replica.run()
    assert len(attempts) == 2 and all(a.ok for a in attempts), replica.log()
    base = tmp_path / "cluster" / "outputs"
    lrs = {}
    for attempt in attempts:
        parent_id = read_outputs(fanout_workflows.tune, attempt.output_prefix)
        collected = collect_digests(str(base), parent_id)
        assert not collected.missing
        assert all(d.parent_run_id == d.group == parent_id for d in collected.digests)
        lrs[parent_id] = sorted(d.inputs["lr"] for d in collected.digests)
    assert sorted(lrs.values()) == [[0.1, 0.2], [0.3]]


def test_a_retried_child_is_compared_by_its_last_attempt(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "cluster", env=dict(POD_ENV))
    result = cluster.run(fanout_workflows.tune_flaky, [0.5], 5)
    assert result.ok, result.root.log()
    parent_id = result.outputs
    (child,) = {a.action for a in result.attempts if a.parent == result.root.action}
    assert [a.ok for a in result.attempts_of(child)] == [False, True]
    collected = collect_digests(str(tmp_path / "cluster" / "outputs"), parent_id)
    (digest,) = collected.digests
    assert not collected.missing
    # The second attempt (a new pod) wrote over the first's digest: finished, its own values.
    assert (digest.state, digest.action) == ("finished", child)
    assert digest.final("train/loss") == pytest.approx(0.5 + 1)
