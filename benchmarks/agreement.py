"""The agreement study of `tunebench pick`: for each task, `pick` and the full path (`tunebench run --search
--seeds 3`, every strategy's grid then three seeds), each in its own run folder, one after the other on
this machine; then one table of what each chose and what each cost.

    python benchmarks/agreement.py TASK.toml [TASK.toml ...] --out DIR [--table-only]

Per task: the full path's best strategy (the highest mean over 3 seeds among rows that learned, or among
all rows where none learned, marked so), pick's choice, whether they agree (the same strategy, or
pick's choice within noise of the best in the full path's own 3-seed rows: its paired tests), and each
side's cell-seconds (every result's load, train and evaluation phases, `none` included on both sides).
Both run folders are resumable: started again, the study runs only what is missing. DIR/agreement.md
and DIR/agreement.json hold the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

STRATEGIES = "none,full,frozen-lower,adapter,lora"


def cell_seconds(run_dir: Path) -> float:
    from harness.results.io import phase_seconds, read_results

    return sum(phase_seconds(r) for r in read_results(run_dir))


def full_path_best(run_dir: Path) -> tuple[str | None, dict]:
    """The full path's best row (the highest mean among the rows that learned, or among all where none did,
    as `recommend` picks then), and every tuned row's mean, seeds, verdict and the rows within its noise."""
    from harness.metrics import higher_is_better
    from harness.results.table import load_aggregates

    rows = load_aggregates(run_dir)
    rows = rows[rows["strategy"] != "none"]
    table = {
        r["strategy"]: {
            "mean": r["primary_value_mean"],
            "std": r["primary_value_std"],
            "n": int(r["n"]),
            "learned": bool(r.get("learned")) if r.get("learned") is not None else None,
            "within_noise_of": [s.strip() for s in str(r.get("within_noise_of") or "").split(",") if s.strip()],
        }
        for _, r in rows.iterrows()
    }
    scored = {s: v for s, v in table.items() if v["mean"] == v["mean"]}
    learned = {s: v for s, v in scored.items() if v["learned"] is not False}
    if not scored:
        return None, table
    sign = 1 if higher_is_better(str(rows["primary_metric"].iloc[0])) else -1
    pool = learned or scored
    return max(pool, key=lambda s: sign * pool[s]["mean"]), table


def study_task(task: Path, out: Path, table_only: bool) -> dict:
    name = task.stem
    pick_dir, full_dir = out / f"pick-{name}", out / f"full-{name}"
    cli = [sys.executable, "-m", "harness.cli"]
    if not table_only:
        for command in (
            [*cli, "pick", str(task), "--out", str(pick_dir)],
            [*cli, "run", str(task), "--strategies", STRATEGIES, "--search", "--seeds", "3", "--out", str(full_dir)],
        ):
            started = time.time()
            print("$ " + " ".join(command[2:]), file=sys.stderr, flush=True)
            subprocess.run(command, check=False)
            print(f"  {time.time() - started:.0f} s wall", file=sys.stderr, flush=True)
    record = json.loads((pick_dir / "pick.json").read_text())
    best, rows = full_path_best(full_dir)
    chosen = record.get("pick")
    agrees = chosen is not None and (chosen == best or best in rows.get(chosen, {}).get("within_noise_of", []))
    pick_s, full_s = cell_seconds(pick_dir), cell_seconds(full_dir)
    finished = [p for p in record["race"]["pairs"] if not p["pruned_after_steps"]]
    return {
        "task": name,
        "full_path_best": best,
        "pick": chosen,
        "pick_rate": next((p["learning_rate"] for p in finished if p["strategy"] == chosen), None),
        "agrees": agrees,
        "how": "same strategy" if chosen == best else ("within noise" if agrees else "differs"),
        "pick_cell_seconds": pick_s,
        "full_path_cell_seconds": full_s,
        "ratio": pick_s / full_s if full_s else None,
        "full_path_rows": rows,
        "pick_estimate_ratio": (record.get("cost") or {}).get("ratio"),
    }


def markdown(rows: list[dict]) -> str:
    lines = [
        "| task | full path's best (mean over 3 seeds) | pick | agree? | pick cell-s | full path cell-s | ratio |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        best = r["full_path_best"]
        mean = r["full_path_rows"].get(best, {}).get("mean") if best else None
        if mean is None:
            best_cell = "no row scored"
        else:
            unlearned = ", none learned" if r["full_path_rows"][best]["learned"] is False else ""
            best_cell = f"{best} ({mean:.3f}{unlearned})"
        lines.append(
            f"| {r['task']} | {best_cell} | {r['pick']} | {r['how']} | {r['pick_cell_seconds']:,.0f} | "
            f"{r['full_path_cell_seconds']:,.0f} | {r['ratio']:.2f}x |"
        )
    agree = sum(r["agrees"] for r in rows)
    ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
    lines.append("")
    lines.append(
        f"{agree} of {len(rows)} tasks agree ({100 * agree / len(rows):.0f}%); median cost ratio "
        f"{statistics.median(ratios):.2f}x (cell-seconds)"
        if rows and ratios
        else "no task finished"
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--table-only", action="store_true", help="tabulate the finished folders, run nothing")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for task in args.tasks:
        rows.append(study_task(task, args.out, args.table_only))
        (args.out / "agreement.json").write_text(json.dumps(rows, indent=1, default=str))
        (args.out / "agreement.md").write_text(markdown(rows))
        print(markdown(rows), file=sys.stderr, flush=True)
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
