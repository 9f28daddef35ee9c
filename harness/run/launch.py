"""How a cell's process starts: a fresh fork of a pre-warmed server, or a fresh interpreter.

Importing torch, transformers and peft costs a new Python process several seconds, more than many
cells spend training. "warm" (the default on Linux) keeps one server process per runner that has
imported them once (multiprocessing's forkserver with a preload) and forks a fresh process from it
for every cell: each cell still has its own process, memory and exit status, and nothing one cell
does reaches another, but none pays for the imports. "spawn" starts `python -m harness.run.worker`
instead, as a cell on a machine without fork would; set TUNEBENCH_CELL_START=spawn to choose it.

Either way the cell runs in a session of its own (so killing its process group kills all it started),
is killed by the kernel when the process that started it dies, writes its output to its log, and
sees the runner's environment and working folder as they are when it is launched, plus
TUNEBENCH_LAUNCHED_AT (the time of the request, for the start-up figure).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from harness.measure.startup import CELL_START, LAUNCHED_AT

MODES = ("warm", "spawn")
# What the server imports once; every cell process is forked with these already in memory.
PRELOAD = ["harness.run.preload"]


class CellProcess(Protocol):
    pid: int

    def poll(self) -> int | None:
        """The exit code once finished (negative: killed by that signal), else None."""

    def wait(self) -> int:
        """Wait for it to finish; its exit code."""


def _load_prctl():
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    return ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the forked child only calls it


_PRCTL = _load_prctl()
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the cell's process (Linux): the kernel kills it when its parent dies, so a killed runner,
    server or Ray worker leaves no orphaned cell behind."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)


def start_mode() -> str:
    mode = os.environ.get(CELL_START) or (
        "warm" if sys.platform.startswith("linux") and _CellProcess is not None else "spawn"
    )
    if mode not in MODES:
        raise ValueError(f"environment variable {CELL_START}: {mode!r} is not one of {', '.join(MODES)}")
    return mode


def _worker_argv(run_dir: Path, request_path: Path) -> list[str]:
    return [str(run_dir), str(request_path)]


def _forked_cell(argv: list[str], log_path: str, environ: dict, cwd: str) -> None:
    """The body of a warm cell process, forked from the server: become the cell, then run it."""
    os.setsid()
    _die_with_parent()
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    from harness.run.worker import main

    sys.exit(main(argv))


def _without_main(preparation: dict) -> dict:
    """What a forked cell is told of the runner: not its __main__ module. multiprocessing would re-run
    that in every child (a script without an `if __name__ == "__main__"` guard would start its matrix
    again, a Ray worker's entry module would import Ray); the cell's entry point is importable."""
    return {k: v for k, v in preparation.items() if k not in ("init_main_from_name", "init_main_from_path")}


_LAUNCHING = threading.Lock()
_WARMED = False  # the warm server has been seen to finish its imports (a server restarted later, e.g.
# after being killed, makes its next cell wait for them, which that cell's start-up figure then shows)

_CellProcess: Any = None  # the Process class of a warm cell; None where there is no forkserver
try:  # POSIX only (the forkserver passes file descriptors); elsewhere cells are spawned
    from multiprocessing import context as _context
    from multiprocessing import popen_forkserver as _popen_forkserver
    from multiprocessing import spawn as _spawn

    class _CellPopen(_popen_forkserver.Popen):
        def _launch(self, process_obj):  # popen_forkserver.Popen._launch, told nothing of __main__
            with _LAUNCHING:
                original = _spawn.get_preparation_data
                _spawn.get_preparation_data = lambda name: _without_main(original(name))
                try:
                    super()._launch(process_obj)
                finally:
                    _spawn.get_preparation_data = original

    class _ForkedCellProcess(_context.ForkServerProcess):
        @staticmethod
        def _Popen(process_obj):
            return _CellPopen(process_obj)

    _CellProcess = _ForkedCellProcess
except ImportError:
    pass


class _Forked:
    def __init__(self, process) -> None:
        self._process = process
        self.pid = process.pid

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self) -> int:
        self._process.join()
        return self._process.exitcode


def _server():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def warm_up() -> None:
    """Start the warm server now, so that its imports overlap with the runner's own preparation."""
    if start_mode() == "warm":
        import multiprocessing.forkserver

        _server()
        multiprocessing.forkserver.ensure_running()


def wait_until_warm() -> None:
    """Return once the warm server has finished its imports (a no-op process forked and reaped), so
    that the first cell's start-up figure holds its own start only, as every other cell's does. Once
    per server: a later call finds it warm and returns at once."""
    global _WARMED
    if start_mode() == "warm" and not _WARMED:
        _server()
        ready = _CellProcess(target=int)
        ready.start()
        ready.join()
        _WARMED = True


def launch(run_dir: Path, request_path: Path, log_path: Path) -> CellProcess:
    """Start the cell described by `request_path`, its output going to `log_path` (created empty)."""
    log_path.write_bytes(b"")
    mode = start_mode()
    environ = {**os.environ, LAUNCHED_AT: repr(time.time()), CELL_START: mode}
    argv = _worker_argv(run_dir, request_path)
    if mode == "spawn":
        with open(log_path, "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "harness.run.worker", *argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environ,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
    _server()
    process = _CellProcess(target=_forked_cell, args=(argv, str(log_path), environ, os.getcwd()))
    process.start()
    return _Forked(process)
