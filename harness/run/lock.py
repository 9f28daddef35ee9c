"""One writer per run folder: `run` and `merge` hold RUN_DIR/.lock (an advisory lock released by the
kernel when the process dies, so a killed run never leaves a stale lock), and a second run on the same
folder is refused with who holds it, instead of interleaving results."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".lock"


class RunFolderBusy(RuntimeError):
    """Another process is writing into this run folder."""


@contextlib.contextmanager
def run_folder_lock(run_dir: Path, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the folder's lock for the duration; wait up to `wait_s` seconds for it, then refuse."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    handle = open(path, "a+", encoding="utf-8")
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    raise RunFolderBusy(
                        f"{run_dir}: another tunebench run is writing into this folder ({holder}); "
                        f"wait for it to finish, or choose another --out"
                    ) from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock
