"""The transaction-log reader on logs written by the oldest and the newest supported wandb.

The logs under tests/data/wandb-logs/wandb-<version>/ were written by real wandb releases
(scripts/make_reader_fixtures.sh regenerates them) and are read here with whatever wandb is
installed: the CI matrix runs this file on the oldest and the newest, so each release's reader
meets the other's schema (fields it does not know are ignored, fields it lacks read as unset).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flyteplugins.wandb import _compat
from flyteplugins.wandb._offline import iter_records, read_offline_runs

pytestmark = pytest.mark.smoke

DATA = Path(__file__).parent / "data" / "wandb-logs"
VERSIONS = sorted((p.name.removeprefix("wandb-") for p in DATA.glob("wandb-*")), key=_compat.version_tuple)
CONFIG = {"lr": 0.001, "layers": [64, 32], "optimizer": {"name": "adam", "betas": [0.9, 0.999]}}
STEPS = [
    {"loss": 2.5, "acc": 0.1, "phase": "warmup"},
    {"loss": 1.25, "acc": 0.5, "grad": {"norm": 3.5, "clipped": True}},
    {"loss": 0.625, "acc": 0.75, "maybe": None},
]


def logged(history: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{k: v for k, v in row.items() if not k.startswith("_")} for row in history]


def test_the_oldest_and_the_newest_supported_wandb_have_fixtures() -> None:
    assert VERSIONS[0] == _compat.MIN_WANDB
    assert len(VERSIONS) >= 2 and _compat.version_tuple(VERSIONS[-1]) > _compat.version_tuple(VERSIONS[0])


@pytest.mark.parametrize("version", VERSIONS)
def test_a_finished_run_and_its_resumption_read_back(version: str) -> None:
    first, resumed = read_offline_runs(DATA / f"wandb-{version}", "fixture-run")

    assert (first.run_id, first.project, first.entity) == ("fixture-run", "fixtures", "team")
    assert (first.name, first.group, first.job_type, first.notes) == (
        "first try",
        "experiment-1",
        "train",
        "reads back",
    )
    assert first.tags == ("baseline", "cpu")
    assert first.config == {**CONFIG, "epochs": 3}
    assert logged(first.history) == STEPS
    assert [row["_step"] for row in first.history] == [0, 1, 2]
    assert first.summary["best"] == 0.75 and first.summary["loss"] == 0.625
    assert (first.exit_code, first.resumed, first.truncated, first.offline) == (0, False, False, True)
    assert first.start_time is not None and first.start_time > 1.7e9

    # A second folder, oldest first ("-1" suffixed when both starts fell in the same second).
    assert resumed.path != first.path
    assert (resumed.exit_code, resumed.config, logged(resumed.history)) == (1, {"stage": 2}, [{"loss": 0.5}])
    # The run record's "resume" field exists from wandb 0.30 on: written by the release that made
    # the log, and known to the reader only when the installed release has it too.
    both_know = _compat.version_tuple(version) >= (0, 30) and _compat.wandb_at_least("0.30.0")
    assert resumed.resumed is both_know


@pytest.mark.parametrize("version", VERSIONS)
def test_a_non_primary_writers_log_reads_back(version: str) -> None:
    (writer,) = read_offline_runs(DATA / f"wandb-{version}", "fixture-shared")
    assert (writer.run_id, writer.project, writer.exit_code) == ("fixture-shared", "fixtures", 0)
    assert logged(writer.history) == [{"rank_loss": 1.5}]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_record_of_the_log_decodes(version: str) -> None:
    kinds = [_compat.record_kind(r) for d in (DATA / f"wandb-{version}").iterdir() for r in iter_records(d)]
    assert {"run", "history", "exit"} <= set(kinds)
    assert "" not in kinds
