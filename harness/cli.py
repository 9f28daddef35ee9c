"""The `tunebench` command: validate, list, run, report."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from harness.config import DEFAULT_STRATEGIES, PLUGIN_GROUP, PROFILES, ConfigError, load_matrix, load_plugins
from harness.report.export import FORMATS
from harness.results.io import ResultFileError, write_text_atomic
from harness.schema import Problem

EXIT_OK, EXIT_CELLS_FAILED, EXIT_CONFIG = 0, 1, 2


def _strategies(text: str | None) -> tuple[str, ...] | None:
    return tuple(s.strip() for s in text.split(",") if s.strip()) if text else None


def cmd_validate(args) -> int:
    from harness.data.cards import check_tasks

    for profile in PROFILES:  # a profile may override keys, so each is checked
        matrix = load_matrix(args.paths, profile=profile)
    problems, _, _ = check_tasks(matrix)  # what only reading the data can tell
    if not problems:  # the notes under the profile `run` uses unless told otherwise
        problems, notes, _ = check_tasks(load_matrix(args.paths))
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return EXIT_CONFIG
    tasks = sorted({c.task.name for c in matrix.cells})
    print(f"ok: {len(tasks)} task(s) valid under every profile: {', '.join(tasks)}")
    for task in tasks:
        for note in notes.get(task, []):
            print(f"{task}: {note}")
    return EXIT_OK


def cmd_init(args) -> int:
    """A commented task file proposed from a data file; exit 2 when it cannot propose one, or when the
    file it wrote does not validate (the problems are printed, the file kept for editing)."""
    import shlex

    from harness.propose import ProposalError, init_task

    out = Path(args.out) if args.out else Path(f"{Path(args.data).stem}.toml")
    if out.exists() and not args.force:
        print(f"tunebench init: {out} exists; --out another file, or --force to replace it", file=sys.stderr)
        return EXIT_CONFIG
    overrides = {}
    for text in args.field:
        name, _, column = text.partition("=")
        if not name or not column:
            print(f"tunebench init: --field: expected FIELD=COLUMN, got {text!r}", file=sys.stderr)
            return EXIT_CONFIG
        overrides[name] = column
    command = shlex.join(["tunebench", *args.argv])
    try:
        plan, problems = init_task(Path(args.data), out, args.scenario, args.model, overrides, args.domain, command)
    except (ProposalError, ValueError) as exc:
        print(f"tunebench init: {args.data}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_CONFIG
    mapping = ", ".join(f"{k} = {v}" for k, v in plan.proposal.fields.items())
    print(f"wrote {out}: {plan.proposal.scenario} ({mapping}), max_length {plan.max_length}", file=sys.stderr)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print(f"tunebench init: {out} was written but does not validate: fix the data or the file", file=sys.stderr)
        return EXIT_CONFIG
    print(f"next: tunebench list --data {out}; tunebench run {out} --out reports/{plan.name}", file=sys.stderr)
    return EXIT_OK


def cmd_list(args) -> int:
    from harness.data.cards import check_tasks
    from harness.data.checks import card_lines
    from harness.models import declared_kind
    from harness.results.table import data_source_text

    matrix = load_matrix(args.paths or ["tasks"])
    problems, notes, cards = check_tasks(matrix, tokens=args.data)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for cell in matrix.cells:
        task = cell.task
        if task.name in seen:
            continue
        seen.add(task.name)
        rows.append(
            {
                "name": task.name,
                "scenario": task.task.scenario,
                "domain": task.task.domain,
                "model": task.model.source,
                "model_kind": declared_kind(task.model, task.path.parent),
                "dataset": task.data.hub or task.data.train,
                "source": task.data.source,
                "citation": task.data.citation,
                "licence": task.data.licence,
                "metrics": list(task.metric.names),
                "primary_metric": task.primary_metric,
                "path": str(task.path),
                "data_notes": notes.get(task.name, []),
                **({"data_card": cards.get(task.name)} if args.data else {}),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(
                f"{row['name']:<17} {row['scenario']:<19} {row['model_kind']:<8} {row['model']:<34} "
                f"{','.join(row['metrics'])}"
            )
            print(f"{'':<17} data: {row['dataset']}")
            print(f"{'':<17} {data_source_text(row) or 'source, citation and licence not stated'}")
            lines = row["data_notes"]  # the card holds the notes' class weighting and warnings
            if args.data:
                card = row["data_card"]
                lines = card_lines(card) if card else ["data card: none (hub data is not read here)"]
            print("\n".join(f"{'':<17} {line}" for line in lines))
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return EXIT_OK


def _new_run_dir(parent: Path) -> Path:
    """reports/run-YYYYmmdd-HHMMSS, with a suffix when a run started in the same second."""
    base = parent / time.strftime("run-%Y%m%d-%H%M%S")
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def _price(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def cmd_run(args) -> int:
    from harness.run.lock import RunFolderBusy, run_folder_lock
    from harness.run.shard import cell_seconds, parse_shard, shard
    from harness.specs import SearchSpec

    search = SearchSpec() if args.search else None
    matrix = load_matrix(args.paths, _strategies(args.strategies), args.seeds, args.profile, tuple(args.plugin), search)
    from harness.track import track_problems

    if problems := track_problems(args.track):
        print("\n".join(f"tunebench: {line}" for line in problems), file=sys.stderr)
        return EXIT_CONFIG
    if args.price_per_hour is not None:  # the command line wins over the suite's
        matrix = dataclasses.replace(matrix, price_per_device_hour=args.price_per_hour)
    run_dir = Path(args.out) if args.out else _new_run_dir(Path("reports"))
    full = matrix
    if args.shard:
        try:
            index, count = parse_shard(args.shard)
        except ValueError as exc:
            print(f"tunebench: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        matrix = shard(matrix, index, count, cell_seconds(Path(args.shard_costs)) if args.shard_costs else None)
        print(f"shard {index}/{count}: {len(matrix.cells)} of {len(full.cells)} cell(s)", file=sys.stderr)
    if args.exclusive is not None:
        from harness.measure.contention import CONTENDED_SHARE, wait_for_quiet

        if (busy := wait_for_quiet(args.exclusive)) is not None:
            print(
                f"tunebench: --exclusive: other processes use {busy:.0%} of the CPU (more than {CONTENDED_SHARE:.0%}) "
                f"after waiting {args.exclusive:g} s; throughput measured now would be contended",
                file=sys.stderr,
            )
            return EXIT_CONFIG
    from harness.data.cards import check_tasks

    problems, _, _ = check_tasks(matrix)  # a data problem refuses the run before any cell starts
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return EXIT_CONFIG
    print(f"running {len(matrix.cells)} cell(s) into {run_dir}", file=sys.stderr)
    try:
        with run_folder_lock(run_dir, args.wait):
            return _run_locked(args, matrix, full, run_dir)
    except RunFolderBusy as exc:
        print(f"tunebench: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def _run_locked(args, matrix, full, run_dir: Path) -> int:
    from harness.report.export import export
    from harness.report.html import write_html
    from harness.run.search import run_with_search
    from harness.run.shard import write_manifest

    write_manifest(run_dir, full, args.paths, args.shard)
    publisher = _publisher(run_dir, [*matrix.track, *args.track], args.track_weights, args.paths)
    executor = None
    if (args.executor or matrix.executor) == "ray":
        from harness.run.ray_executor import ray_executor

        executor = ray_executor(matrix.ray, args.ray_address)
        print(f"executor: ray ({executor.address or 'a local instance'})", file=sys.stderr)
    try:
        outcomes = run_with_search(
            matrix, run_dir, sys.stderr, executor=executor, on_result=publisher.cell_written if publisher else None
        )
    except KeyboardInterrupt:
        return _interrupted(args, run_dir)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        print(
            f"tunebench: disk full while writing {exc.filename or run_dir}; every file is written whole or not at "
            f"all, so the run folder is consistent: free space, then resume with: {_resume_command(args, run_dir)}",
            file=sys.stderr,
        )
        return EXIT_CELLS_FAILED
    for fmt in ("csv", "md"):
        write_text_atomic(run_dir / f"results.{fmt}", export(run_dir, fmt))
    report = write_html(run_dir)  # RUN_DIR/report.html
    if publisher is not None:
        publisher.finish(report)
    trials = [o for o in outcomes if o.cell.is_trial]
    if trials:  # a diverged trial is an expected finding of a search, not a failed run
        bad = sum(o.status != "ok" for o in trials)
        print(f"search: {len(trials)} trial(s), {bad} not ok (they score as worst)", file=sys.stderr)
    outcomes = [o for o in outcomes if not o.cell.is_trial]
    failed = [o for o in outcomes if o.status != "ok"]
    print(f"{len(outcomes) - len(failed)} ok, {len(failed)} failed; results in {run_dir}/results.md", file=sys.stderr)
    return EXIT_CELLS_FAILED if failed else EXIT_OK


def _publisher(run_dir: Path, tracks: list[str], weights: bool, paths: list[str]):
    """A harness.track publisher for these `--track` sinks (and the suite's), started; None without any."""
    if not tracks:
        return None
    from harness.run.shard import read_manifest
    from harness.track import Publisher

    publisher = Publisher(run_dir, list(dict.fromkeys(tracks)), weights)
    manifest = read_manifest(run_dir) or {}
    publisher.start({"run_dir": str(run_dir.resolve()), "paths": " ".join(paths), **manifest})
    for text, sink in publisher.sinks:
        print(f"tracking: {text} -> {sink.describe()}", file=sys.stderr)
    return publisher


def cmd_track(args) -> int:
    """Send a run folder's results to tracking sinks (cells a sink already holds are skipped); exit 1
    when some could not be sent (tracking.json says which)."""
    from harness.results.io import read_results
    from harness.run.lock import RunFolderBusy, run_folder_lock

    run_dir = Path(args.run_dir)
    if not (run_dir / "cells").is_dir():
        print(f"tunebench track: {run_dir}: not a run folder (no cells/)", file=sys.stderr)
        return EXIT_CONFIG
    try:
        with run_folder_lock(run_dir):
            publisher = _publisher(run_dir, args.to, args.track_weights, [])
            assert publisher is not None
            results = read_results(run_dir)
            for result in results:
                publisher.cell_written(result, skip_known=True)
            report = run_dir / "report.html"
            publisher.finish(report if report.is_file() else None)
    except RunFolderBusy as exc:
        print(f"tunebench: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    failed = publisher.failures()
    print(f"tracked {len(results)} cell(s) of {run_dir}; {failed} not sent", file=sys.stderr)
    return EXIT_CELLS_FAILED if failed else EXIT_OK


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def _interrupted(args, run_dir: Path) -> int:
    """Ctrl-C: the running cell's process group is already killed and nothing was recorded for it; say how
    to resume. A second Ctrl-C from here on exits at once."""
    import signal

    signal.signal(signal.SIGINT, lambda *_: os._exit(EXIT_INTERRUPTED))
    saved = len(list((run_dir / "cells").glob("*.json"))) if (run_dir / "cells").is_dir() else 0
    print(
        f"\ninterrupted: the running cell was stopped and nothing was recorded for it; {saved} result(s) are "
        f"saved in {run_dir}. Resume with: {_resume_command(args, run_dir)}",
        file=sys.stderr,
    )
    return EXIT_INTERRUPTED


def _resume_command(args, run_dir: Path) -> str:
    """The `tunebench run` command line that resumes this run."""
    import shlex

    command = ["tunebench", "run", *args.paths]
    for flag in ("strategies", "seeds", "profile", "shard", "executor"):
        if getattr(args, flag, None):
            command += [f"--{flag}", str(getattr(args, flag))]
    command += ["--search"] if args.search else []
    return shlex.join([*command, "--out", str(run_dir)])


def cmd_merge(args) -> int:
    from harness.results.merge import MergeError, merge_runs
    from harness.run.lock import RunFolderBusy, run_folder_lock

    try:
        with run_folder_lock(Path(args.out)):
            merged = merge_runs(Path(args.out), [Path(p) for p in args.run_dirs], args.force)
    except (MergeError, RunFolderBusy) as exc:
        print(f"tunebench merge: refused:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    shards = f" (shards {', '.join(merged['shards'])})" if merged["shards"] else ""
    print(
        f"merged {merged['cells']} cell(s) from {len(merged['sources'])} folder(s){shards} into {args.out}",
        file=sys.stderr,
    )
    for line in merged["kept_apart"]:
        print(line, file=sys.stderr)
    return EXIT_OK


def _gate(args):
    """[gate] from --gate FILE, else from a suite file the current run was started with; then --threshold."""
    import dataclasses

    from harness.config import _is_suite, load_gate
    from harness.results.gate import GateSpec, Threshold
    from harness.run.shard import read_manifest

    gate = None
    if args.gate:
        gate = load_gate(Path(args.gate))
        if gate is None:
            raise ConfigError([Problem(args.gate, None, "gate", "no [gate] table in this file")])
    elif Path(args.runs[-1]).is_dir() and (manifest := read_manifest(Path(args.runs[-1]))):
        suites = [Path(p) for p in manifest.get("paths", []) if Path(p).is_file() and _is_suite(Path(p))]
        gate = next((g for g in map(load_gate, suites) if g is not None), None)
    gate = gate or GateSpec()
    names = [f.name for f in dataclasses.fields(GateSpec) if f.name != "level"]
    for text in args.threshold:
        name, _, value = text.partition("=")
        if name not in names or not value:
            message = f"expected FIGURE=VALUE or FIGURE=N% with FIGURE one of {', '.join(names)}, got {text!r}"
            raise ConfigError([Problem("<command line>", None, "--threshold", message)])
        try:
            number = float(value.rstrip("%"))
        except ValueError:
            raise ConfigError([Problem("<command line>", None, "--threshold", f"not a number: {value!r}")]) from None
        limit = Threshold(relative=number / 100) if value.endswith("%") else Threshold(absolute=number)
        gate = dataclasses.replace(gate, **{name: limit})
    if args.level is not None:
        gate = dataclasses.replace(gate, level=args.level)
    return gate


def _store_runs(store: str, workdir: Path, last: int | None, branch: str | None, current: Path | None = None):
    """The MLflow store's matrix runs as run folders under `workdir` (harness.track.mlflow_sink)."""
    from harness.run.shard import read_manifest
    from harness.track.mlflow_sink import export_runs, store_uri

    digest = (read_manifest(current) or {}).get("matrix_digest") if current is not None and current.is_dir() else None
    return export_runs(store_uri(store), workdir, last, branch, digest, current)


def cmd_history(args) -> int:
    """One page: each (task, strategy)'s figures over runs, regressions marked; sources are run folders or
    MLflow stores."""
    import tempfile

    from harness.report.history import write_history

    with tempfile.TemporaryDirectory(prefix="tunebench-history-") as workdir:
        run_dirs: list[Path] = []
        for number, source in enumerate(args.sources):
            path = Path(source)
            if path.is_dir() and (path / "cells").is_dir():
                run_dirs.append(path)
            else:
                run_dirs += _store_runs(source, Path(workdir) / str(number), None, args.branch)
        if not run_dirs:
            print("tunebench history: no runs in " + ", ".join(args.sources), file=sys.stderr)
            return EXIT_CONFIG
        context = write_history(run_dirs, Path(args.out), args.branch, args.last)
    print(
        f"history of {len(context['runs'])} run(s), {context['regressions']} regression(s) flagged: {args.out}",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_compare(args) -> int:
    """Exit 0 when nothing regressed, 1 when something did, 2 on usage errors or mismatched results."""

    if args.baseline_from is not None:
        if len(args.runs) != 1:
            print("tunebench compare: with --baseline-from, give only CURRENT", file=sys.stderr)
            return EXIT_CONFIG
        return _compare_with_store(args)
    if len(args.runs) < 2:
        print("tunebench compare: give BASELINE [BASELINE...] CURRENT", file=sys.stderr)
        return EXIT_CONFIG
    return _compare(args, [Path(p) for p in args.runs[:-1]])


def _compare_with_store(args) -> int:
    """The rolling baseline from an MLflow store: its newest --last runs of the same matrix (and branch)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tunebench-baseline-") as workdir:
        current = Path(args.runs[-1])
        baselines = _store_runs(args.baseline_from, Path(workdir), args.last, args.branch, current)
        if not baselines:
            print(f"tunebench compare: no earlier run of this matrix in {args.baseline_from}", file=sys.stderr)
            return EXIT_CONFIG
        print(f"baseline: {len(baselines)} run(s) from {args.baseline_from}", file=sys.stderr)
        return _compare(args, baselines)


def _compare(args, baselines: list[Path]) -> int:
    import os

    from harness.results.gate import compare, load_side, markdown, mismatches, summary_line, table_lines

    gate = _gate(args)
    baseline, current = load_side(baselines), load_side([Path(args.runs[-1])])
    notes = []
    if different := mismatches(baseline, current):
        if not args.allow_mismatch:
            print("tunebench compare: refused, the results are not comparable:", file=sys.stderr)
            print("\n".join(f"  {line}" for line in different), file=sys.stderr)
            print("  (--allow-mismatch compares them anyway)", file=sys.stderr)
            return EXIT_CONFIG
        notes = [f"compared despite: {line}" for line in different]
    if len(baselines) > 1:
        notes.append(f"rolling baseline: {len(baselines)} runs pooled; their spread is the noise")
    checks = compare(baseline, current, gate)
    print("\n".join(notes + table_lines(checks, args.all) + [summary_line(checks)]))
    text = markdown(checks, notes)
    if args.markdown:
        write_text_atomic(Path(args.markdown), text)
    if summary := os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return EXIT_CELLS_FAILED if any(c.verdict == "REGRESSION" for c in checks) else EXIT_OK


def _constraints(args):
    from harness.report.recommend import Constraints

    return Constraints(args.max_memory, args.min_metric, args.prefer, args.allow_contended)


def cmd_report(args) -> int:
    """No --format: the HTML report (default RUN_DIR/report.html); else a table export."""
    from harness.report.export import export
    from harness.report.html import write_html

    if args.format is None:
        path = write_html(args.run_dir, args.out, args.baseline, _constraints(args))
        print(f"report written to {path}", file=sys.stderr)
        return EXIT_OK
    if args.baseline:
        print("tunebench: --baseline needs the HTML report (leave out --format)", file=sys.stderr)
        return EXIT_CONFIG
    text = export(args.run_dir, args.format)
    if args.out:
        write_text_atomic(Path(args.out), text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_pick(args) -> int:
    """The race, the finals and the pick for one task; the answer on standard output, pick.json and the
    report in the run folder. Exit 0 with a pick, 1 without one."""
    from harness.report.export import export
    from harness.report.html import write_html
    from harness.run.lock import RunFolderBusy, run_folder_lock
    from harness.run.pick import pick

    strategies = _strategies(args.strategies) or tuple(s for s in DEFAULT_STRATEGIES if s != "none")
    matrix = load_matrix([args.task], strategies, 1, args.profile, tuple(args.plugin))
    from harness.data.cards import check_tasks

    problems, _, _ = check_tasks(matrix)  # a data problem refuses the pick before any rung runs
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return EXIT_CONFIG
    run_dir = Path(args.out) if args.out else _new_run_dir(Path("reports"))
    print(f"picking among {', '.join(strategies)} for {args.task} into {run_dir}", file=sys.stderr)
    executor = None
    if args.executor == "ray":
        from harness.run.ray_executor import ray_executor

        executor = ray_executor(None, args.ray_address)
        print(f"executor: ray ({executor.address or 'a local instance'})", file=sys.stderr)
    try:
        with run_folder_lock(run_dir):
            record = pick(matrix, run_dir, _constraints(args), args.budget_hours, executor=executor)
            for fmt in ("csv", "md"):
                write_text_atomic(run_dir / f"results.{fmt}", export(run_dir, fmt))
            write_html(run_dir, constraints=_constraints(args))
    except RunFolderBusy as exc:
        print(f"tunebench: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ValueError as exc:
        print(f"tunebench pick: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print("\n".join(record["answer"]))
    return EXIT_OK if record["pick"] else EXIT_CELLS_FAILED


def cmd_recommend(args) -> int:
    """One line per task: the strategy to pick under the constraints and why; exit 1 if some task has none."""
    from harness.report.recommend import recommend, recommendation_lines
    from harness.results.table import load_aggregates

    aggregates = load_aggregates(args.run_dir)
    print("\n".join(recommendation_lines(aggregates, _constraints(args))))
    return EXIT_OK if all(item.strategy for item in recommend(aggregates, _constraints(args))) else EXIT_CELLS_FAILED


def _memory_size(text: str) -> int:
    from harness.report.format import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_track_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--track",
        action="append",
        default=[],
        metavar="SINK[=TARGET]",
        help="send each cell as it finishes (repeatable): mlflow (embedded SQLite beside the run folder), "
        "mlflow=TRACKING_URI, tensorboard (RUN_DIR/tensorboard), or a plugin's sink",
    )
    parser.add_argument("--track-weights", action="store_true", help="send each cell's weights folder too")


def _add_constraint_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-memory",
        type=_memory_size,
        metavar="SIZE",
        help="largest acceptable peak memory: bytes, or e.g. 2GiB, 500MB",
    )
    parser.add_argument(
        "--min-metric",
        type=float,
        metavar="VALUE",
        help="smallest acceptable primary metric (largest, for lower-is-better metrics)",
    )
    parser.add_argument(
        "--prefer",
        choices=("accuracy", "memory", "speed"),
        default="accuracy",
        help="what decides among the strategies that meet the limits (default: accuracy)",
    )
    parser.add_argument(
        "--allow-contended",
        action="store_true",
        help="let --prefer speed rank on throughput measured under contention (it refuses by default)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tunebench", description="Benchmark fine-tuning strategies on TOML tasks.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (repeatable); it may register strategies, scenarios, metrics "
        f"or trackers. Installed packages can also declare the {PLUGIN_GROUP} entry point",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, **options) -> argparse.ArgumentParser:  # every command takes --plugin
        return commands.add_parser(name, parents=[common], **options)

    validate = command("validate", help="check task and suite files; exit 2 on any problem")
    validate.add_argument("paths", nargs="+", help="task files, suite files or folders of task files")
    validate.set_defaults(func=cmd_validate)
    init = command("init", help="write a commented task file for a data file: scenario, fields, max_length, split")
    init.add_argument("data", help="a data file (csv, tsv, jsonl, json, parquet, compressed) or a folder per label")
    init.add_argument(
        "--scenario", choices=("classification", "question_answering", "generation", "dialogue", "domain")
    )
    init.add_argument(
        "--model", help="model source (default: MiniLM for classification and extractive QA, else SmolLM2)"
    )
    init.add_argument("--out", help="task file to write (default: DATA's name with .toml, here)")
    init.add_argument(
        "--field", action="append", default=[], metavar="FIELD=COLUMN", help="a field's column (repeatable)"
    )
    init.add_argument("--domain", help="the domain's name, for --scenario domain (e.g. medical)")
    init.add_argument("--force", action="store_true", help="replace an existing --out file")
    init.set_defaults(func=cmd_init)
    listing = command("list", help="one row per task")
    listing.add_argument("paths", nargs="*", help="default: tasks")
    listing.add_argument("--json", action="store_true")
    listing.add_argument(
        "--data",
        action="store_true",
        help="each task's data card: rows, labels and majority share, token lengths against max_length (loads "
        "the tokenizer), eval rows also in train, and the data check's warnings",
    )
    listing.set_defaults(func=cmd_list)
    run = command("run", help="run every strategy on every task")
    run.add_argument("paths", nargs="+", help="task files, suite files or folders of task files")
    run.add_argument("--strategies", help=f"comma-separated; default: the suite's or {','.join(DEFAULT_STRATEGIES)}")
    run.add_argument("--seeds", type=int, help="seeds per (task, strategy): 0..N-1")
    run.add_argument("--profile", help=f"one of {', '.join(PROFILES)}")
    run.add_argument(
        "--search",
        action="store_true",
        help="search each strategy's learning rate (its default grid, scored on a validation carve of train) "
        "before the final cells, for tasks without their own [search]",
    )
    run.add_argument("--out", help="run folder; an existing one is resumed (finished cells are kept)")
    run.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait for a busy run folder (default: refuse)",
    )
    run.add_argument(
        "--exclusive",
        type=float,
        nargs="?",
        const=0.0,
        metavar="WAIT_S",
        help="start only on a quiet machine (other processes under 15%% of the CPU); wait up to WAIT_S seconds",
    )
    run.add_argument(
        "--executor", choices=("local", "ray"), help="what runs the cells (default: the suite's, or local)"
    )
    run.add_argument("--ray-address", help="join this Ray cluster (default: start a local instance)")
    run.add_argument(
        "--price-per-hour",
        type=_price,
        metavar="PRICE",
        help="price of one device-hour (a GPU, or on CPU the machine): each cell records its cost "
        "(default: the suite's price_per_device_hour, else none)",
    )
    run.add_argument(
        "--shard", metavar="I/N", help="run only shard I of N: a deterministic, disjoint part of the cells"
    )
    run.add_argument(
        "--shard-costs", metavar="RUN_DIR", help="balance the shards by the cell times measured in this earlier run"
    )
    _add_track_options(run)
    run.set_defaults(func=cmd_run)
    track = command("track", help="send a run folder's results to tracking sinks (MLflow, TensorBoard, plugins)")
    track.add_argument("run_dir")
    track.add_argument("--to", action="append", required=True, metavar="SINK[=TARGET]", help="e.g. mlflow, mlflow=URI")
    track.add_argument("--track-weights", action="store_true", help="send each cell's weights folder too")
    track.set_defaults(func=cmd_track)
    merge = command("merge", help="one run folder from several (e.g. shards); refuses conflicting results")
    merge.add_argument("out", help="the merged run folder (created, or added to)")
    merge.add_argument("run_dirs", nargs="+", help="run folders to merge")
    merge.add_argument("--force", action="store_true", help="merge folders of different configs too")
    merge.set_defaults(func=cmd_merge)
    report = command("report", help="HTML report, or a table export with --format")
    report.add_argument("run_dir")
    report.add_argument(
        "--format", choices=FORMATS, help="a table export instead of the HTML report; the last three feed CI tools"
    )
    report.add_argument("--out", help="output file (HTML default: RUN_DIR/report.html; exports: standard output)")
    report.add_argument("--baseline", metavar="OTHER_RUN_DIR", help="HTML: per-cell deltas against this run")
    _add_constraint_options(report)
    report.set_defaults(func=cmd_report)
    gate = command("compare", help="regression gate: exit 1 when a change is beyond threshold and noise")
    gate.add_argument("runs", nargs="+", metavar="RUN", help="BASELINE [BASELINE...] CURRENT: run folders or exports")
    gate.add_argument("--gate", metavar="SUITE_FILE", help="read thresholds from this file's [gate]")
    gate.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="FIGURE=VALUE",
        help="e.g. primary=2%% (relative) or primary=0.01 (absolute); figures: primary, metrics, "
        "peak_memory_bytes, train_tokens_per_s, train_seconds",
    )
    gate.add_argument("--level", type=float, help="significance level of the noise tests (default 0.05)")
    gate.add_argument("--allow-mismatch", action="store_true", help="compare across devices, versions, configs")
    gate.add_argument("--markdown", metavar="FILE", help="also write a Markdown summary for a pull request")
    gate.add_argument("--all", action="store_true", help="list every check, not only the changes")
    gate.add_argument(
        "--baseline-from",
        metavar="STORE",
        help="take the baseline from an MLflow store (a tracking URI, or an mlflow.db file or its folder): its "
        "newest runs of the same matrix, pooled; then give only CURRENT",
    )
    gate.add_argument("--last", type=int, default=3, metavar="N", help="with --baseline-from: pool N runs (default 3)")
    gate.add_argument("--branch", help="with --baseline-from: only runs of this branch")
    gate.set_defaults(func=cmd_compare)
    history = command("history", help="each (task, strategy)'s figures over runs, regressions marked (HTML)")
    history.add_argument("sources", nargs="+", metavar="STORE_OR_RUN_DIR", help="run folders or MLflow stores")
    history.add_argument("--branch", help="only runs of this branch")
    history.add_argument("--last", type=int, metavar="N", help="only the newest N runs")
    history.add_argument("--out", default="history.html", help="the page to write (default history.html)")
    history.set_defaults(func=cmd_history)
    recommend = command("recommend", help="which strategy to pick per task, and why")
    recommend.add_argument("run_dir")
    _add_constraint_options(recommend)
    recommend.set_defaults(func=cmd_recommend)
    chooser = command(
        "pick",
        help="which strategy for this task, with evidence: a race of (strategy, learning rate) on validation "
        "rows, then eval finals where they decide",
    )
    chooser.add_argument("task", help="a task file")
    chooser.add_argument(
        "--strategies", help=f"comma-separated; default: {','.join(s for s in DEFAULT_STRATEGIES if s != 'none')}"
    )
    chooser.add_argument("--profile", help=f"one of {', '.join(PROFILES)}")
    chooser.add_argument(
        "--budget-hours",
        type=float,
        metavar="H",
        help="stop promoting in the race once its cells have taken H cell-hours; report the best so far",
    )
    chooser.add_argument("--out", help="run folder; an existing one is resumed (finished cells are kept)")
    chooser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="what runs the rungs and finals (ray: one cell per GPU where there are GPUs, else per CPU)",
    )
    chooser.add_argument("--ray-address", help="join this Ray cluster (default: start a local instance)")
    _add_constraint_options(chooser)
    chooser.set_defaults(func=cmd_pick)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed, for files that say how they were made
    if getattr(args, "seeds", None) is not None and args.seeds < 1:
        print("tunebench: --seeds must be >= 1", file=sys.stderr)
        return EXIT_CONFIG
    try:
        load_plugins(args.plugin)
    except ImportError as exc:
        print(f"tunebench: cannot import plugin {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        return args.func(args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    except (FileNotFoundError, ResultFileError) as exc:
        print(f"tunebench: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except BrokenPipeError:  # e.g. `tunebench list --json | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
