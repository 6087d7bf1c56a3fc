"""The installed-package list is computed once per process, and every run still records it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wandb
from wandb import util as wandb_util

from flyteplugins.wandb import _requirements
from flyteplugins.wandb._offline import find_offline_run_dirs, read_offline_run, read_offline_runs
from flyteplugins.wandb._requirements import (
    Package,
    after_init,
    clear_cache,
    installed_packages,
    settings_overrides,
    write_requirements,
)

WAIT = 30.0  # wandb's service writes the end of a run's log after run.finish() has returned


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts the package scans (``_requirements._scan``), starting from an empty cache."""
    calls: list[int] = []
    real = _requirements._scan

    def counting() -> Any:
        calls.append(1)
        return real()

    clear_cache()
    monkeypatch.setattr(_requirements, "_scan", counting)
    yield calls
    clear_cache()
    _requirements._pending.set(False)  # an override a test armed but never used


def start(root: Path, run_id: str, settings: dict[str, Any]) -> Any:
    return wandb.init(
        mode="offline",
        dir=str(root),
        project="requirements-tests",
        id=run_id,
        reinit="create_new",
        settings=wandb.Settings(silent=True, console="off", **settings),
    )


def start_with_cache(root: Path, run_id: str, **settings: Any) -> Any:
    """What the run-start code does: overrides into wandb.init, then after_init on the run."""
    run = start(root, run_id, {**settings, **settings_overrides()})
    after_init(run)
    return run


def expected_file() -> str:
    return "".join(f"{d.key}=={d.version}\n" for d in wandb_util.working_set())


def test_every_run_records_requirements_from_one_scan(tmp_path: Path, scans: list[int]) -> None:
    ids = [f"req-{i}" for i in range(4)]
    for run_id in ids:
        run = start_with_cache(tmp_path, run_id)
        run.log({"x": 1})
        run.finish()

    assert len(scans) == 1  # neither wandb nor we scanned again for runs 2..4
    expected = expected_file()
    for run_id in ids:
        (recorded,) = read_offline_runs(tmp_path, run_id, wait=WAIT)
        assert recorded.exit_code == 0
        assert "requirements.txt" in recorded.files
        assert recorded.file_records == ["requirements.txt"]  # registered for upload, as wandb does
        assert (recorded.path / "files" / "requirements.txt").read_text() == expected


def test_same_file_and_records_as_wandb_default(tmp_path: Path) -> None:
    clear_cache()
    default = start(tmp_path, "req-default", {})
    default.finish()
    cached = start_with_cache(tmp_path, "req-cached")
    cached.finish()

    (by_wandb,) = read_offline_runs(tmp_path, "req-default", wait=WAIT)
    (by_cache,) = read_offline_runs(tmp_path, "req-cached", wait=WAIT)
    assert by_wandb.files == by_cache.files
    assert by_wandb.file_records == by_cache.file_records == ["requirements.txt"]
    assert (by_cache.path / "files" / "requirements.txt").read_bytes() == (
        by_wandb.path / "files" / "requirements.txt"
    ).read_bytes()


def test_non_primary_writer_records_none_like_wandb(tmp_path: Path, scans: list[int]) -> None:
    run = start_with_cache(tmp_path, "req-secondary", x_primary=False, x_label="rank1")
    run.finish()

    (recorded,) = read_offline_runs(tmp_path, "req-secondary", wait=WAIT)
    assert recorded.exit_code == 0
    assert "requirements.txt" not in recorded.files
    assert recorded.file_records == []


def test_caller_opt_out_is_respected(tmp_path: Path, scans: list[int]) -> None:
    assert settings_overrides({"x_save_requirements": False}) == {}
    assert settings_overrides(wandb.Settings(x_save_requirements=False)) == {}
    assert settings_overrides(wandb.Settings(project="p")) == {"x_save_requirements": False}

    settings_overrides({"x_save_requirements": False})
    run = start(tmp_path, "req-opt-out", {"x_save_requirements": False})
    after_init(run)
    run.finish()

    (recorded,) = read_offline_runs(tmp_path, "req-opt-out", wait=WAIT)
    assert recorded.exit_code == 0
    assert "requirements.txt" not in recorded.files
    assert scans == []


