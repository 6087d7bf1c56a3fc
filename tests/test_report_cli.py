"""``flyte wandb report RUN_DIR|RUN_ID [-o FILE]`` on real offline runs, and the page in a real browser."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from browser import png_pixels, require_browser, screenshot
from click.testing import CliRunner

from flyteplugins.wandb._cli import wandb_group
from flyteplugins.wandb._offline import find_offline_run_dirs, read_offline_run


def _make_run(wandb_root: Path) -> tuple[str, Path]:
    import wandb

    run = wandb.init(project="cli-reports", entity="team", config={"lr": 0.01})
    for step in range(30):
        run.log({"train/loss": 1.0 / (step + 1), "val/acc": step / 30})
    run.finish()
    (run_dir,) = find_offline_run_dirs(wandb_root, run.id)
    # wandb's service writes the end of the log just after finish() returns.
    assert read_offline_run(run_dir, wait=20).finished
    return str(run.id), run_dir


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(wandb_group, ["report", *args], catch_exceptions=False)


def test_report_of_a_run_directory_is_written_where_asked(wandb_root: Path, tmp_path: Path) -> None:
    _, run_dir = _make_run(wandb_root)
    out = tmp_path / "pages" / "run.html"
    result = _invoke(str(run_dir), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"Wrote the report of {run_dir} to {out}"
    page = out.read_text()
    assert page.startswith("<!doctype html>") and page.count("<svg") == 2
    assert 'href="https://wandb.ai/team/cli-reports/runs/' in page


def test_report_of_a_run_id_is_found_and_named_after_it(wandb_root: Path) -> None:
    run_id, _ = _make_run(wandb_root)
    result = _invoke(run_id)
    assert result.exit_code == 0, result.output
    written = Path(f"wandb-report-{run_id}.html")  # in the working directory
    assert result.output.strip().endswith(str(written)) and written.is_file()
    assert f'data-run-id="{run_id}"' in written.read_text()


def test_unknown_run_is_a_one_line_error() -> None:
    result = CliRunner().invoke(wandb_group, ["report", "no-such-run"])
    assert result.exit_code == 2
    assert "no W&B run folder, run id or run id prefix 'no-such-run' here" in result.output


def test_without_the_drawing_library_the_command_says_how_to_install_it(wandb_root: Path) -> None:
    _, run_dir = _make_run(wandb_root)
    # A fresh interpreter in which pygal cannot be imported, as without the "report" extra.
    code = (
        "import sys; sys.modules['pygal'] = None\n"
        "from flyteplugins.wandb._cli import wandb_group\n"
        f"wandb_group(['report', {str(run_dir)!r}])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "pip install 'flyteplugins-wandb[report]'" in done.stderr


def test_the_page_renders_in_a_real_browser(wandb_root: Path, tmp_path: Path) -> None:
    browser = require_browser()
    _, run_dir = _make_run(wandb_root)
    page = tmp_path / "page.html"
    assert _invoke(str(run_dir), "-o", str(page)).exit_code == 0
    shot = tmp_path / "shot.png"
    screenshot(browser, page, shot, 800, 900, tmp_path)
    width, height, pixels = png_pixels(shot.read_bytes())
    assert (width, height) == (800, 900)
    background = max(set(pixels[::97]), key=pixels[::97].count)
    drawn = sum(1 for p in pixels if p != background)
    assert drawn > len(pixels) // 50, "the screenshot is (nearly) blank"
    # The chart line colour (light theme) is on the screen: the SVG charts were drawn.
    line = bytes((0x0B, 0x66, 0xD6))
    assert (
        sum(1 for p in pixels if abs(p[0] - line[0]) + abs(p[1] - line[1]) + abs(p[2] - line[2]) < 40) > 200
    )


def test_the_report_tab_example_prints_its_report_and_page(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "report_tab.py"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "FLYTEPLUGINS_WANDB_"))}
    done = subprocess.run(
        [sys.executable, str(example)],
        cwd=tmp_path,
        env={**environ, "WANDB_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    report = Path(done.stdout.split("Flyte report (tab 'Weights & Biases'): ", 1)[1].split("\n", 1)[0])
    page = tmp_path / done.stdout.split("Page of the run (flyte wandb report): ", 1)[1].strip()
    for html_text in (report.read_text(), page.read_text()):
        # Six metrics; epoch is their x axis only (define_metric), not a chart of its own.
        assert html_text.count("<svg") == 6 and '<figure data-metric="epoch">' not in html_text
        assert '<figure data-metric="val/accuracy">' in html_text and ">epoch</text>" in html_text
        # The tab and `flyte wandb report`'s page (one renderer) show the pipeline's lineage.
        assert "<b>Run notes:</b> Flyte local run " in html_text
        assert "<h4>Flyte actions (3, from the run config)</h4>" in html_text
        assert "<h4>Artifacts logged (1)</h4>" in html_text and "prepare-o0" in html_text
        assert "<h4>Artifacts and blobs used (1)</h4>" in html_text and "<td>data</td>" in html_text
