"""Compare mode: per-cell deltas against a baseline run, matched by (task, strategy, seed).

A delta is flagged beyond noise when the two runs' 95% intervals for that (task, strategy)
do not overlap; a single seed on one side against several on the other is judged by their 95%
prediction interval, as the gate does; with a single seed on both sides the noise is unknown and
said so.
"""

from __future__ import annotations

from harness.report.format import missing, strategy_sort_key
from harness.results.aggregate import DIFFERS, TIE, UNKNOWN, group_summary, noise_verdict

MATCH_KEYS = ("task", "strategy", "seed")
VERDICT_TEXT = {DIFFERS: "beyond noise", TIE: "within noise", UNKNOWN: "single seed on both sides: noise unknown"}


def _relative(now, before):
    if missing(now) or missing(before) or before == 0:
        return None
    return (now - before) / abs(before)


def _group_verdict(aggregates, base_aggregates, task: str, strategy: str) -> str | None:
    here = aggregates[(aggregates.task == task) & (aggregates.strategy == strategy)]
    there = base_aggregates[(base_aggregates.task == task) & (base_aggregates.strategy == strategy)]
    if here.empty or there.empty or int(here.iloc[0]["n"]) == 0 or int(there.iloc[0]["n"]) == 0:
        return None
    return noise_verdict(group_summary(here.iloc[0]), group_summary(there.iloc[0]))


def cell_deltas(cells, aggregates, base_cells, base_aggregates) -> dict:
    """{"rows": matched cells with deltas and a noise flag, "only_here": [...], "only_baseline": [...]}."""
    here = {tuple(r[k] for k in MATCH_KEYS): r for r in cells.to_dict("records")}
    there = {tuple(r[k] for k in MATCH_KEYS): r for r in base_cells.to_dict("records")}
    order = lambda key: (key[0], strategy_sort_key(key[1]), key[2])  # noqa: E731
    rows = []
    for key in sorted(here.keys() & there.keys(), key=order):
        now, before = here[key], there[key]
        both_ok = now["status"] == "ok" and before["status"] == "ok"
        verdict = _group_verdict(aggregates, base_aggregates, key[0], key[1]) if both_ok else None
        delta = None
        if both_ok and not missing(now["primary_value"]) and not missing(before["primary_value"]):
            delta = now["primary_value"] - before["primary_value"]
        rows.append(
            {
                "task": key[0],
                "strategy": key[1],
                "seed": key[2],
                "primary_metric": now["primary_metric"],
                "status": now["status"],
                "baseline_status": before["status"],
                "value": now["primary_value"],
                "baseline_value": before["primary_value"],
                "delta": delta,
                "memory_change": _relative(now["peak_memory_bytes"], before["peak_memory_bytes"]),
                "throughput_change": _relative(now["train_tokens_per_s"], before["train_tokens_per_s"]),
                "verdict": VERDICT_TEXT.get(verdict or "", "status changed" if not both_ok else "n/a"),
                "beyond_noise": verdict == DIFFERS,
            }
        )
    return {
        "rows": rows,
        "only_here": [dict(zip(MATCH_KEYS, k)) for k in sorted(here.keys() - there.keys(), key=order)],
        "only_baseline": [dict(zip(MATCH_KEYS, k)) for k in sorted(there.keys() - here.keys(), key=order)],
    }
