"""Sending finished cells to the sinks: retries, the record of what could not be sent (RUN_DIR/tracking.json)."""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from harness.results.io import write_json_atomic
from harness.track.base import SINKS, Sink, parse_track

TRACKING_FILE = "tracking.json"
RETRY_DELAYS_S = (0.5, 2.0)  # waits before the second and third attempt of one cell


def track_problems(texts: tuple[str, ...] | list[str]) -> list[str]:
    """One line per unknown sink name."""
    problems = []
    for text in texts:
        name, _ = parse_track(text)
        if name not in SINKS:
            try:
                SINKS.get(name)
            except KeyError as exc:
                problems.append(f"--track {text}: {exc}")
    return problems


class Publisher:
    """Sends each finished cell to every sink, with retries; never raises. What could not be sent is
    recorded in RUN_DIR/tracking.json, with the command that sends it later."""

    def __init__(
        self,
        run_dir: Path,
        tracks: list[str],
        weights: bool = False,
        stream: TextIO | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.run_dir, self.stream, self.sleep = Path(run_dir), stream or sys.stderr, sleep
        self.sinks: list[tuple[str, Sink]] = []
        self.record = self._read_record()
        for text in tracks:
            name, target = parse_track(text)
            self.sinks.append((text, SINKS.get(name)(self.run_dir, target, weights)))

    def _read_record(self) -> dict:
        path = self.run_dir / TRACKING_FILE
        try:
            return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except (OSError, ValueError):
            return {}

    def _attempt(self, text: str, what: str, action: Callable[[], None]) -> bool:
        """Run `action` with retries; the wall time it took, retries included, adds to the sink's `seconds`."""
        started = time.monotonic()
        try:
            return self._attempt_timed(text, what, action)
        finally:
            entry = self.record[text]
            entry["seconds"] = round(entry.get("seconds", 0.0) + time.monotonic() - started, 3)

    def _attempt_timed(self, text: str, what: str, action: Callable[[], None]) -> bool:
        entry = self.record.setdefault(text, {"logged": [], "failed": {}})
        error = ""
        for attempt in range(len(RETRY_DELAYS_S) + 1):
            try:
                action()
                entry["failed"].pop(what, None)
                return True
            except Exception as exc:  # noqa: BLE001 - a sink's failure must never fail a run
                error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
                if attempt < len(RETRY_DELAYS_S):
                    self.sleep(RETRY_DELAYS_S[attempt])
        entry["failed"][what] = error
        print(
            f"tracking: {text}: could not log {what} after {len(RETRY_DELAYS_S) + 1} attempts ({error}); the "
            f"result is on disk, send it later with: tunebench track {self.run_dir} --to {text}",
            file=self.stream,
        )
        return False

    def _save(self) -> None:
        try:
            write_json_atomic(self.run_dir / TRACKING_FILE, self.record)
        except OSError as exc:  # a full disk: the cell results are already written; say so and go on
            print(f"tracking: could not write {self.run_dir / TRACKING_FILE}: {exc}", file=self.stream)

    def start(self, info: dict[str, Any]) -> None:
        for text, sink in self.sinks:
            self._attempt(text, "the run", functools.partial(sink.start, info))
        self._save()

    def cell_written(self, result: dict, skip_known: bool = False) -> None:
        cell_id = result["cell_id"]
        cell_dir = self.run_dir / "cells" / cell_id
        for text, sink in self.sinks:
            entry = self.record.setdefault(text, {"logged": [], "failed": {}})
            if skip_known and self._known(text, sink, cell_id):
                continue
            if self._attempt(text, cell_id, functools.partial(sink.log_cell, result, cell_dir)):
                entry["logged"] = sorted(set(entry["logged"]) | {cell_id})
        self._save()

    def _known(self, text: str, sink: Sink, cell_id: str) -> bool:
        try:
            return sink.has_cell(cell_id)
        except Exception:  # noqa: BLE001 - cannot tell: log it (a store that is down fails the log too)
            return False

    def finish(self, report: Path | None) -> None:
        for text, sink in self.sinks:
            self._attempt(text, "the report", functools.partial(sink.finish, report))
        self._save()

    def failures(self) -> int:
        return sum(len(entry.get("failed", {})) for entry in self.record.values())
