"""The `tunebench` command: validate, list, run, report."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from harness.config import DEFAULT_STRATEGIES, PROFILES, ConfigError, load_matrix

EXIT_OK, EXIT_CELLS_FAILED, EXIT_CONFIG = 0, 1, 2


def _strategies(text: str | None) -> tuple[str, ...] | None:
    return tuple(s.strip() for s in text.split(",") if s.strip()) if text else None


def cmd_validate(args) -> int:
    for profile in PROFILES:  # a profile may override keys, so each is checked
        matrix = load_matrix(args.paths, profile=profile)
    tasks = sorted({c.task.name for c in matrix.cells})
    print(f"ok: {len(tasks)} task(s) valid under every profile: {', '.join(tasks)}")
    return EXIT_OK


def cmd_list(args) -> int:
    matrix = load_matrix(args.paths or ["tasks"])
    rows, seen = [], set()
    for cell in matrix.cells:
        task = cell.task
        if task.name in seen:
            continue
        seen.add(task.name)
        rows.append({"name": task.name, "scenario": task.task.scenario, "domain": task.task.domain,
                     "model": task.model.source, "dataset": task.data.hub or task.data.train,
                     "metrics": list(task.metric.names), "primary_metric": task.primary_metric,
                     "path": str(task.path)})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['name']:<16} {row['scenario']:<16} {row['model']:<40} {row['dataset']:<36} {','.join(row['metrics'])}")
    return EXIT_OK


def cmd_run(args) -> int:
    from harness.report.export import export
    from harness.run.executor import run_matrix

    matrix = load_matrix(args.paths, _strategies(args.strategies), args.seeds, args.profile)
    run_dir = Path(args.out) if args.out else Path("reports") / time.strftime("run-%Y%m%d-%H%M%S")
    print(f"running {len(matrix.cells)} cell(s) into {run_dir}", file=sys.stderr)
    outcomes = run_matrix(matrix, run_dir)
    for fmt in ("csv", "md"):
        (run_dir / f"results.{fmt}").write_text(export(run_dir, fmt), encoding="utf-8")
    failed = [o for o in outcomes if o.status != "ok"]
    print(f"{len(outcomes) - len(failed)} ok, {len(failed)} failed; results in {run_dir}/results.md", file=sys.stderr)
    return EXIT_CELLS_FAILED if failed else EXIT_OK


def cmd_report(args) -> int:
    from harness.report.export import export

    text = export(args.run_dir, args.format)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tunebench", description="Benchmark fine-tuning strategies on TOML tasks.")
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate", help="check task and suite files; exit 2 on any problem")
    validate.add_argument("paths", nargs="+", help="task files, suite files or folders of task files")
    validate.set_defaults(func=cmd_validate)
    listing = commands.add_parser("list", help="one row per task")
    listing.add_argument("paths", nargs="*", help="default: tasks")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    run = commands.add_parser("run", help="run every strategy on every task")
    run.add_argument("paths", nargs="+", help="task files, suite files or folders of task files")
    run.add_argument("--strategies", help=f"comma-separated; default: the suite's or {','.join(DEFAULT_STRATEGIES)}")
    run.add_argument("--seeds", type=int, help="seeds per (task, strategy): 0..N-1")
    run.add_argument("--profile", help=f"one of {', '.join(PROFILES)}")
    run.add_argument("--out", help="run folder; an existing one is resumed (finished cells are kept)")
    run.set_defaults(func=cmd_run)
    report = commands.add_parser("report", help="tables from a run folder's result files")
    report.add_argument("run_dir")
    report.add_argument("--format", choices=("csv", "md", "json"), default="md")
    report.add_argument("--out", help="write to this file instead of standard output")
    report.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "seeds", None) is not None and args.seeds < 1:
        print("tunebench: --seeds must be >= 1", file=sys.stderr)
        return EXIT_CONFIG
    try:
        return args.func(args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    except FileNotFoundError as exc:
        print(f"tunebench: {exc}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
