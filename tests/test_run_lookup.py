"""Finding a local run from what a person types: a run folder, ``wandb/latest-run``, a run id, or a
unique prefix of one (local run ids are 60-odd characters long). Real offline wandb runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from flyteplugins.wandb._cli import wandb_group
from flyteplugins.wandb._download_local import find_local_run_dirs, plan_prefix_match
from flyteplugins.wandb._errors import WandbRunError
from flyteplugins.wandb._offline import find_offline_run_dirs, read_offline_run

pytestmark = pytest.mark.smoke


def make_run(wandb_root: Path, run_id: str) -> Path:
    import wandb

    run = wandb.init(project="lookup", entity="team", id=run_id)
    run.log({"loss": 0.5})
    run.finish()
    (run_dir,) = find_offline_run_dirs(wandb_root, run_id)
    assert read_offline_run(run_dir, wait=20).finished
    return run_dir


def report(*args: str) -> Any:
    return CliRunner().invoke(wandb_group, ["report", *args], catch_exceptions=False)


def test_a_unique_prefix_of_a_run_id_names_the_run_and_its_page(wandb_root: Path) -> None:
    long_id = "fda2024e-8f18-4694-8b67-4eb56782fd10-47uin9z2u1n3umsg0c4g6d6ch"
    make_run(wandb_root, long_id)
    make_run(wandb_root, "b7c0ffee-other")
    result = report("fda2024e")
    assert result.exit_code == 0, result.output
    page = Path(f"wandb-report-{long_id}.html")
    assert result.output.strip().endswith(str(page)) and page.is_file()
    assert f'data-run-id="{long_id}"' in page.read_text()


def test_an_ambiguous_prefix_is_refused_naming_the_candidates(wandb_root: Path) -> None:
    make_run(wandb_root, "abc-first")
    make_run(wandb_root, "abc-second")
    result = CliRunner().invoke(wandb_group, ["report", "abc"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1  # one line, no traceback
    assert "run id prefix 'abc' is ambiguous" in result.output
    assert "abc-first, abc-second" in result.output and "give more of the id" in result.output
    assert not list(Path.cwd().glob("wandb-report-*.html"))


def test_no_match_is_refused_naming_where_it_looked(wandb_root: Path) -> None:
    make_run(wandb_root, "abc-first")
    result = CliRunner().invoke(wandb_group, ["report", "zzz"])
    assert result.exit_code == 2
    assert "no W&B run folder, run id or run id prefix 'zzz' here" in result.output
    assert str(wandb_root) in result.output


def test_an_exact_id_wins_over_longer_ids_it_starts(wandb_root: Path) -> None:
    exact = make_run(wandb_root, "abc")
    make_run(wandb_root, "abcdef")
    assert find_local_run_dirs("abc", prefix=True) == [exact]
    # Without prefix=True (downloads: an id from code, not typed), a prefix finds nothing.
    assert find_local_run_dirs("abcd") == []
    assert [p.name for p in find_local_run_dirs("abcd", prefix=True)] == [
        p.name for p in find_offline_run_dirs(wandb_root, "abcdef")
    ]


def test_latest_run_names_its_page_after_the_run(wandb_root: Path) -> None:
    make_run(wandb_root, "older-run")
    make_run(wandb_root, "newest-run")
    latest = wandb_root / "latest-run"
    assert latest.is_symlink(), "wandb links its newest run folder as latest-run"
    result = report(str(latest))
    assert result.exit_code == 0, result.output
    page = Path("wandb-report-newest-run.html")
    assert page.is_file() and 'data-run-id="newest-run"' in page.read_text()
    assert not Path("wandb-report-latest-run.html").exists()


def test_the_prefix_decision() -> None:
    assert plan_prefix_match("a", []) is None
    assert plan_prefix_match("ab", ["abc", "xyz"]) == "abc"
    with pytest.raises(WandbRunError, match=r"starts the ids of 12 local runs \(r00, .*r09 and 2 more\)"):
        plan_prefix_match("r", [f"r{i:02d}" for i in range(12)])
