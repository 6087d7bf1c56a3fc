"""Benchmarks of flyteplugins-wandb, side by side with the reference plugin when it is installed.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/run.py``). Every measurement runs in
fresh interpreters started by this script, in a temporary working directory with offline W&B:

1. import cost: ``import flyteplugins.wandb`` (and the names a user imports) against ``import flyte``;
2. ``Wandb().get_link(...)`` per call with every configuration layer active;
3. per-task overhead of ``@wandb_init`` children in a real local Flyte run.

The table goes to stdout, ``benchmarks/results.md`` and, between its markers, ``docs/performance.md``.
``--profile`` prints where the time goes instead (cProfile, ``-X importtime``).

Example:
    ```bash
    .venv/bin/python benchmarks/run.py            # full run, about two minutes on two cores
    .venv/bin/python benchmarks/run.py --quick    # smaller samples, writes nothing
    .venv/bin/python benchmarks/run.py --profile  # where the time goes, this package only
    ```
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parent.parent
RESULTS_MD = SCRIPT.parent / "results.md"
PERFORMANCE_MD = REPO / "docs" / "performance.md"
BEGIN_MARKER = "<!-- bench-table -->"
END_MARKER = "<!-- /bench-table -->"
PROJECT_PYTHON = sys.executable
DEFAULT_REFERENCE_PYTHON = "/tmp/ref/bin/python"

# Targets of this package.
IMPORT_RATIO_TARGET = 1.15
LINK_TARGET_US = 2.0
SHARED_CHILD_TARGET_MS = 1.0
COLD_EXTRA_RATIO_TARGET = 0.7
# The reference plugin's documented figures, shown when it cannot be measured here.
DOCUMENTED_REFERENCE = {
    "import_ratio": "~4x (documented)",
    "shared_ms": "~10 (documented)",
    "own_ms": "~55 (documented)",
    "gather": "≈ one after another (documented)",
}
DOCUMENTED_OWN_RUN_MS = 55.0

# Variables that would change what is measured if the caller's shell happened to set them.
_FOREIGN_ENV_PREFIXES = ("WANDB_", "FLYTEPLUGINS_WANDB_")
_FOREIGN_ENV_VARS = (
    "PYTHONPATH",
    "PYTHONDONTWRITEBYTECODE",
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
)

# name: (set-up, not timed; the statement timed)
IMPORT_STATEMENTS = {
    "flyte": ("", "import flyte"),
    "plugin": ("", "import flyteplugins.wandb"),
    "user": ("", "import flyte\nfrom flyteplugins.wandb import Wandb, wandb_config, wandb_init"),
    # What a process that runs tasks pays: flyte.init() (and a task's run) import pydantic anyway.
    "in_task_process": (
        "import flyte\nflyte.init()",
        "from flyteplugins.wandb import Wandb, wandb_config, wandb_init",
    ),
}
# Timed in a fresh interpreter; json is imported after the clock stops so that it is not counted.
_IMPORT_PROBE = """\
import sys, time
{setup}
_t0 = time.perf_counter()
{statement}
_t1 = time.perf_counter()
import json
print(json.dumps({{"ms": (_t1 - _t0) * 1e3, "wandb": "wandb" in sys.modules,
                  "flyte_io": "flyte.io" in sys.modules, "modules": len(sys.modules)}}))
"""


@dataclass(frozen=True)
class Settings:
    """How much to measure."""

    import_reps: int
    link_batches: int
    link_calls_per_batch: int
    children: int
    rounds: int
    cold_reps: int = 7


FULL = Settings(import_reps=15, link_batches=41, link_calls_per_batch=2000, children=50, rounds=5)
QUICK = Settings(
    import_reps=5, link_batches=11, link_calls_per_batch=1000, children=20, rounds=1, cold_reps=2
)


# --- running fresh interpreters ------------------------------------------------------------------


def clean_env(workdir: Path) -> dict[str, str]:
    """The environment of a benchmark interpreter: the caller's, without W&B or plugin settings.

    Bytecode is cached under ``workdir`` whatever the caller's ``PYTHONDONTWRITEBYTECODE`` says:
    without a cache every interpreter compiles the package from source, which users never pay
    (and an installed package, like the reference, ships compiled).

    Example:
        >>> env = clean_env(Path("/tmp/bench"))
        >>> "WANDB_PROJECT" in env, env["PYTHONPYCACHEPREFIX"]
        (False, '/tmp/bench/pycache')
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_FOREIGN_ENV_PREFIXES) and k not in _FOREIGN_ENV_VARS
    }
    env.setdefault("FLYTE_LOG_LEVEL", "WARNING")
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    return env


def run_python(python: str, args: Sequence[str], cwd: Path, timeout: float = 600) -> str:
    """Run ``python args...`` in ``cwd`` (never the repository: ``-c`` would put it on sys.path)."""
    proc = subprocess.run(
        [python, *args],
        cwd=cwd,
        env=clean_env(cwd),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{python} {' '.join(args[:3])} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
        )
    return proc.stdout


def run_worker(python: str, kind: str, settings: Settings, workdir: Path) -> dict[str, Any]:
    """Run one measurement of this script (``--worker kind``) in a fresh interpreter."""
    out = workdir / f"{kind}-{abs(hash(python))}.json"
    args = [str(SCRIPT), "--worker", kind, "--out", str(out), "--settings", json.dumps(settings.__dict__)]
    run_python(python, args, cwd=workdir)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


# --- 1. import cost ------------------------------------------------------------------------------


def measure_imports(pythons: dict[str, str], reps: int, workdir: Path) -> dict[str, dict[str, Any]]:
    """Median import times (ms) per interpreter and statement, each in a fresh interpreter.

    Statements and interpreters are interleaved so that a slow moment of a shared machine hits all
    of them alike; the first round only warms the bytecode and disk caches and is dropped.
    """
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {
        label: {name: [] for name in IMPORT_STATEMENTS} for label in pythons
    }
    for rep in range(reps + 1):
        for label, python in pythons.items():
            for name, (setup, statement) in IMPORT_STATEMENTS.items():
                probe = _IMPORT_PROBE.format(setup=setup, statement=statement)
                out = run_python(python, ["-c", probe], cwd=workdir)
                if rep:
                    samples[label][name].append(json.loads(out.strip().splitlines()[-1]))
    results: dict[str, dict[str, Any]] = {}
    for label, by_name in samples.items():
        medians = {name: statistics.median(s["ms"] for s in runs) for name, runs in by_name.items()}
        plugin = by_name["plugin"]
        user = by_name["user"]
        results[label] = {
            **{f"{name}_ms": ms for name, ms in medians.items()},
            "plugin_ratio": medians["plugin"] / medians["flyte"],
            "user_ratio": medians["user"] / medians["flyte"],
            "wandb_after_plugin": any(s["wandb"] for s in plugin),
            "flyte_io_after_plugin": any(s["flyte_io"] for s in plugin),
            "wandb_after_user": any(s["wandb"] for s in user),
            "flyte_io_after_user": any(s["flyte_io"] for s in user),
        }
    return results


# --- workers: what runs inside the fresh interpreters ---------------------------------------------


def _package_info() -> dict[str, str]:
    from importlib.metadata import version

    import flyteplugins.wandb as plugin

    return {
        "plugin_file": str(plugin.__file__),
        "plugin_version": version("flyteplugins-wandb"),
        "flyte_version": version("flyte"),
        "wandb_version": version("wandb"),
        "python": platform.python_version(),
    }


def _offline_wandb(workdir: Path) -> None:
    os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=str(workdir))


F = TypeVar("F", bound=Callable[..., Any])


def _task_decorator(env: Any) -> Callable[[F], F]:
    """``env.task`` with its type spelt out (flyte is not type-checked here)."""
    decorator: Callable[[F], F] = env.task
    return decorator


def _run_local(task: Any, *args: Any) -> Any:
    import flyte

    flyte.init()
    run = flyte.with_runcontext(mode="local").run(task, *args)
    outputs = run.outputs()
    return outputs[0] if isinstance(outputs, tuple) else getattr(outputs, "o0", outputs)


# The layers every get_link call resolves: a config file, environment variables, a parent's
# custom_context, a wandb_config block and the link's own explicitly-set fields.
_FILE_LAYER = 'project = "file-project"\nentity = "file-entity"\ntags = ["from-file"]\nrun_mode = "auto"\n'
_ENV_LAYER = {
    "WANDB_PROJECT": "env-project",
    "WANDB_ENTITY": "env-entity",
    "WANDB_BASE_URL": "https://api.wandb.example.com",
    "FLYTEPLUGINS_WANDB_RUN_MODE": "auto",
}
_PARENT_CONTEXT = {
    "wandb_project": "ctx-project",
    "wandb_entity": "ctx-entity",
    "wandb_tags": '["from-parent"]',
    "wandb_group": "ctx-group",
    "wandb_config": '{"lr": 0.01, "layers": 4}',
    "wandb_run_mode": "auto",
    "_wandb_run_id": "parent-run",
    "_wandb_run_entity": "ctx-entity",
    "_wandb_run_project": "ctx-project",
}
_RUN_NAME = "bench-run"