def test_after_init_without_overrides_does_nothing(tmp_path: Path, scans: list[int]) -> None:
    settings_overrides()
    run = start(tmp_path, "req-first", {"x_save_requirements": False})
    after_init(run)  # armed by settings_overrides(): publishes
    run.finish()
    run = start(tmp_path, "req-second", {"x_save_requirements": False})
    after_init(run)  # not armed again: nothing
    run.finish()

    first, second = (read_offline_run(d, wait=WAIT) for d in find_offline_run_dirs(tmp_path))
    assert "requirements.txt" in first.files
    assert "requirements.txt" not in second.files


def test_package_list_is_computed_once_across_threads(scans: list[int]) -> None:
    results: list[tuple[Package, ...]] = []
    threads = [threading.Thread(target=lambda: results.append(installed_packages())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(scans) == 1
    assert len({id(r) for r in results}) == 1
    assert any(p.key == "wandb" and p.version == wandb.__version__ for p in results[0])


def test_installing_a_package_invalidates_the_list(
    tmp_path: Path, scans: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    before = installed_packages()
    assert installed_packages() is before and len(scans) == 1
    assert not any(p.key == "flyteplugins-fake" for p in before)

    def install(version: str) -> None:
        for old in site.glob("*.dist-info"):
            for f in old.iterdir():
                f.unlink()
            old.rmdir()
        info = site / f"flyteplugins_fake-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: flyteplugins-fake\nVersion: {version}\n"
        )

    install("1.0")
    assert Package("flyteplugins-fake", "1.0") in installed_packages()
    install("2.0")
    assert Package("flyteplugins-fake", "2.0") in installed_packages()
    assert len(scans) == 3


def test_fallback_writes_and_saves_the_file(tmp_path: Path, scans: list[int]) -> None:
    # The path taken by a wandb whose run has no interface call for the package list.
    run = start(tmp_path, "req-fallback", {"x_save_requirements": False})
    assert _requirements._write_and_save(run, installed_packages()) is True
    run.finish()

    (recorded,) = read_offline_runs(tmp_path, "req-fallback", wait=WAIT)
    assert recorded.file_records == ["requirements.txt"]
    assert (recorded.path / "files" / "requirements.txt").read_text() == expected_file()


def test_disabled_run_records_nothing() -> None:
    run = wandb.init(mode="disabled", reinit="create_new")
    try:
        assert write_requirements(run) is False
    finally:
        run.finish()


def test_the_scan_lists_exactly_what_wandbs_own_scan_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    # A description that looks like headers, after the blank line that ends the real ones.
    body = "Metadata-Version: 2.1\nName: described\nVersion: 1.0\n\nName: not-this\nVersion: 9\n"
    (site / "described-1.0.dist-info").mkdir()
    (site / "described-1.0.dist-info" / "METADATA").write_text(body + "x" * 50_000)
    (site / "nameless-1.0.dist-info").mkdir()
    (site / "nameless-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nVersion: 1.0\n")
    (site / "legacy.egg-info").mkdir()
    (site / "legacy.egg-info" / "PKG-INFO").write_text("Metadata-Version: 1.0\nName: legacy\nVersion: 0.1\n")
    (site / "broken-1.0.dist-info").mkdir()
    (site / "broken-1.0.dist-info" / "METADATA").write_bytes(b"Name: \xff\xfe\nVersion: 1\n")
    monkeypatch.syspath_prepend(str(site))

    ours = [p.requirement for p in _requirements._scan()]
    theirs = [f"{d.key}=={d.version}" for d in wandb_util.working_set()]
    assert ours == theirs
    assert "described==1.0" in ours and "legacy==0.1" in ours
    assert not any(r.startswith(("broken", "not-this")) for r in ours)
