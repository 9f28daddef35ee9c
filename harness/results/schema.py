"""The layout of a cell result file, defined once: the cell writes a CellResult, `read_result` reads one
(migrating older schema versions), and the tables, the report and the test fixtures take its dict form.

Schema 2 (current): scenario details (examples, a confusion matrix) live under `details`, so no detail
can overwrite a top-level key; each tracker's summary sits under the tracker's key (harness.measure).
Schema 1 spread the details at the top level; `migrate` moves them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 2
STATUSES = ("ok", "failed", "killed", "oom", "timeout")
DETAIL_KEYS_V1 = ("examples", "confusion_matrix")  # the scenario details schema 1 kept at the top level


@dataclass(frozen=True)
class ErrorInfo:
    type: str
    message: str
    traceback_tail: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CellResult:
    """One cell's result. `trackers` holds each tracker's summary by key; the file keeps them at the top level."""

    cell_id: str  # a hash of the resolved config and the data
    task: str
    strategy: str
    seed: int

    status: str  # one of STATUSES

    scenario: str | None = None
    domain: str | None = None
    profile: str | None = None
    primary_metric: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    primary_value: float | None = None
    error: ErrorInfo | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    reference: dict[str, float] = field(default_factory=dict)  # e.g. the majority-class rate
    details: dict[str, Any] = field(default_factory=dict)  # from the scenario: examples, confusion matrix
    model_kind: str | None = None
    params: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    learning: dict[str, Any] | None = None  # did a tuned cell learn (harness.results.learning)
    weights: dict[str, Any] | None = None
    items: dict[str, Any] | None = None  # the per-item file's record (harness.results.items)
    forgetting: dict[str, Any] | None = None  # loss on general text after tuning ([forgetting])
    efficiency: dict[str, Any] | None = None  # FLOPs per training token and MFU (harness.measure.flops)
    preflight: dict[str, Any] | None = None  # the memory estimate made before allocating (harness.measure.preflight)
    executor: dict[str, Any] | None = None  # where a non-local executor ran it: node, GPUs, cells on the node
    search: dict[str, Any] | None = None  # a search trial's learning rate, or what a search chose (harness.run.search)
    data: dict[str, Any] | None = None  # provenance of the data (source, split, digests)
    provenance: dict[str, Any] | None = None  # device, libraries, git commit
    finished_at: str | None = None
    trackers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status: must be one of {', '.join(STATUSES)}, got {self.status!r}")
        clash = set(self.trackers) & FIELD_NAMES
        if clash:
            raise ValueError(f"trackers: key(s) {', '.join(sorted(clash))} are result fields of their own")

    def to_dict(self) -> dict[str, Any]:
        """The file's layout (without schema_version)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "trackers"}
        out["error"] = dataclasses.asdict(self.error) if self.error else None
        return {**out, **self.trackers}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> CellResult:
        """A CellResult from the current layout; TypeError or ValueError names the bad key."""
        for key in ("cell_id", "task", "strategy", "seed", "status"):
            if key not in payload:
                raise ValueError(f"{key}: missing")
        for key, expected in (("cell_id", str), ("task", str), ("strategy", str), ("seed", int), ("status", str)):
            if not isinstance(payload[key], expected) or isinstance(payload[key], bool):
                raise ValueError(f"{key}: expected {expected.__name__}, got {type(payload[key]).__name__}")
        for key in ("config", "metrics", "reference", "details"):
            if payload.get(key) is not None and not isinstance(payload[key], dict):
                raise ValueError(f"{key}: expected an object, got {type(payload[key]).__name__}")
        error = payload.get("error")
        if error is not None and not (isinstance(error, dict) and {"type", "message"} <= set(error)):
            raise ValueError("error: expected an object with type and message")
        known = {k: v for k, v in payload.items() if k in FIELD_NAMES and k != "trackers"}
        trackers = {k: v for k, v in payload.items() if k not in FIELD_NAMES and k != "schema_version"}
        known.update({k: payload.get(k) or {} for k in ("config", "metrics", "reference", "details")})
        known["error"] = (
            ErrorInfo(error["type"], error["message"], list(error.get("traceback_tail") or [])) if error else None
        )
        return cls(**known, trackers=trackers)


FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(CellResult))


def migrate(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload in the current layout; ValueError for a version this release cannot read."""
    version = payload.get("schema_version")
    if version == SCHEMA_VERSION:
        return payload
    if version == 1:
        moved = {k: payload[k] for k in DETAIL_KEYS_V1 if k in payload}
        rest = {k: v for k, v in payload.items() if k not in DETAIL_KEYS_V1}
        return {**rest, "details": {**(payload.get("details") or {}), **moved}, "schema_version": SCHEMA_VERSION}
    raise ValueError(f"schema_version: {version!r}, this release reads 1 and {SCHEMA_VERSION}")