def _time_link_calls(get_link: Callable[..., str], batches: int, per_batch: int) -> list[float]:
    """Mean seconds per call of each batch.

    Every call has an action name of its own and, within a batch, a context dict of its own (equal
    contents, as siblings get from one parent), so nothing can be memoised on either's identity.
    """
    names = [f"a{i:07d}" for i in range((batches + 1) * per_batch)]
    chunks: Iterator[list[str]] = iter(names[i : i + per_batch] for i in range(0, len(names), per_batch))
    contexts = [dict(_PARENT_CONTEXT) for _ in range(per_batch)]

    def batch() -> None:
        for action, context in zip(next(chunks), contexts, strict=True):
            get_link(_RUN_NAME, "flytesnacks", "development", context, "a0", action, "pod-0")

    timer = timeit.Timer(batch)
    timer.timeit(number=1)  # warm-up batch
    return [total / per_batch for total in timer.repeat(repeat=batches, number=1)]


def worker_link(settings: Settings, workdir: Path, profile: bool = False) -> dict[str, Any]:
    """Time ``Wandb().get_link`` with every layer active, inside a local Flyte task.

    Inside a task because the reference plugin's blocks only take effect there.
    """
    config_file = workdir / "wandb.toml"
    config_file.write_text(_FILE_LAYER)
    os.environ.update(_ENV_LAYER, FLYTEPLUGINS_WANDB_CONFIG=str(config_file))
    _offline_wandb(workdir)

    import flyte

    from flyteplugins.wandb import Wandb, wandb_config

    task = _task_decorator(flyte.TaskEnvironment(name="bench_link"))

    @task
    async def link_bench() -> str:
        own = Wandb(project="link-project", entity="link-entity", run_mode="new")
        attached = Wandb(project="link-project", entity="link-entity")
        results: dict[str, Any] = {}
        with wandb_config(
            project="block-project", tags=["from-block"], config={"batch": 32}, run_mode="auto"
        ):
            for label, link, expected in (("own", own, "a0000000"), ("attached", attached, "parent-run")):
                sample = link.get_link(_RUN_NAME, "fp", "dev", dict(_PARENT_CONTEXT), "a0", "a0000000", "pod")
                if expected not in sample:
                    raise AssertionError(f"{label} link {sample!r} does not name {expected!r}")
                results[f"{label}_sample"] = sample
                if profile:
                    _profile(partial(_time_link_calls, link.get_link, 10, 2000), f"get_link ({label})")
                per_call = _time_link_calls(
                    link.get_link, settings.link_batches, settings.link_calls_per_batch
                )
                results[f"{label}_us"] = statistics.median(per_call) * 1e6
        return json.dumps(results)

    result: dict[str, Any] = json.loads(_run_local(link_bench))
    return {**result, **_package_info()}


def _run_dirs(workdir: Path) -> int:
    root = workdir / "wandb"
    return sum(1 for p in root.iterdir() if p.is_dir() and "run-" in p.name) if root.is_dir() else 0


def worker_tasks(settings: Settings, workdir: Path, profile: bool = False) -> dict[str, Any]:
    """Time a parent with N children: (a) no W&B, (b) sharing the parent's run, (c) own runs one
    after another, (d) own runs gathered concurrently; several rounds, phases interleaved."""
    import asyncio

    _offline_wandb(workdir)

    import flyte

    from flyteplugins.wandb import wandb_init

    task = _task_decorator(flyte.TaskEnvironment(name="bench_tasks"))

    @task
    async def plain_child(i: int) -> int:
        return i

    @wandb_init
    @task
    async def shared_child(i: int) -> int:
        return i

    @wandb_init(run_mode="new")
    @task
    async def own_child(i: int) -> int:
        return i

    async def sequential(child: Any, n: int) -> None:
        for i in range(n):
            await child(i)

    async def gathered(child: Any, n: int) -> None:
        await asyncio.gather(*(child(i) for i in range(n)))

    phases = {
        "a": (plain_child, sequential),
        "b": (shared_child, sequential),
        "c": (own_child, sequential),
        "d": (own_child, gathered),
    }

    @wandb_init(project="bench", entity="bench")
    @task
    async def parent(n: int, rounds: int) -> str:
        for child in (plain_child, shared_child, own_child):  # warm-up: first calls, first runs
            await sequential(child, 3)
        seconds: dict[str, list[float]] = {name: [] for name in phases}
        runs_created: dict[str, list[int]] = {name: [] for name in phases}
        for _ in range(rounds):
            for name, (child, how) in phases.items():
                before = _run_dirs(workdir)
                start = time.perf_counter()
                await how(child, n)
                seconds[name].append(time.perf_counter() - start)
                runs_created[name].append(_run_dirs(workdir) - before)
        return json.dumps({"seconds": seconds, "runs_created": runs_created})

    @wandb_init(project="bench", entity="bench")
    @task
    async def profiled_parent(n: int) -> str:
        await sequential(own_child, 3)
        await _profile_children(lambda: sequential(own_child, n), "own-run children, one after another")
        return "{}"

    if profile:
        _run_local(profiled_parent, settings.children)
        return {}
    result: dict[str, Any] = json.loads(_run_local(parent, settings.children, settings.rounds))
    return {**result, **_package_info()}


# --- cold start: one task in a fresh process ----------------------------------------------------

# What every remote task is: a fresh process that initialises Flyte and runs one task. The plain
# variant is the same process without W&B, the baseline of the same interpreter.
_COLD_PROBE = """\
import sys
import flyte

env = flyte.TaskEnvironment(name="cold")
if sys.argv[1] == "wandb":
    from flyteplugins.wandb import get_wandb_run, wandb_init

    @wandb_init(project="cold", entity="cold")
    @env.task
    async def train() -> float:
        run = get_wandb_run()
        for i in range(20):
            run.log({"loss": 1.0 / (i + 1)})
        return 0.5
else:
    @env.task
    async def train() -> float:
        loss = 0.0
        for i in range(20):
            loss = 1.0 / (i + 1)
        return 0.5

flyte.init()
flyte.with_runcontext(mode="local").run(train).outputs()
"""


