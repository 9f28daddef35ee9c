"""Progress inside a cell: the cell writes where it is (phase, step, steps planned, tokens so far) to
RUN_DIR/cells/<id>/progress.json; on a terminal the runner shows it as a tqdm bar under the finished
cells' lines. Off a terminal nothing changes: the runner prints its one line per finished cell only.

The file is rewritten atomically at each phase's start and at most every WRITE_EVERY_S seconds
between, so it costs nothing a step could notice; it is removed when the cell ends.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path
from typing import TextIO

from harness.results.io import write_json_atomic

PROGRESS_FILE = "progress.json"
WRITE_EVERY_S = 0.5
SHOW_EVERY_S = 0.5


class ProgressFile:
    """The cell's side: phase, step and tokens, written for the runner to read."""

    def __init__(self, cell_dir: Path, clock=time.monotonic) -> None:
        self.path = Path(cell_dir) / PROGRESS_FILE
        self.clock = clock
        self.state: dict = {}
        self._written = -float("inf")
        self._started = 0.0

    def phase(self, name: str, planned: int | None) -> None:
        self._started = self.clock()
        self.state = {"phase": name, "step": 0, "planned": planned, "tokens": 0, "seconds": 0.0}
        self._write()

    def step(self, tokens: int) -> None:
        self.state["step"] += 1
        self.state["tokens"] += int(tokens)
        self.state["seconds"] = self.clock() - self._started
        if self.clock() - self._written >= WRITE_EVERY_S or self.state["step"] == self.state["planned"]:
            self._write()

    def after_step(self, watch):
        """A training `after_step` hook (harness.run.train.TrainHooks) that counts the step, then asks
        `watch` (budgets, targets) whether to stop."""

        def after_step(step: int, batch) -> bool:
            self.step(batch.n_tokens)
            return watch(step, batch)

        return after_step

    def on_batch(self, inner):
        """An evaluation `on_batch` context manager that also counts the batch (harness.scenarios.base)."""

        @contextlib.contextmanager
        def counted(batch):
            with inner(batch) as record:
                yield record
            self.step(getattr(record, "tokens", batch.n_tokens))  # generation tells the tokens it produced

        return counted

    def _write(self) -> None:
        self._written = self.clock()
        with contextlib.suppress(OSError):  # progress is a courtesy: never fail a cell over it
            write_json_atomic(self.path, self.state)

    def close(self) -> None:
        self.path.unlink(missing_ok=True)


def read_progress(cell_dir: Path) -> dict | None:
    """The cell's last written progress, or None (not started, finished, or caught mid-replace)."""
    try:
        state = json.loads((Path(cell_dir) / PROGRESS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def describe(state: dict) -> str:
    """'train step 12/60, 1,450 tokens/s' from a progress state."""
    planned = state.get("planned")
    step = int(state.get("step") or 0)
    unit = "step" if state.get("phase") == "train" else "batch"
    where = f"{step}/{planned}" if planned and step <= planned else str(step)
    seconds = float(state.get("seconds") or 0.0)
    rate = f", {state['tokens'] / seconds:,.0f} tokens/s" if seconds > 0 and state.get("tokens") else ""
    return f"{state.get('phase', '?')} {unit} {where}{rate}"


class ProgressDisplay:
    """The runner's side, on a terminal only: a thread that shows the progress of the pending cells that
    have a progress file (the running ones, whatever the executor) on a tqdm status line, and lets the
    finished cells' lines print above it."""

    def __init__(self, stream: TextIO, cells: list[tuple[str, Path]]) -> None:
        self.stream = stream
        self.enabled = bool(getattr(stream, "isatty", lambda: False)())
        self.pending = dict(cells)  # label -> cell folder
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._bar = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ProgressDisplay:
        if self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=None, file=self.stream, leave=False, dynamic_ncols=True, bar_format="{desc}")
            self._thread = threading.Thread(target=self._loop, name="tunebench-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._bar is not None:
            self._bar.close()

    def finished(self, label: str, text: str) -> None:
        """A finished cell's line: above the status line on a terminal, plainly elsewhere."""
        with self._lock:
            cell_dir = self.pending.pop(label, None)
            if cell_dir is not None:
                (cell_dir / PROGRESS_FILE).unlink(missing_ok=True)  # a crashed cell leaves its file behind
            if self._bar is not None:
                self._bar.write(text, file=self.stream)
            else:
                print(text, file=self.stream, flush=True)

    def status(self) -> str:
        """The status line: each running cell's label and where it is."""
        with self._lock:
            running = [(label, read_progress(folder)) for label, folder in self.pending.items()]
        shown = [f"{label}: {describe(state)}" for label, state in running if state]
        return "  " + "; ".join(shown) if shown else ""

    def _loop(self) -> None:
        while not self._stop.wait(SHOW_EVERY_S):
            text = self.status()
            with self._lock:
                if self._bar is not None:
                    self._bar.set_description_str(text, refresh=True)
