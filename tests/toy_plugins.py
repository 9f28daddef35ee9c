"""A plugin as a user would write one: loaded with `--plugin tests.toy_plugins`, no edit to harness/."""

from __future__ import annotations

import json
from contextlib import contextmanager

from harness.figures import Figure
from harness.measure import Tracker, register_tracker
from harness.metrics import CORRECT, register_metric
from harness.track import SINKS, Sink


@register_metric("toy_agreement", needs=("labels",), per_item=CORRECT)
def toy_agreement(predictions, references) -> float:
    """Share of items whose predicted label equals the reference, in percent (a toy: accuracy x 100)."""
    return 100.0 * sum(p == r for p, r in zip(predictions, references, strict=True)) / len(references)


@register_tracker
class PhaseCounter(Tracker):
    """Counts the phases a cell went through (load, train, eval): 2 for an untrained cell, 3 otherwise."""

    key = "toy"
    figures = (Figure("toy_phases", "phases", ("toy", "phases"), show=True),)

    def __init__(self, context) -> None:
        super().__init__(context)
        self.names: list[str] = []

    @contextmanager
    def phase(self, name: str):
        self.names.append(name)
        yield

    def summary(self) -> dict:
        return {"phases": len(self.names), "names": self.names}


@SINKS.register("toy_jsonl")
class JsonLinesSink(Sink):
    """A tracking sink as a plugin writes one: a line per event to the file named by `--track toy_jsonl=FILE`."""

    def _write(self, event: dict) -> None:
        with open(str(self.target), "a", encoding="utf-8") as handle:
            handle.write(json.dumps(event) + "\n")

    def start(self, info):
        self._write({"event": "start", "run_dir": info["run_dir"]})

    def log_cell(self, result, cell_dir):
        self._write({"event": "cell", "cell_id": result["cell_id"], "status": result["status"]})

    def finish(self, report):
        self._write({"event": "finish", "report": str(report)})
