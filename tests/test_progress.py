"""Progress inside a cell and the run's ETA: per-cell estimates from recorded and measured times."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import sys
import termios
import textwrap
import time

import pytest

from harness.results.variants import config_digest
from harness.run.eta import CALIBRATION_S, START_UP_S, CellCost, Eta, read_recorded, record
from harness.run.progress import PROGRESS_FILE, ProgressDisplay, ProgressFile, describe, read_progress
from tests.helpers import ROOT, write_task
from tests.report_fixtures import GiB, cell_result, write_run


def _config(task: str, strategy: str, seed: int = 0) -> dict:
    return {"task": {"name": task}, "strategy": strategy, "seed": seed, "profile": "default"}


def _key(task: str, strategy: str, seed: int = 0, **extra) -> tuple[str, tuple[str, str, str]]:
    return config_digest(_config(task, strategy, seed) | extra), (task, strategy, "default")


def test_a_pending_cell_is_estimated_from_its_own_config_not_from_a_mean():
    """Recorded: a 100 s train cell and a 10 s eval-only cell. This machine runs the first one in 200 s
    (twice as slow): the other recorded cells are estimated twice as long, shrunk towards 1 for CALIBRATION_S."""
    slow = CellCost(load_s=1.0, train_steps=30, train_step_s=3.0, eval_s=9.0)  # 100 s
    quick = CellCost(load_s=1.0, train_steps=0, train_step_s=0.0, eval_s=9.0)  # 10 s
    recorded = {_key("t", "full")[0]: slow, _key("t", "none")[0]: quick, _key("u", "lora")[0]: slow}
    eta = Eta(recorded=recorded, similar={("w", "lora", "default"): quick})
    assert eta.estimate(*_key("w", "lora", options={"r": 16})) == pytest.approx(12.0)  # an edited config
    assert eta.estimate(*_key("t", "none")) == pytest.approx(10.0 + START_UP_S)  # nothing measured yet
    assert eta.estimate(*_key("v", "lora")) is None  # neither recorded nor measured
    assert eta.remaining([_key("t", "none"), _key("v", "lora")]) == (pytest.approx(12.0), 1)
    result = {
        "status": "ok",
        "timing": {"load_seconds": 1.0, "train_seconds": 180.0, "eval_seconds": 17.0},
        "training": {"steps": 30},
    }
    eta.finished(_key("t", "full")[0], "t", 200.0, result)
    ratio = (200.0 + CALIBRATION_S) / (100.0 + START_UP_S + CALIBRATION_S)
    assert eta.speed_ratio == pytest.approx(ratio)
    assert eta.estimate(*_key("u", "lora")) == pytest.approx(100.0 * ratio + 2.0)  # start-up measured: 2 s
    assert eta.estimate(*_key("t", "full", seed=1)) == 200.0  # another seed of a measured config
    assert eta.estimate(*_key("t", "adapter")) == 200.0  # no record: the task's finished cells
    assert eta.estimate(*_key("w", "lora")) == pytest.approx(10.0 * ratio + 2.0)  # recorded elsewhere


def test_the_record_is_written_from_a_run_and_read_back(tmp_path):
    results = []
    for seed in (0, 1):
        result = cell_result("t", "full", seed, 0.9, memory=GiB, tokens_per_s=10.0)
        result["config"] = _config("t", "full", seed)
        result["timing"] = {"load_seconds": 1.0, "train_seconds": 20.0 + 10 * seed, "eval_seconds": 4.0}
        result["training"] = {"steps": 10}
        results.append(result)
    write_run(tmp_path / "run", results)
    path = tmp_path / "recorded.json"
    assert record(tmp_path / "run", path) == 1  # two seeds of one config: one entry
    cost = read_recorded(path)[config_digest(_config("t", "full", seed=7))]
    assert cost.train_steps == 10 and cost.train_step_s == pytest.approx(2.5) and cost.seconds == pytest.approx(30.0)
    assert json.loads(path.read_text())["machine"]["cpu_count"] == 2


def test_the_shipped_record_covers_the_default_suite():
    """Before the first cell of `make bench`, every cell has a recorded estimate."""
    from harness.config import load_matrix

    matrix = load_matrix([ROOT / "tasks" / "suites" / "default.toml"])
    recorded = read_recorded()
    missing = [c.label for c in matrix.cells if c.config_digest not in recorded]
    assert not missing, f"no recorded time for {missing}: rerun `python -m harness.run.eta RUN_DIR` after make bench"


def test_the_progress_file_says_phase_step_and_rate(tmp_path):
    clock = iter(float(t) for t in range(100))
    progress = ProgressFile(tmp_path, clock=lambda: next(clock))
    progress.phase("train", 60)
    assert read_progress(tmp_path) == {"phase": "train", "step": 0, "planned": 60, "tokens": 0, "seconds": 0.0}
    for _ in range(12):
        progress.step(100)
    state = read_progress(tmp_path)
    assert state["step"] == 12 and state["tokens"] == 1200
    assert describe(state).startswith("train step 12/60, ") and describe(state).endswith(" tokens/s")
    assert describe({"phase": "eval", "step": 3, "planned": None, "tokens": 0, "seconds": 1.0}) == "eval batch 3"
    progress.close()
    assert not (tmp_path / PROGRESS_FILE).exists()


def test_off_a_terminal_the_lines_stay_plain(tmp_path, capsys):
    import io

    stream = io.StringIO()
    with ProgressDisplay(stream, [("t/full/seed0", tmp_path)]) as display:
        assert not display.enabled
        (tmp_path / PROGRESS_FILE).write_text(json.dumps({"phase": "train", "step": 1, "planned": 2}))
        display.finished("t/full/seed0", "[1/1] ok      t/full/seed0")
    assert stream.getvalue() == "[1/1] ok      t/full/seed0\n"
    assert not (tmp_path / PROGRESS_FILE).exists()  # a finished cell's leftover file is cleared


def test_on_a_terminal_the_running_cell_shows_its_steps(tmp_path, tiny_bert_dir):
    """`tunebench run` under a pseudo-terminal: while a cell trains, the screen shows its step count of
    the planned steps; the finished cells' lines are printed as without a terminal."""
    write_task(tmp_path, "t", tiny_bert_dir, body="\n[strategies.slow-steps.training]\nepochs = 3\n")  # 12 steps
    suite = tmp_path / "suite.toml"
    suite.write_text(
        textwrap.dedent("""\
        [suite]
        name = "watched"
        tasks = ["t.toml"]
        strategies = ["slow-steps"]
        plugins = ["tests.fault_plugins"]
        """)
    )
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI on a 160-column terminal (a bare pty has 0 columns: nothing fits)
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
        os.chdir(ROOT)
        os.execv(sys.executable, [sys.executable, "-m", "harness.cli", "run", str(suite), "--out", str(tmp_path / "r")])
    screen = b""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    _, status = os.waitpid(pid, 0)
    text = screen.decode("utf-8", "replace")
    assert os.waitstatus_to_exitcode(status) == 0, text[-2000:]
    steps = [int(m) for m in re.findall(r"t/slow-steps/seed0: train step (\d+)/12", text)]
    assert steps and max(steps) > min(steps), text[-2000:]  # watched it move
    assert "[1/1] ok      t/slow-steps/seed0" in text
    assert "tokens/s" in text