def _time_process(python: str, args: Sequence[str], workdir: Path) -> tuple[float, int]:
    """Wall seconds from start to exit of ``python args...``, and its peak resident memory (KiB)."""
    env = clean_env(workdir)
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=str(workdir))
    start = time.perf_counter()
    proc = subprocess.Popen(
        [python, *args], cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{python} {' '.join(args)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return elapsed, int(usage.ru_maxrss)


def measure_cold(pythons: dict[str, str], reps: int, workdir: Path) -> dict[str, dict[str, Any]]:
    """One ``@wandb_init`` task in a fresh process, against the same process without W&B.

    Every round runs, for each interpreter, the plain and the W&B process back to back (one
    warm-up round dropped), so that load on the machine hits both alike; W&B's extra time is taken
    round by round against the same round's plain process.
    """
    script = workdir / "cold_task.py"
    script.write_text(_COLD_PROBE)
    samples: dict[str, dict[str, list[float]]] = {
        label: {"plain": [], "wandb": [], "extra": [], "rss_plain": [], "rss_wandb": []} for label in pythons
    }
    for round_ in range(reps + 1):
        for label, python in pythons.items():
            plain, rss_plain = _time_process(python, [str(script), "plain"], workdir)
            with_wandb, rss_wandb = _time_process(python, [str(script), "wandb"], workdir)
            if round_ == 0:
                continue
            got = samples[label]
            got["plain"].append(plain)
            got["wandb"].append(with_wandb)
            got["extra"].append(with_wandb - plain)
            got["rss_plain"].append(rss_plain / 1024)
            got["rss_wandb"].append(rss_wandb / 1024)
    return {label: {k: sorted(v) for k, v in got.items()} for label, got in samples.items()}


def spread(values: Sequence[float], unit: str = "s", digits: int = 2) -> str:
    """``median (min to max)`` of a sample.

    Example:
        >>> spread([1.0, 2.0, 4.0])
        '2.00 s (1.00 to 4.00)'
    """
    low, mid, high = (f"{v:.{digits}f}" for v in (min(values), statistics.median(values), max(values)))
    return f"{mid} {unit} ({low} to {high})"


def cold_rows(cold: dict[str, dict[str, Any]]) -> list[Row]:
    """Rows of the cold one-task process: wall time, W&B's extra time and its ratio, peak memory."""
    ours, ref = cold["ours"], cold.get("reference")
    ratio = statistics.median(ours["extra"]) / statistics.median(ref["extra"]) if ref else None
    rows = [
        Row(
            "cold: one-task process without W&B (`flyte.init()` + local run): wall, median (min to max)",
            spread(ours["plain"]),
            spread(ref["plain"]) if ref else "-",
            "-",
            "-",
        ),
        Row(
            "cold: the same with one `@wandb_init` task logging 20 steps, offline: wall",
            spread(ours["wandb"]),
            spread(ref["wandb"]) if ref else "-",
            "-",
            "-",
        ),
        Row(
            "cold: W&B's extra wall time (round by round against the plain process)",
            spread(ours["extra"]),
            spread(ref["extra"]) if ref else "-",
            f"≤ {COLD_EXTRA_RATIO_TARGET:.1f}x the reference's",
            f"{_yes(ratio <= COLD_EXTRA_RATIO_TARGET)} ({ratio:.2f}x)" if ratio is not None else "-",
        ),
        Row(
            "cold: peak resident memory of the W&B process",
            spread(ours["rss_wandb"], "MB", 0),
            spread(ref["rss_wandb"], "MB", 0) if ref else "-",
            "≤ the reference's",
            _yes(statistics.median(ours["rss_wandb"]) <= statistics.median(ref["rss_wandb"])) if ref else "-",
        ),
    ]
    return rows


# --- profiling -----------------------------------------------------------------------------------


def _print_stats(profiler: Any, title: str, limit: int = 25) -> None:
    import io
    import pstats

    for order in ("cumulative", "tottime"):
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).strip_dirs().sort_stats(order).print_stats(limit)
        print(f"\n=== {title}: by {order} ===\n{stream.getvalue()}", flush=True)
    # The package's own functions, so that its share is not lost among wandb's and flyte's.
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats("flyteplugins/wandb/", limit)
    print(f"\n=== {title}: flyteplugins.wandb functions, by cumulative ===\n{stream.getvalue()}", flush=True)


def _profile(fn: Callable[[], object], title: str) -> None:
    import cProfile

    profiler = cProfile.Profile()
    profiler.runcall(fn)
    _print_stats(profiler, title)


async def _profile_children(make: Callable[[], Awaitable[None]], title: str) -> None:
    """Profile child tasks awaited here, with ``asyncio.to_thread`` run inline: cProfile only sees
    its own thread, and the ``@wandb_init`` wrapper hands ``wandb.init`` to worker threads."""
    import asyncio
    import cProfile

    async def inline(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    original = asyncio.to_thread
    profiler = cProfile.Profile()
    asyncio.to_thread = inline
    profiler.enable()
    try:
        await make()
    finally:
        profiler.disable()
        asyncio.to_thread = original
    _print_stats(profiler, title)


def profile_imports(workdir: Path) -> None:
    """What ``import flyte`` + the public names cost beyond ``import flyte`` (``-X importtime``)."""
    statement = "import flyte\nimport sys\nsys.stderr.write('--- flyte imported ---\\n')\n"
    statement += "from flyteplugins.wandb import Wandb, wandb_config, wandb_init"
    run_python(PROJECT_PYTHON, ["-c", statement], cwd=workdir)  # fills the bytecode cache
    proc = subprocess.run(
        [PROJECT_PYTHON, "-X", "importtime", "-c", statement],
        cwd=workdir,
        env=clean_env(workdir),
        capture_output=True,
        text=True,
        check=True,
    )
    lines = proc.stderr.split("--- flyte imported ---\n", 1)[-1].splitlines()
    rows = []
    for line in lines:
        parts = line.split("|")
        if len(parts) == 3 and parts[0].startswith("import time:") and parts[1].strip().isdigit():
            rows.append((int(parts[1]), int(parts[0].split(":")[1]), parts[2].rstrip()))
    print("\n=== import cost beyond `import flyte` (cumulative us, self us, module; >= 2 ms) ===")
    for cumulative, own, module in rows:
        if cumulative >= 2000:
            print(f"{cumulative:>9} {own:>9} {module}")


# --- the table -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    metric: str
    ours: str
    reference: str
    target: str
    met: str


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _ms(value: float) -> str:
    return f"{value:.1f} ms"


def task_figures(result: dict[str, Any]) -> dict[str, float]:
    """Per-child figures from the per-round phase times of :func:`worker_tasks`.

    Overheads are taken round by round against that round's no-W&B baseline, then the median.

    Example:
        >>> seconds = {"a": [0.05], "b": [0.1], "c": [1.05], "d": [0.525]}
        >>> f = task_figures({"seconds": seconds, "children": 50})
        >>> round(f["shared_ms"], 3), round(f["own_ms"], 3), round(f["gather_ratio"], 3)
        (1.0, 20.0, 0.5)
    """
    seconds = result["seconds"]
    n = result["children"]
    a, b, c, d = (seconds[k] for k in "abcd")
    return {
        "baseline_ms": statistics.median(a) / n * 1e3,
        "shared_ms": statistics.median((bi - ai) / n * 1e3 for ai, bi in zip(a, b, strict=True)),
        "own_ms": statistics.median((ci - ai) / n * 1e3 for ai, ci in zip(a, c, strict=True)),
        "sequential_s": statistics.median(c),
        "gathered_s": statistics.median(d),
        "gather_ratio": statistics.median(d) / statistics.median(c),
    }


def build_rows(
    imports: dict[str, dict[str, Any]],
    links: dict[str, dict[str, Any]],
    tasks: dict[str, dict[str, Any]],
    children: int,
) -> list[Row]:
    """The results table: this package, the reference (measured or documented), targets."""
    ours_i, ref_i = imports["ours"], imports.get("reference", {})
    ours_l, ref_l = links["ours"], links.get("reference", {})
    ours_t = task_figures({**tasks["ours"], "children": children})
    ref_t = task_figures({**tasks["reference"], "children": children}) if "reference" in tasks else None

    def ref(value: Callable[[], str], documented: str = "-") -> str:
        return value() if ref_i else documented

    own_target = (ref_t["own_ms"] if ref_t else DOCUMENTED_OWN_RUN_MS) / 2
    own_basis = "½ measured reference" if ref_t else "½ documented ~55 ms"
    rows = [
        Row(
            "`import flyte` (baseline)",
            _ms(ours_i["flyte_ms"]),
            ref(lambda: _ms(ref_i["flyte_ms"])),
            "-",
            "-",
        ),
        Row(
            "`import flyteplugins.wandb`",
            _ms(ours_i["plugin_ms"]),
            ref(lambda: _ms(ref_i["plugin_ms"])),
            "-",
            "-",
        ),
        Row(
            "import ratio: `import flyteplugins.wandb` / `import flyte`",
            f"{ours_i['plugin_ratio']:.2f}x",
            ref(lambda: f"{ref_i['plugin_ratio']:.2f}x", DOCUMENTED_REFERENCE["import_ratio"]),
            f"≤ {IMPORT_RATIO_TARGET:.2f}x",
            _yes(ours_i["plugin_ratio"] <= IMPORT_RATIO_TARGET),
        ),
        Row(
            "import ratio: `import flyte` + `from flyteplugins.wandb import Wandb, wandb_config, wandb_init`"
            " / `import flyte`",
            f"{ours_i['user_ratio']:.2f}x",
            ref(lambda: f"{ref_i['user_ratio']:.2f}x"),
            f"≤ {IMPORT_RATIO_TARGET:.2f}x",
            _yes(ours_i["user_ratio"] <= IMPORT_RATIO_TARGET),
        ),
        Row(
            "`wandb` in `sys.modules` after the import (either statement)",
            "yes" if ours_i["wandb_after_plugin"] or ours_i["wandb_after_user"] else "no",
            ref(lambda: "yes" if ref_i["wandb_after_plugin"] else "no"),
            "no",
            _yes(not (ours_i["wandb_after_plugin"] or ours_i["wandb_after_user"])),
        ),
        Row(
            "`flyte.io` in `sys.modules` after the import (either statement)",
            "yes" if ours_i["flyte_io_after_plugin"] or ours_i["flyte_io_after_user"] else "no",
            ref(lambda: "yes" if ref_i["flyte_io_after_plugin"] else "no"),
            "no",
            _yes(not (ours_i["flyte_io_after_plugin"] or ours_i["flyte_io_after_user"])),
        ),
        Row(
            "in a process that runs tasks: `from flyteplugins.wandb import Wandb, wandb_config, wandb_init`"
            " after `flyte.init()` (which imports pydantic)",
            _ms(ours_i["in_task_process_ms"]),
            ref(lambda: _ms(ref_i["in_task_process_ms"])),
            "-",
            "-",
        ),
    ]
    for label, what in (("own", 'own run (`run_mode="new"`)'), ("attached", "attached to the parent's run")):
        rows.append(
            Row(
                f"`Wandb().get_link(...)`, all layers active, {what}: median per call",
                f"{ours_l[f'{label}_us']:.2f} µs",
                f"{ref_l[f'{label}_us']:.2f} µs" if ref_l else "-",
                f"≤ {LINK_TARGET_US:.0f} µs",
                _yes(ours_l[f"{label}_us"] <= LINK_TARGET_US),
            )
        )
    rows += [
        Row(
            f"(a) child task without W&B, {children} in a row: per child (baseline)",
            _ms(ours_t["baseline_ms"]),
            _ms(ref_t["baseline_ms"]) if ref_t else "-",
            "-",
            "-",
        ),
        Row(
            "(b) `@wandb_init` child sharing the parent's run: overhead per child",
            _ms(ours_t["shared_ms"]),
            _ms(ref_t["shared_ms"]) if ref_t else DOCUMENTED_REFERENCE["shared_ms"],
            f"≤ {SHARED_CHILD_TARGET_MS:.0f} ms",
            _yes(ours_t["shared_ms"] <= SHARED_CHILD_TARGET_MS),
        ),
        Row(
            '(c) `@wandb_init(run_mode="new")` child, one after another: overhead per child',
            _ms(ours_t["own_ms"]),
            _ms(ref_t["own_ms"]) if ref_t else DOCUMENTED_REFERENCE["own_ms"],
            f"≤ {own_target:.1f} ms ({own_basis})",
            _yes(ours_t["own_ms"] <= own_target),
        ),
        Row(
            f"(d) {children} own-run children with `asyncio.gather`: wall time vs (c)",
            f"{ours_t['gathered_s']:.2f} s vs {ours_t['sequential_s']:.2f} s ({ours_t['gather_ratio']:.2f}x)",
            (
                f"{ref_t['gathered_s']:.2f} s vs {ref_t['sequential_s']:.2f} s ({ref_t['gather_ratio']:.2f}x)"
                if ref_t
                else DOCUMENTED_REFERENCE["gather"]
            ),
            "≤ (c)",
            _yes(ours_t["gather_ratio"] <= 1.0),
        ),
    ]
    return rows


def render_table(rows: Sequence[Row], reference_label: str) -> str:
    """A markdown table of the rows.

    Example:
        >>> print(render_table([Row("m", "1", "2", "≤ 3", "yes")], "reference"))
        | metric | this package | reference | target | met? |
        |---|---|---|---|---|
        | m | 1 | 2 | ≤ 3 | yes |
    """
    lines = [f"| metric | this package | {reference_label} | target | met? |", "|---|---|---|---|---|"]
    lines += [f"| {r.metric} | {r.ours} | {r.reference} | {r.target} | {r.met} |" for r in rows]
    return "\n".join(lines)


def machine_info() -> dict[str, str]:
    """Cores, CPU, OS, Python and load average (1, 5, 15 min) of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "unknown"
    return {
        "load": load,
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def replace_between_markers(text: str, table: str) -> str | None:
    """``text`` with ``table`` between the bench-table markers, or ``None`` if they are missing.

    Example:
        >>> replace_between_markers("a\\n<!-- bench-table -->\\nold\\n<!-- /bench-table -->\\nb", "new")
        'a\\n<!-- bench-table -->\\nnew\\n<!-- /bench-table -->\\nb'
    """
    start = text.find(BEGIN_MARKER)
    end = text.find(END_MARKER, start + len(BEGIN_MARKER)) if start >= 0 else -1
    if start < 0 or end < 0:
        return None
    return f"{text[: start + len(BEGIN_MARKER)]}\n{table}\n{text[end:]}"


# --- main ----------------------------------------------------------------------------------------


def _worker_main(kind: str, out: Path, settings: Settings) -> None:
    with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as tmp:
        workdir = Path(tmp)
        os.chdir(workdir)
        if kind == "link":
            result = worker_link(settings, workdir)
        elif kind == "tasks":
            result = worker_tasks(settings, workdir)
        elif kind == "lineage":
            result = worker_lineage(settings, workdir)
        elif kind == "profile-link":
            worker_link(QUICK, workdir, profile=True)
            result = {}
        elif kind == "profile-tasks":
            worker_tasks(Settings(0, 0, 0, children=20, rounds=1), workdir, profile=True)
            result = {}
        else:
            raise SystemExit(f"unknown worker {kind!r}")
    out.write_text(json.dumps(result))


def _check_origin(label: str, info: dict[str, Any]) -> None:
    inside_repo = Path(info["plugin_file"]).resolve().is_relative_to(REPO)
    if inside_repo != (label == "ours"):
        raise RuntimeError(f"the {label} measurement imported flyteplugins.wandb from {info['plugin_file']}")


def _profile_main(workdir: Path) -> None:
    profile_imports(workdir)
    for kind in ("profile-link", "profile-tasks"):
        out = workdir / f"{kind}.json"
        args = [str(SCRIPT), "--worker", kind, "--out", str(out), "--settings", json.dumps(QUICK.__dict__)]
        proc = subprocess.run(
            [PROJECT_PYTHON, *args],
            cwd=workdir,
            env=clean_env(workdir),
            capture_output=True,
            text=True,
            check=False,
        )
        print(proc.stdout)
        if proc.returncode:
            print(proc.stderr[-4000:], file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every benchmark, print the table and write it to the results files."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller samples; print only, write nothing")
    parser.add_argument("--profile", action="store_true", help="print where the time goes (this package)")
    parser.add_argument("--reference", default=DEFAULT_REFERENCE_PYTHON, help="python of the reference venv")
    parser.add_argument("--report-tab", action="store_true", help="time the W&B report tab (only that)")
    parser.add_argument(
        "--compare", action="store_true", help="time a fan-out's comparison (100 children; only that)"
    )
    parser.add_argument("--pods", action="store_true", help="W&B's cost as pods see it (only that)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.report_tab:
        return report_tab_main()
    if args.compare:
        return compare_main()
    if args.pods:
        return pods_main(args.reference, args.quick)
    if args.worker:
        _worker_main(args.worker, Path(args.out), Settings(**json.loads(args.settings)))
        return 0

    started = time.perf_counter()
    # Taken before measuring: on a shared machine the load says how far to trust the numbers.
    machine = machine_info()
    settings = QUICK if args.quick else FULL
    pythons = {"ours": PROJECT_PYTHON}
    if Path(args.reference).exists():
        pythons["reference"] = args.reference
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        if args.profile:
            _profile_main(workdir)
            return 0
        print(f"import cost: {settings.import_reps} fresh interpreters per statement ...", flush=True)
        imports = measure_imports(pythons, settings.import_reps, workdir)
        print(f"cold start: {settings.cold_reps} rounds of one-task processes ...", flush=True)
        cold = measure_cold(pythons, settings.cold_reps, workdir)
        links: dict[str, dict[str, Any]] = {}
        tasks: dict[str, dict[str, Any]] = {}
        for label, python in pythons.items():
            print(f"get_link ({label}) ...", flush=True)
            links[label] = run_worker(python, "link", settings, workdir)
            _check_origin(label, links[label])
            print(f"child tasks ({label}): {settings.rounds} rounds of {settings.children} ...", flush=True)
            tasks[label] = run_worker(python, "tasks", settings, workdir)
        print("lineage (ours) ...", flush=True)
        lineage = run_worker(PROJECT_PYTHON, "lineage", settings, workdir)

    rows = build_rows(imports, links, tasks, settings.children) + cold_rows(cold) + lineage_rows(lineage)
    reference_label = "reference (measured)" if "reference" in pythons else "reference (documented)"
    table = render_table(rows, reference_label)
    ours = links["ours"]
    machine_line = (
        f"Machine: {machine['cores']} cores ({machine['cpu']}), {machine['os']}, Python {machine['python']},"
        f" load average {machine['load']} at start; "
        f"flyte {ours['flyte_version']}, wandb {ours['wandb_version']}; "
        f"this package {ours['plugin_version']}"
        + (
            f", reference flyteplugins-wandb {links['reference']['plugin_version']}"
            if "reference" in links
            else ""
        )
        + "."
    )
    notes = _notes(settings, links, tasks)
    elapsed = time.perf_counter() - started
    print(f"\n{table}\n\n{machine_line}\n\n{notes}\nTotal benchmark time: {elapsed:.0f} s")

    failed_import_check = any(
        imports["ours"][key]
        for key in ("wandb_after_plugin", "flyte_io_after_plugin", "wandb_after_user", "flyte_io_after_user")
    )
    if args.quick:
        return 1 if failed_import_check else 0

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    RESULTS_MD.write_text(
        "# Benchmark results\n\n"
        f"Generated by `make bench` (`benchmarks/run.py`) on {stamp}; do not edit by hand.\n\n"
        f"{table}\n\n{machine_line}\n\n{notes}"
    )
    print(f"wrote {RESULTS_MD.relative_to(REPO)}")
    if PERFORMANCE_MD.is_file():
        updated = replace_between_markers(PERFORMANCE_MD.read_text(), f"{table}\n\n{machine_line}\n")
        if updated is None:
            print(
                f"{PERFORMANCE_MD.relative_to(REPO)} has no {BEGIN_MARKER} markers: table left in results.md"
            )
        else:
            PERFORMANCE_MD.write_text(updated)
            print(f"updated the table in {PERFORMANCE_MD.relative_to(REPO)}")
    else:
        print(f"{PERFORMANCE_MD.relative_to(REPO)} does not exist: table left in results.md")
    if failed_import_check:
        print("FAILED: importing flyteplugins.wandb imported wandb or flyte.io", file=sys.stderr)
        return 1
    return 0


def _notes(settings: Settings, links: dict[str, dict[str, Any]], tasks: dict[str, dict[str, Any]]) -> str:
    lines = [
        "How it was measured:",
        f"- imports: median of {settings.import_reps} fresh interpreters per statement (interleaved, after"
        " one warm-up round), timed around the import statement itself;",
        f"- cold start: {settings.cold_reps} rounds (after one warm-up round) of a fresh process that runs"
        " `flyte.init()` and a local run of one task, with and without `@wandb_init` (20 `run.log` calls,"
        " offline W&B), plain and W&B back to back for each interpreter, timed from process start to"
        " exit; W&B's extra time round by round against the same round's plain process; peak memory"
        " is the process's own maximum resident set (`wait4`);",
        f"- `get_link`: median of {settings.link_batches} batch means, {settings.link_calls_per_batch} calls"
        " per batch, a distinct action name and context dict per call, inside a local Flyte task with a"
        " TOML config file"
        " (`FLYTEPLUGINS_WANDB_CONFIG`), `WANDB_PROJECT`/`WANDB_ENTITY`/`WANDB_BASE_URL`/"
        "`FLYTEPLUGINS_WANDB_RUN_MODE`, a parent context with wandb_* keys and `_wandb_run_id`, an active"
        " `wandb_config` block and explicitly-set link fields;",
        f"- child tasks: one local Flyte run, parent `@wandb_init` with {settings.children} children per"
        f" phase, phases (a)-(d) interleaved over {settings.rounds} rounds after a warm-up; overheads are per"
        " round against that round's (a), then the median. Offline W&B, `WANDB_SILENT=true`, temporary"
        " `WANDB_DIR`.",
        "",
        "Sanity checks (what each measurement really did):",
    ]
    for label in links:
        lines.append(
            f"- {label}: own-run link `{links[label]['own_sample']}`, attached link"
            f" `{links[label]['attached_sample']}`"
        )
        created = tasks[label]["runs_created"]
        per_phase = ", ".join(f"({k}) {statistics.median(v):.0f}" for k, v in created.items())
        lines.append(f"- {label}: W&B run directories created per {settings.children} children: {per_phase}")
    lines += ["", "Where the time goes: `.venv/bin/python benchmarks/run.py --profile`."]
    return "\n".join(lines) + "\n"


# --- lineage: backlink + inputs per task, reference artifacts against blob size ------------------

LINEAGE_TARGET_MS = 1.0
# A reference artifact costs the same whatever the blob's size: within this ratio (noise).
REFERENCE_SIZE_RATIO_TARGET = 1.5
SMALL_BLOB = 1024
LARGE_BLOB = 200 * 1024 * 1024


def worker_lineage(settings: Settings, workdir: Path) -> dict[str, Any]:
    """Time (1) ``@wandb_init`` children sharing the parent's run, with five inputs, with and
    without lineage (the backlink and inputs: ``TaskLineage.prepare`` switched off for the
    baseline), phases interleaved; (2) logging a reference artifact of a 1 KB and of a 200 MB
    file (sparse: its bytes would still have to be read to be hashed or copied)."""
    _offline_wandb(workdir)

    import flyte
    from flyte.io import File

    from flyteplugins.wandb import get_wandb_run, wandb_init
    from flyteplugins.wandb._lineage import ArtifactSpec, TaskLineage, _build_artifact

    # Flyte reads the task's annotations (strings here) against this module's globals.
    globals()["File"] = File
    task = _task_decorator(flyte.TaskEnvironment(name="bench_lineage"))
    real_prepare = TaskLineage.prepare

    def no_lineage(self: TaskLineage, scope: Any, args: Any, kwargs: Any) -> None:
        return None

    @wandb_init
    @task
    async def child(i: int, lr: float, name: str, layers: list[int], data: File) -> int:
        return i

    blobs = {size: workdir / f"blob-{size}.bin" for size in (SMALL_BLOB, LARGE_BLOB)}
    for size, path in blobs.items():
        with open(path, "wb") as f:
            f.truncate(size)

    @wandb_init(project="bench", entity="bench")
    @task
    async def parent(n: int, rounds: int) -> str:
        data = File(path=str(blobs[SMALL_BLOB]))
        for i in range(3):  # warm-up
            await child(i, 0.1, "resnet", [64, 32], data)
        seconds: dict[str, list[float]] = {"without": [], "with": []}
        for _ in range(rounds):
            for phase in ("without", "with"):
                TaskLineage.prepare = real_prepare if phase == "with" else no_lineage  # type: ignore[method-assign]
                start = time.perf_counter()
                for i in range(n):
                    await child(i, 0.1, "resnet", [64, 32], data)
                seconds[phase].append(time.perf_counter() - start)
        TaskLineage.prepare = real_prepare  # type: ignore[method-assign]
        run = get_wandb_run()
        per_size: dict[str, list[float]] = {str(size): [] for size in blobs}
        for _ in range(max(5, rounds * 4)):
            for size, path in blobs.items():
                spec = ArtifactSpec.for_blob(f"file://{path}", "file")
                start = time.perf_counter()
                run.log_artifact(_build_artifact(spec))
                per_size[str(size)].append(time.perf_counter() - start)
        return json.dumps({"seconds": seconds, "artifact_seconds": per_size})

    result: dict[str, Any] = json.loads(_run_local(parent, settings.children, settings.rounds))
    return {**result, "children": settings.children}


def lineage_figures(result: dict[str, Any]) -> dict[str, float]:
    """Per-child lineage overhead (median of rounds) and median reference-artifact times.

    Example:
        >>> r = {"seconds": {"without": [0.1], "with": [0.125]}, "children": 50,
        ...      "artifact_seconds": {"1024": [0.002], "209715200": [0.0022]}}
        >>> f = lineage_figures(r)
        >>> round(f["overhead_ms"], 3), round(f["small_ms"], 1), round(f["size_ratio"], 2)
        (0.5, 2.0, 1.1)
    """
    n = result["children"]
    seconds = result["seconds"]
    pairs = zip(seconds["without"], seconds["with"], strict=True)
    small = statistics.median(result["artifact_seconds"][str(SMALL_BLOB)]) * 1e3
    large = statistics.median(result["artifact_seconds"][str(LARGE_BLOB)]) * 1e3
    return {
        "baseline_ms": statistics.median(seconds["without"]) / n * 1e3,
        "overhead_ms": statistics.median((w - wo) / n * 1e3 for wo, w in pairs),
        "small_ms": small,
        "large_ms": large,
        "size_ratio": large / small,
    }


def lineage_rows(result: dict[str, Any]) -> list[Row]:
    """The lineage rows of the results table (this package only: the reference has no lineage)."""
    f = lineage_figures(result)
    return [
        Row(
            "lineage: backlink + 5 inputs, `@wandb_init` child sharing the parent's run: overhead per child",
            f"{f['overhead_ms']:.2f} ms (child {f['baseline_ms']:.1f} ms without)",
            "no lineage",
            f"≤ {LINEAGE_TARGET_MS:.0f} ms",
            _yes(f["overhead_ms"] <= LINEAGE_TARGET_MS),
        ),
        Row(
            "lineage: reference artifact of a File output, 1 KB vs 200 MB blob: median per artifact",
            f"{f['small_ms']:.2f} ms vs {f['large_ms']:.2f} ms ({f['size_ratio']:.2f}x)",
            "no lineage",
            f"≤ {REFERENCE_SIZE_RATIO_TARGET:.1f}x",
            _yes(f["size_ratio"] <= REFERENCE_SIZE_RATIO_TARGET),
        ),
    ]


# --- the "Weights & Biases" report tab (docs/performance.md, "Report tab") ------------------------

REPORT_STEPS = 20_000
REPORT_METRICS = 10
REPORT_ROUNDS = 30
REPORT_TAB_TARGET = 0.10
# report=False; report=True with the W&B tab turned off; report=True with the tab.
VARIANTS = ("plain", "report", "tab")


def report_tab_benchmark(
    steps: int = REPORT_STEPS, metrics: int = REPORT_METRICS, rounds: int = REPORT_ROUNDS
) -> str:
    """Time a local task that logs ``steps`` x ``metrics`` with and without its report tab.

    Both tasks start their own offline run and log the same values; the one declared with
    ``report=True`` also reads its run's log and writes the tab when it ends; a third variant is
    declared with ``report=True`` but has the W&B tab turned off (what Flyte's report costs
    alone). Each round runs the three in a shuffled order, after a small warm-up; the whole-task
    differences are paired by round. The tab's build alone (read the log, plan, draw) is timed on
    the last run's directory. Returns a markdown table.
    """
    import math

    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        workdir = Path(tmp)
        os.chdir(workdir)
        _offline_wandb(workdir)
        import flyte

        from flyteplugins.wandb import get_wandb_run, wandb_init
        from flyteplugins.wandb._history import read_history
        from flyteplugins.wandb._report import render_report

        env = flyte.TaskEnvironment(name="bench_report")
        keys = [f"group{k % 3}/metric{k}" for k in range(metrics)]

        def body(n: int) -> str:
            run = get_wandb_run()
            for step in range(n):
                run.log(
                    {
                        key: math.exp(-step / 4000) + 0.01 * math.sin(step * (k + 1))
                        for k, key in enumerate(keys)
                    }
                )
            return os.path.dirname(run.dir)

        @wandb_init(run_mode="new")
        @env.task
        async def plain(n: int) -> str:
            return body(n)

        @wandb_init(run_mode="new")
        @env.task(report=True)
        async def with_tab(n: int) -> str:
            return body(n)

        # report=True with the W&B tab turned off by its setting (Flyte's own report machinery only).
        @wandb_init(run_mode="new", report_tab=False)
        @env.task(report=True)
        async def without_tab(n: int) -> str:
            return body(n)

        from flyteplugins.wandb._report_tab import ReportTab

        # How long each task spends on its tab at its end (measured around the plugin's own call).
        at_end: list[float] = []
        write_async = ReportTab.write_async

        async def timed_write(self: Any, failed: bool) -> None:
            start = time.perf_counter()
            await write_async(self, failed)
            at_end.append(time.perf_counter() - start)

        ReportTab.write_async = timed_write  # type: ignore[method-assign]
        from flyteplugins.wandb._report_follow import Follower

        # The helper's own CPU time (user + system), which it reports with the page.
        helper_cpu: list[float] = []
        answer = Follower.answer

        def counted_answer(self: Any, timeout: float) -> str | None:
            page = answer(self, timeout)
            if self.cpu_seconds is not None:
                helper_cpu.append(self.cpu_seconds)
            return page

        Follower.answer = counted_answer  # type: ignore[method-assign]

        def timed(task: Any, n: int) -> tuple[float, str]:
            start = time.perf_counter()
            run_dir = _run_local(task, n)
            return time.perf_counter() - start, str(run_dir)

        tasks = {"plain": plain, "report": without_tab, "tab": with_tab}

        def run_variant(variant: str, n: int) -> tuple[float, str]:
            return timed(tasks[variant], n)

        for variant in VARIANTS:
            run_variant(variant, 200)
        at_end.clear()
        helper_cpu.clear()
        wall: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        plain_cpu: list[float] = []
        run_dir = ""
        order = list(VARIANTS)
        shuffle = random.Random(11).shuffle
        for _ in range(rounds):
            shuffle(order)  # no variant always runs first in a round
            for variant in order:
                cpu = time.process_time()
                seconds, directory = run_variant(variant, steps)
                wall[variant].append(seconds)
                if variant == "plain":
                    plain_cpu.append(time.process_time() - cpu)
                if variant == "tab":
                    run_dir = directory
        ReportTab.write_async = write_async  # type: ignore[method-assign]
        Follower.answer = answer  # type: ignore[method-assign]
        build_s: list[float] = []
        size = 0
        for _ in range(3):
            start = time.perf_counter()
            page = render_report(read_history(run_dir))
            build_s.append(time.perf_counter() - start)
            size = len(page.encode())
    plain_m, report_m, tab_m = (statistics.median(wall[v]) for v in VARIANTS)
    build_m, end_m = statistics.median(build_s), statistics.median(at_end)

    def paired(base: str) -> str:
        # Each round's task with the tab against the other variant's task of the same round.
        differences = sorted(t - b for b, t in zip(wall[base], wall["tab"], strict=True))
        median = statistics.median(differences)
        low, _, high = statistics.quantiles(differences, n=4)
        base_m = statistics.median(wall[base])
        return f"{median:+.2f} s ({median / base_m:+.1%}; quartiles {low:+.2f} to {high:+.2f} s)"

    overhead = end_m / report_m
    end_max = max(at_end)
    helper_m = statistics.median(helper_cpu) if helper_cpu else math.nan
    plain_cpu_m = statistics.median(plain_cpu)
    rows = [
        "| measurement | value |",
        "|---|---|",
        f"| task logging {steps:,} steps x {metrics} metrics, `report=False` (median of {rounds})"
        f" | {plain_m:.2f} s |",
        f"| the same task with `report=True`, the W&B tab turned off | {report_m:.2f} s |",
        f"| the same task with `report=True` and its W&B tab | {tab_m:.2f} s |",
        f"| time the task spends on its tab at its end (target <= {REPORT_TAB_TARGET:.0%} of the task)"
        f" | {end_m:.2f} s ({overhead:.1%}) {_yes(overhead <= REPORT_TAB_TARGET)} |",
        f"| the same, slowest of the {rounds} rounds | {end_max:.2f} s ({end_max / report_m:.1%}) |",
        f"| whole task with the tab against `report=True` without it, paired by round | {paired('report')} |",
        f"| whole task with the tab against `report=False`, paired by round | {paired('plain')} |",
        f"| CPU time of the helper that follows the log (all of it: start, reading, drawing)"
        f" | {helper_m:.2f} s ({helper_m / plain_cpu_m:.0%} of the task process's own CPU time,"
        f" {plain_cpu_m:.2f} s; wandb's service adds about as much again) |",
        f"| the tab built in the task's process instead (no helper): read the whole log, plan, draw"
        f" | {build_m:.2f} s "
        f"({build_m / report_m:.1%} of the task) |",
        f"| page size | {size / 1024:.0f} KB |",
    ]
    return "\n".join(rows)


def report_tab_main() -> int:
    """``benchmarks/run.py --report-tab``: print the report tab's table."""
    machine = machine_info()
    table = report_tab_benchmark()
    print(f"{table}\n\nload average {machine['load']} at start")
    return 0


# --- a fan-out's comparison (docs/performance.md, "Comparing a fan-out") ----------------------------

COMPARE_CHILDREN = 100
COMPARE_STEPS = 2_000
COMPARE_METRICS = 5
COMPARE_ROUNDS = 7
COMPARE_TARGET_S = 1.0
COMPARE_TARGET_BYTES = 2_000_000


def _child_history(index: int, steps: int, metrics: int) -> Any:
    """A child's history as the log reader gives it: ``steps`` x ``metrics`` noisy decaying curves."""
    import math

    from flyteplugins.wandb._history import Column, RunHistory
    from flyteplugins.wandb._offline import OfflineRun

    rate = 0.0005 * (1 + index % 17)
    columns = {
        f"train/metric{k}": Column(
            list(range(steps)),
            [
                math.exp(-rate * step) * (k + 1) + 0.02 * math.sin(step * (k + 3) + index)
                for step in range(steps)
            ],
        )
        for k in range(metrics)
    }
    columns["_step"] = Column(list(range(steps)), list(range(steps)))
    run = OfflineRun(
        path=Path("."),
        run_id=f"fanout-run-{index:03d}-" + "0123456789abcdefghijklmnopqrstuvwxyz0123456789",
        exit_code=0,
        summary={key: column.values[-1] for key, column in columns.items()},
        config={
            "flyte": {"task": "bench.fit", "action": f"a{index}", "inputs": {"lr": rate, "seed": index % 3}}
        },
    )
    return RunHistory(run, columns, rows=steps)


def _s_ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def compare_benchmark(
    children: int = COMPARE_CHILDREN,
    steps: int = COMPARE_STEPS,
    metrics: int = COMPARE_METRICS,
    rounds: int = COMPARE_ROUNDS,
) -> str:
    """Time the comparison of ``children`` runs of ``steps`` x ``metrics``, against one run's tab.

    Each child's digest is made once (a child's own cost, at its end) and written as JSON, as the
    channel between containers carries it. What the parent adds at its end: read the digests back,
    plan the comparison, render the section (medians of ``rounds``). The single-run tab's build
    of one child (plan and draw its charts, from the same in-memory history: no log reading on
    either side) is the yardstick. Returns a markdown table.
    """
    from flyteplugins.wandb._compare import plan_comparison
    from flyteplugins.wandb._digest import RunDigest, digest_history
    from flyteplugins.wandb._report import render_page, render_report
    from flyteplugins.wandb._report_compare import render_comparison

    histories = [_child_history(i, steps, metrics) for i in range(children)]
    digest_s: list[float] = []
    digests = []
    for history in histories:
        start = time.perf_counter()
        digests.append(digest_history(history))
        digest_s.append(time.perf_counter() - start)
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        folder = Path(tmp)
        for digest in digests:
            (folder / f"{digest.run_id}.json").write_text(digest.to_json(), encoding="utf-8")
        json_bytes = sum(p.stat().st_size for p in folder.iterdir())
        render_comparison(plan_comparison(digests))  # warm-up: imports, pygal's first chart
        render_report(histories[0])
        read_s: list[float] = []
        plan_s: list[float] = []
        render_s: list[float] = []
        single_s: list[float] = []
        cpu_s: list[float] = []
        page = ""
        for _ in range(rounds):
            cpu = time.process_time()
            start = time.perf_counter()
            loaded = [RunDigest.from_json(p.read_bytes()) for p in sorted(folder.iterdir())]
            read_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            comparison = plan_comparison(loaded)
            plan_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            page = render_comparison(comparison)
            render_s.append(time.perf_counter() - start)
            cpu_s.append(time.process_time() - cpu)
            start = time.perf_counter()
            render_report(histories[0])
            single_s.append(time.perf_counter() - start)
    whole = [r + p + d for r, p, d in zip(read_s, plan_s, render_s, strict=True)]
    size = len(render_page(page).encode())
    med = statistics.median
    rows = [
        "| measurement | value |",
        "|---|---|",
        f"| a child's digest of its run ({steps:,} steps x {metrics} metrics; median of {children})"
        f" | {_s_ms(med(digest_s))} |",
        f"| the {children} digests as JSON (what travels) | {json_bytes / 1024:.0f} KB "
        f"({json_bytes / children / 1024:.1f} KB each) |",
        f"| parent: read the {children} digests back (median of {rounds}) | {_s_ms(med(read_s))} |",
        f"| parent: plan the comparison | {_s_ms(med(plan_s))} |",
        f"| parent: render the section (table, {len(comparison.charts)} charts of"
        f" {max((len(c.lines) for c in comparison.charts), default=0)} lines) | {_s_ms(med(render_s))} |",
        f"| parent: all of it, added to its end (target <= {COMPARE_TARGET_S:.0f} s) | {_s_ms(med(whole))}"
        f" (slowest {_s_ms(max(whole))}) {_yes(max(whole) <= COMPARE_TARGET_S)} |",
        f"| parent: the same in CPU time (what it costs on an idle core) | {_s_ms(med(cpu_s))} |",
        f"| yardstick: one child's single-run tab from its history (plan, draw {metrics} charts) |"
        f" {_s_ms(med(single_s))} |",
        f"| comparison page size (target < 2 MB) | {size / 1024:.0f} KB"
        f" {_yes(size < COMPARE_TARGET_BYTES)} |",
    ]
    return "\n".join(rows)


def compare_main() -> int:
    """``benchmarks/run.py --compare``: print the comparison's table."""
    machine = machine_info()
    table = compare_benchmark()
    print(f"{table}\n\nload average {machine['load']} at start")


# --- pods and reused processes: W&B's cost as the pod sees it -----------------------------------

POD_BEGIN_MARKER = "<!-- bench-pods -->"
POD_END_MARKER = "<!-- /bench-pods -->"
POD_STALL_TIMEOUT_S = 6.0
POD_STALL_SLACK_S = 2.0
REUSED_ACTIONS = 200
REUSED_RSS_FROM = 50
REUSED_RSS_TARGET_MB = 10.0

# A task module both plugins can load (same names): what a pod runs through Flyte's `a0`. The
# mode is given to wandb.init: on a cluster the reference puts every run in W&B shared mode
# (online), whatever WANDB_MODE says.
_POD_TASKS = """
import flyte
from flyteplugins.wandb import get_wandb_run, wandb_init

env = flyte.TaskEnvironment(name="bench_pod")


@env.task
async def plain(steps: int) -> int:
    total = 0.0
    for i in range(steps):
        total += 1.0 / (i + 1)
    return steps


@wandb_init(project="bench-pod", mode="offline")
@env.task
async def logged(steps: int) -> int:
    run = get_wandb_run()
    for i in range(steps):
        run.log({"loss": 1.0 / (i + 1)})
    return steps


@wandb_init(project="bench-pod")
@env.task
async def logged_online(steps: int) -> int:
    run = get_wandb_run()
    for i in range(steps):
        run.log({"loss": 1.0 / (i + 1)})
    return steps
"""

# One process that runs actions one after another through `load_and_run_task`, as a reusable
# container does; prints the wall time of each action and the memory of the process and its
# children (wandb-core) after each, as JSON lines, read as the cluster rehearsal reads them.
_REUSED = """
import asyncio, json, os, sys, time
from pathlib import Path

sys.path.insert(0, os.environ["BENCH_TESTS_DIR"])
from cluster.procmem import memory

async def main(task, count, inputs, workdir):
    from flyte._internal.runtime.entrypoints import load_and_run_task
    from flyte.models import ActionID, RawDataPath
    for i in range(count):
        out = Path(workdir) / "out" / f"{task}-{i}"
        out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        await load_and_run_task(
            action=ActionID(name=f"{task}-{i}", run_name="reused", project="p", domain="d", org="o"),
            raw_data_path=RawDataPath(path=str(Path(workdir) / "raw")), output_path=str(out),
            run_base_dir=str(Path(workdir) / "base"), version="v1", controller=None,
            resolver="flyte._internal.resolvers.default.DefaultTaskResolver",
            resolver_args=["mod", "bench_pod_tasks", "instance", task], input_path=inputs,
        )
        seconds = time.perf_counter() - start
        if not (out / "outputs.pb").exists():
            raise SystemExit(f"action {task}-{i} failed: see {out}")
        print(json.dumps({"s": seconds, **memory()}), flush=True)

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]))
"""


def _pod_env(workdir: Path, **extra: str) -> dict[str, str]:
    env = clean_env(workdir)
    env.update(
        PYTHONPATH=str(workdir),
        FLYTE_CLUSTERED_WORKER="1",  # no controller: the action launches no sub-tasks
        WANDB_DIR=str(workdir),
        WANDB_MODE="offline",
    )
    env.update(extra)
    return env


def _write_pod_files(python: str, workdir: Path) -> Path:
    (workdir / "bench_pod_tasks.py").write_text(_POD_TASKS)
    (workdir / "bench_reused.py").write_text(_REUSED)
    inputs = workdir / "pod_inputs.pb"
    if not inputs.exists():
        code = (
            "import asyncio, sys\n"
            "import bench_pod_tasks\n"
            "from flyte._internal.runtime.convert import convert_from_native_to_inputs\n"
            "from flyte._internal.runtime.io import upload_inputs\n"
            "interface = bench_pod_tasks.plain.native_interface\n"
            "inputs = asyncio.run(convert_from_native_to_inputs(interface, 20))\n"
            "asyncio.run(upload_inputs(inputs, sys.argv[1]))\n"
        )
        subprocess.run([python, "-c", code, str(inputs)], check=True, env=_pod_env(workdir), cwd=workdir)
    return inputs


def _time_a0(python: str, task: str, workdir: Path, env: dict[str, str]) -> float:
    """Wall seconds of Flyte's pod entrypoint running ``task``, from process start to its exit."""
    inputs = workdir / "pod_inputs.pb"
    out = workdir / "pod-out" / f"{task}-{time.monotonic_ns()}"
    out.mkdir(parents=True)
    command = [
        python, "-m", "flyte._bin.runtime", "a0", "--inputs", str(inputs), "--outputs-path", str(out),
        "--version", "v1", "--run-base-dir", str(workdir / "base"), "--raw-data-path", str(workdir / "raw"),
        "--name", "a1", "--run-name", f"r{time.monotonic_ns()}", "--project", "p", "--domain", "d",
        "--org", "o", "--resolver", "flyte._internal.resolvers.default.DefaultTaskResolver",
        "mod", "bench_pod_tasks", "instance", task,
    ]  # fmt: skip
    log = out.with_suffix(".log")
    with log.open("w") as output:
        start = time.perf_counter()
        # Output to a file: wandb's service inherits it and may outlive the process, not the pod.
        proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=output, stderr=subprocess.STDOUT)
        code = proc.wait(600)
        elapsed = time.perf_counter() - start
    if code or not (out / "outputs.pb").exists():
        raise RuntimeError(f"{python} a0 {task} failed ({code}):\n{log.read_text()[-3000:]}")
    return elapsed


def measure_pods(pythons: dict[str, str], reps: int, workdir: Path) -> dict[str, dict[str, list[float]]]:
    """W&B's cost as a pod sees it: Flyte's ``a0`` running one action, start to exit, with and without W&B.

    Offline for both plugins; against a server that accepts and never answers for this package
    only (``timeout`` = :data:`POD_STALL_TIMEOUT_S`; the reference has no timeout setting, so
    wandb's own 90 s ``init_timeout`` applies, and it is not run there). Plain and W&B back to
    back, rounds outside and interpreters inside, one warm-up round dropped.
    """
    import socket

    samples: dict[str, dict[str, list[float]]] = {}
    dirs: dict[str, Path] = {}
    for label, python in pythons.items():
        dirs[label] = workdir / f"pods-{label}"
        dirs[label].mkdir()
        _write_pod_files(python, dirs[label])
        samples[label] = {"plain": [], "wandb": [], "extra": [], "stalled_extra": []}
    # Rounds outside, interpreters inside: load on the machine hits both alike.
    for round_ in range(reps + 1):
        for label, python in pythons.items():
            offline = _pod_env(dirs[label], WANDB_SILENT="true")
            plain = _time_a0(python, "plain", dirs[label], offline)
            with_wandb = _time_a0(python, "logged", dirs[label], offline)
            if round_:
                got = samples[label]
                got["plain"].append(plain)
                got["wandb"].append(with_wandb)
                got["extra"].append(with_wandb - plain)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        stalled = _pod_env(
            dirs["ours"],
            WANDB_MODE="online",
            WANDB_BASE_URL=f"http://127.0.0.1:{server.getsockname()[1]}",
            WANDB_API_KEY="benchfake" + "0" * 31,
            FLYTEPLUGINS_WANDB_TIMEOUT=str(POD_STALL_TIMEOUT_S),
        )
        for _ in range(max(1, reps // 2)):
            plain = _time_a0(pythons["ours"], "plain", dirs["ours"], stalled)
            # The task's own mode="offline" would skip the server: take it from the environment.
            with_wandb = _time_a0(pythons["ours"], "logged_online", dirs["ours"], stalled)
            samples["ours"]["stalled_extra"].append(with_wandb - plain)
    return samples


def measure_reused(
    pythons: dict[str, str], workdir: Path, count: int = REUSED_ACTIONS
) -> dict[str, dict[str, Any]]:
    """Actions one after another in one process (a reusable container): per-action cost and memory."""
    results: dict[str, dict[str, Any]] = {}
    for label, python in pythons.items():
        pod_dir = workdir / f"reused-{label}"
        pod_dir.mkdir()
        inputs = _write_pod_files(python, pod_dir)
        per_task: dict[str, list[dict[str, float]]] = {}
        for task in ("plain", "logged"):
            done = subprocess.run(
                [python, str(pod_dir / "bench_reused.py"), task, str(count), str(inputs), str(pod_dir)],
                cwd=pod_dir, capture_output=True, text=True,
                # The memory reading is the cluster rehearsal's (tests/cluster/procmem.py).
                env=_pod_env(pod_dir, WANDB_SILENT="true", BENCH_TESTS_DIR=str(REPO / "tests")),
                timeout=1800,
            )  # fmt: skip
            if done.returncode:
                raise RuntimeError(
                    f"{label} reused {task} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
                )
            per_task[task] = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        logged = per_task["logged"]
        first, last = logged[REUSED_RSS_FROM - 1], logged[-1]
        results[label] = {
            "plain_ms": statistics.median(a["s"] for a in per_task["plain"][1:]) * 1000,
            "logged_ms": statistics.median(a["s"] for a in logged[1:]) * 1000,
            "self_growth_mb": (last["self_kb"] - first["self_kb"]) / 1024,
            "children_growth_mb": (last["children_kb"] - first["children_kb"]) / 1024,
            "total_mb": (last["self_kb"] + last["children_kb"]) / 1024,
            "actions": len(logged),
        }
    return results


def pod_rows(pods: dict[str, dict[str, list[float]]], reused: dict[str, dict[str, Any]]) -> list[Row]:
    """Rows of the pod and reused-process measurements."""
    ours, ref = pods["ours"], pods.get("reference")
    r_ours, r_ref = reused["ours"], reused.get("reference")
    stall_limit = POD_STALL_TIMEOUT_S + POD_STALL_SLACK_S
    growth = r_ours["self_growth_mb"] + r_ours["children_growth_mb"]
    rows = [
        Row(
            "pod (`a0`, one action): process start to exit without W&B",
            spread(ours["plain"]),
            spread(ref["plain"]) if ref else "-",
            "-",
            "-",
        ),
        Row(
            "pod: W&B's extra wall time, one `@wandb_init` action logging 20 steps, offline",
            spread(ours["extra"]),
            spread(ref["extra"]) if ref else "-",
            "≤ the reference's",
            _yes(statistics.median(ours["extra"]) <= statistics.median(ref["extra"])) if ref else "-",
        ),
        Row(
            "pod: W&B's extra wall time, a server that accepts and never answers,"
            f" timeout={POD_STALL_TIMEOUT_S:.0f}",
            spread(ours["stalled_extra"]),
            "not measured (no timeout setting: wandb's own init_timeout is 90 s)",
            f"≤ timeout + {POD_STALL_SLACK_S:.0f} s",
            _yes(max(ours["stalled_extra"]) <= stall_limit),
        ),
        Row(
            f"reused process: `@wandb_init` cost per action ({r_ours['actions']} one after another, offline)",
            _ms(r_ours["logged_ms"] - r_ours["plain_ms"]),
            _ms(r_ref["logged_ms"] - r_ref["plain_ms"]) if r_ref else "-",
            "-",
            "-",
        ),
        Row(
            f"reused process: memory growth from action {REUSED_RSS_FROM} to {r_ours['actions']}"
            " (process + wandb-core)",
            f"{growth:+.1f} MB ({r_ours['self_growth_mb']:+.1f} + {r_ours['children_growth_mb']:+.1f})",
            (
                f"{r_ref['self_growth_mb'] + r_ref['children_growth_mb']:+.1f} MB"
                f" ({r_ref['self_growth_mb']:+.1f} + {r_ref['children_growth_mb']:+.1f})"
            )
            if r_ref
            else "-",
            f"≤ {REUSED_RSS_TARGET_MB:.0f} MB",
            _yes(growth <= REUSED_RSS_TARGET_MB),
        ),
    ]
    return rows


def pods_main(reference: str, quick: bool) -> int:
    """``benchmarks/run.py --pods``: the pod and reused-process rows, into ``docs/performance.md``."""
    machine = machine_info()
    pythons = {"ours": PROJECT_PYTHON}
    if Path(reference).exists():
        pythons["reference"] = reference
    with tempfile.TemporaryDirectory(prefix="bench-pods-") as tmp:
        workdir = Path(tmp)
        print("pods: Flyte's a0, with and without @wandb_init ...", flush=True)
        pods = measure_pods(pythons, 2 if quick else 5, workdir)
        print(f"reused process: {REUSED_ACTIONS} actions one after another ...", flush=True)
        reused = measure_reused(pythons, workdir, 60 if quick else REUSED_ACTIONS)
    label = "reference (measured)" if "reference" in pythons else "reference (not measured)"
    table = render_table(pod_rows(pods, reused), label)
    line = f"Load average {machine['load']} at start, {machine['cores']} cores."
    print(f"\n{table}\n\n{line}")
    if quick or not PERFORMANCE_MD.is_file():
        return 0
    text = PERFORMANCE_MD.read_text()
    start = text.find(POD_BEGIN_MARKER)
    end = text.find(POD_END_MARKER, start + len(POD_BEGIN_MARKER)) if start >= 0 else -1
    if start < 0 or end < 0:
        print(f"{PERFORMANCE_MD.relative_to(REPO)} has no {POD_BEGIN_MARKER} markers: table printed only")
        return 0
    PERFORMANCE_MD.write_text(f"{text[: start + len(POD_BEGIN_MARKER)]}\n{table}\n\n{line}\n{text[end:]}")
    print(f"updated the pod table in {PERFORMANCE_MD.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
