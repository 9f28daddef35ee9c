"""`tunebench compare BASELINE... CURRENT`: a regression gate that needs a change to be both large and real.

Per (task, strategy) and figure (primary metric, other metrics, peak memory, training tokens/s, training
time), a regression is a change in the bad direction beyond the figure's threshold (relative or absolute,
from `[gate]` or the command line) *and* beyond the noise:
- several seeds that pair up (same seeds, same evaluation items, per-item files in both run folders):
  the paired test of harness.results.significance (McNemar on per-item correctness, paired bootstrap on
  item scores), primary metric only;
- otherwise, with at least two values on each side: Welch's unequal-variance t-test; with several on
  one side and one on the other, the prediction interval of the several. Several baseline runs (e.g. the
  last K runs of main) pool their values, so their spread is the noise;
- with one value on a side: the threshold alone, and the verdict says so.
Improvements are found the same way. Results from different devices, library versions or task configs
are not compared unless allowed: the differences are named.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.metrics import higher_is_better
from harness.results.variants import identity
from harness.schema import field
from harness.values import missing

REGRESSION, IMPROVEMENT, NOISE, OK = "REGRESSION", "improvement", "within noise", "ok"


@dataclass(frozen=True)
class Threshold:
    relative: float | None = field(None, min=0.0, help="a share of the baseline value, e.g. 0.02 for 2%")
    absolute: float | None = field(None, min=0.0, help="in the figure's own unit")

    def problems(self) -> list[tuple[str, str]]:
        given = [self.relative, self.absolute]
        return [] if sum(v is not None for v in given) == 1 else [("", "give exactly one of relative, absolute")]

    def exceeded(self, change: float, base: float) -> bool:
        if self.absolute is not None:
            return abs(change) > self.absolute
        return abs(change) > (self.relative or 0.0) * abs(base)

    def describe(self) -> str:
        return f"{self.relative:.0%}" if self.relative is not None else f"±{self.absolute:g}"


@dataclass(frozen=True)
class GateSpec:
    """`[gate]` in a suite file: per figure, how large a change must be to count."""

    level: float = field(0.05, min=0.0, max=1.0, help="significance level of the noise tests")
    primary: Threshold = field(Threshold(relative=0.02), help="the task's primary metric")
    metrics: Threshold = field(Threshold(relative=0.02), help="every other metric")
    peak_memory_bytes: Threshold = field(Threshold(relative=0.10), help="peak memory")
    train_tokens_per_s: Threshold = field(Threshold(relative=0.15), help="training throughput")
    train_seconds: Threshold = field(Threshold(relative=0.25), help="training wall time")


COST_FIGURES = {  # column -> (label, higher is better)
    "peak_memory_bytes": ("peak memory (bytes)", False),
    "train_tokens_per_s": ("train tokens/s", True),
    "train_seconds": ("train time (s)", False),
}


@dataclass
class Side:
    """One side of a comparison: the cells of one or more runs, and what they were run with."""

    cells: Any  # DataFrame of load_results rows (trials left out), with a `run` column
    run_dirs: list[Path | None]
    provenance: dict[str, set]  # device, library versions
    configs: dict[tuple[str, str], set[str]]  # (task, strategy) -> resolved configs without the seed


def load_side(paths: list[Path]) -> Side:
    """Run folders (merged or not) or results exports (JSON or CSV from `report --format`)."""
    import pandas as pd

    from harness.results.io import read_results
    from harness.results.table import load_results

    frames: list = []
    run_dirs: list[Path | None] = []
    provenance: dict[str, set] = {"device": set(), "libraries": set()}
    configs: dict[tuple[str, str], set[str]] = {}
    for number, path in enumerate(paths):
        path = Path(path)
        if path.is_dir():
            frame = load_results(path)
            run_dirs.append(path)
            for result in read_results(path):
                record = result.get("provenance") or {}
                if record:
                    provenance["device"].add(f"{record.get('device')} ({record.get('device_name')})")
                    provenance["libraries"].add(json.dumps(record.get("packages") or {}, sort_keys=True))
                config = identity(result.get("config"))
                configs.setdefault((result["task"], result["strategy"]), set()).add(json.dumps(config, sort_keys=True))
        elif path.suffix == ".json":
            frame = pd.DataFrame(_read_json(path).get("cells") or [])
            run_dirs.append(None)
        elif path.suffix == ".csv":
            frame = pd.read_csv(path)
            frame = frame[frame["row_type"] == "cell"] if "row_type" in frame else frame
            run_dirs.append(None)
        else:
            raise FileNotFoundError(f"{path}: not a run folder, a .json or a .csv results export")
        if "search_role" in frame.columns:
            frame = frame[frame["search_role"] != "trial"]
        if not {"task", "strategy", "seed", "status"} <= set(frame.columns):
            raise ValueError(f"{path}: not a results export (no task, strategy, seed, status columns)")
        if not path.is_dir() and "device" in frame.columns:
            provenance["device"].update(str(d) for d in frame["device"].dropna())
        frames.append(frame.assign(run=number))
    cells = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return Side(cells, run_dirs, provenance, configs)


def _read_json(path: Path) -> dict:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a JSON results export ({exc})") from None
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: not a JSON results export (expected an object with 'cells')")
    return payload


def mismatches(baseline: Side, current: Side) -> list[str]:
    """What differs between the two sides' devices, library versions and task configs, one line each."""
    lines = []
    for kind, label in (("device", "device"), ("libraries", "library versions")):
        before, after = baseline.provenance[kind], current.provenance[kind]
        if before and after and before != after:
            lines.append(f"{label} differ: {_describe(kind, before, after)}")
    for task, strategy in sorted(baseline.configs.keys() & current.configs.keys()):
        if baseline.configs[(task, strategy)] != current.configs[(task, strategy)]:
            keys = _config_keys(baseline.configs[(task, strategy)], current.configs[(task, strategy)])
            lines.append(f"task config of {task}/{strategy} differs in: {', '.join(keys) or 'its data'}")
    return lines


def _describe(key: str, before: set, after: set) -> str:
    if key != "libraries":
        return f"baseline {', '.join(sorted(before))}; current {', '.join(sorted(after))}"
    old, new = [_merge_versions(s) for s in (before, after)]
    changed = [f"{name} {old.get(name)} -> {new.get(name)}" for name in sorted(old.keys() | new.keys())]
    return ", ".join(c for c, name in zip(changed, sorted(old.keys() | new.keys())) if old.get(name) != new.get(name))


def _merge_versions(texts: set) -> dict:
    merged: dict[str, str] = {}
    for text in sorted(texts):
        for name, version in json.loads(text).items():
            merged[name] = version if name not in merged or merged[name] == version else "several"
    return merged


def _config_keys(before: set[str], after: set[str]) -> list[str]:
    def flat(value, prefix=""):
        if isinstance(value, dict):
            return {k: v for key, item in value.items() for k, v in flat(item, f"{prefix}{key}.").items()}
        return {prefix.rstrip("."): json.dumps(value, sort_keys=True)}

    old = [flat(json.loads(c)) for c in before]
    new = [flat(json.loads(c)) for c in after]
    keys = {k for a in old for b in new for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
    return sorted(keys)


@dataclass
class Check:
    task: str
    strategy: str
    figure: str
    baseline: float | None
    current: float | None
    threshold: str
    test: str
    p_value: float | None
    verdict: str
    reason: str

    @property
    def change(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline


def _values(frame, column: str) -> list[float]:
    import pandas as pd

    ok = frame[frame["status"] == "ok"]
    if column not in ok.columns:
        return []
    return [float(v) for v in pd.to_numeric(ok[column], errors="coerce") if not missing(v) and math.isfinite(v)]


def _welch_p(a: list[float], b: list[float]) -> float:
    from scipy import stats

    if len(set(a)) == 1 and len(set(b)) == 1:
        return 1.0 if a[0] == b[0] else 0.0
    with warnings.catch_warnings():  # near-constant samples: scipy warns, the p-value is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def _prediction_p(values: list[float], single: float) -> float:
    """Two-sided p-value of one new value against the spread of several: t = (x - mean) / (s * sqrt(1 + 1/n)),
    n - 1 degrees of freedom (the prediction interval of a normal sample)."""
    from scipy import stats

    n, mean = len(values), sum(values) / len(values)
    if len(set(values)) == 1:
        return 1.0 if single == values[0] else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = float(stats.tstd(values))
    t = (single - mean) / (spread * math.sqrt(1 + 1 / n))
    return float(2 * stats.t.sf(abs(t), n - 1))


def _paired(base_rows, cur_rows) -> Any:
    """The paired test of current against baseline on their per-item files, or None when they do not pair."""
    from harness.results.items import read_items
    from harness.results.significance import paired_test

    def by_seed(rows):
        found = {}
        for _, row in rows[rows["status"] == "ok"].iterrows():
            if isinstance(row.get("items_file"), str) and Path(row["items_file"]).exists():
                found[int(row["seed"])] = read_items(row["items_file"])
        return found

    measures = set(base_rows["items_measure"].dropna()) | set(cur_rows["items_measure"].dropna())
    metrics = set(base_rows["primary_metric"].dropna()) | set(cur_rows["primary_metric"].dropna())
    if len(measures) != 1 or len(metrics) != 1 or "items_file" not in base_rows or "items_file" not in cur_rows:
        return None
    return paired_test(by_seed(cur_rows), by_seed(base_rows), measures.pop(), metric=metrics.pop())


def compare(baseline: Side, current: Side, gate: GateSpec) -> list[Check]:
    """Every check, in (task, strategy, figure) order."""
    checks: list[Check] = []
    base_cells, cur_cells = baseline.cells, current.cells
    keys = sorted(
        set(zip(base_cells["task"], base_cells["strategy"])) | set(zip(cur_cells["task"], cur_cells["strategy"]))
    )
    single_baseline_run = len(baseline.run_dirs) == 1 and baseline.run_dirs[0] is not None
    for task, strategy in keys:
        base = base_cells[(base_cells["task"] == task) & (base_cells["strategy"] == strategy)]
        cur = cur_cells[(cur_cells["task"] == task) & (cur_cells["strategy"] == strategy)]
        if cur.empty or base.empty:
            where = "current run" if cur.empty else "baseline"
            verdict = REGRESSION if cur.empty else OK
            checks.append(Check(task, strategy, "cells", None, None, "", "", None, verdict, f"not in the {where}"))
            continue
        lost = (base["status"] == "ok").any() and not (cur["status"] == "ok").any()
        if lost:
            statuses = ", ".join(sorted(set(cur["status"])))
            checks.append(Check(task, strategy, "status", None, None, "", "", None, REGRESSION, f"ok -> {statuses}"))
            continue
        metric = str(cur["primary_metric"].dropna().iloc[0]) if cur["primary_metric"].notna().any() else ""
        figures = [("primary_value", metric or "primary", higher_is_better(metric), gate.primary)]
        for column in sorted(c for c in cur.columns if c.startswith("metric.") and c != f"metric.{metric}"):
            name = column.removeprefix("metric.")
            figures.append((column, name, higher_is_better(name), gate.metrics))
        for column, (label, higher) in COST_FIGURES.items():
            figures.append((column, label, higher, getattr(gate, column)))
        for column, label, higher, threshold in figures:
            before, after = _values(base, column), _values(cur, column)
            if not before or not after:
                continue
            paired = None
            if column == "primary_value" and single_baseline_run and current.run_dirs[0] is not None:
                paired = _paired(base, cur)
            checks.append(_check(task, strategy, label, before, after, higher, threshold, gate.level, paired))
    return checks


def _check(task, strategy, label, before, after, higher, threshold: Threshold, level, paired) -> Check:
    base_mean, cur_mean = sum(before) / len(before), sum(after) / len(after)
    change = cur_mean - base_mean
    worse = change < 0 if higher else change > 0
    if paired is not None:
        test, p = f"{paired.test}, {paired.seeds} seeds x {paired.items} items", paired.p_value
    elif len(before) >= 2 and len(after) >= 2:
        test, p = f"Welch t-test, {len(before)} vs {len(after)} values", _welch_p(before, after)
    elif len(before) >= 2 or len(after) >= 2:  # e.g. one new run against a rolling baseline of several
        many, one = (before, after[0]) if len(before) >= 2 else (after, before[0])
        test, p = f"prediction interval of {len(many)} values", _prediction_p(many, one)
    else:
        test, p = "one value on a side: threshold only", None
    beyond = threshold.exceeded(change, base_mean)
    real = p is None or p < level
    if not beyond:
        verdict, reason = OK, f"change within the {threshold.describe()} threshold"
    elif not real:
        verdict, reason = (
            NOISE,
            f"beyond the {threshold.describe()} threshold but not the noise (p = {p:.3g} >= {level:g})",
        )
    else:
        verdict = REGRESSION if worse else IMPROVEMENT
        direction = "worse" if worse else "better"
        reason = f"{direction} by more than {threshold.describe()}" + (
            f", p = {p:.3g} < {level:g}" if p is not None else ""
        )
    return Check(task, strategy, label, base_mean, cur_mean, threshold.describe(), test, p, verdict, reason)


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def table_lines(checks: list[Check], everything: bool = False) -> list[str]:
    """A compact text table: regressions, improvements and within-noise verdicts (every check with everything)."""
    shown = [c for c in checks if everything or c.verdict != OK]
    header = f"{'task/strategy':<28} {'figure':<22} {'baseline':>10} {'current':>10} {'change':>10}  verdict"
    lines = [header]
    for c in shown:
        change = _number(c.change)
        lines.append(
            f"{c.task + '/' + c.strategy:<28} {c.figure:<22} {_number(c.baseline):>10} {_number(c.current):>10} "
            f"{change:>10}  {c.verdict}: {c.reason}" + (f" [{c.test}]" if c.test else "")
        )
    return lines


def summary_line(checks: list[Check]) -> str:
    count = {v: sum(c.verdict == v for c in checks) for v in (REGRESSION, IMPROVEMENT, NOISE, OK)}
    return (
        f"{count[REGRESSION]} regression(s), {count[IMPROVEMENT]} improvement(s), {count[NOISE]} change(s) within "
        f"noise, {count[OK]} within threshold; {len(checks)} checks"
    )


def markdown(checks: list[Check], notes: list[str]) -> str:
    """A pull-request comment: the verdict, the changes that matter, and every check folded away."""
    regressions = [c for c in checks if c.verdict == REGRESSION]
    head = "### tunebench: " + ("❌ regression" if regressions else "✅ no regression")
    lines = [head, "", summary_line(checks) + ".", ""]
    lines += [f"> {note}" for note in notes] + ([""] if notes else [])

    def rows(selected):
        out = [
            "| task / strategy | figure | baseline | current | change | verdict | test |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in selected:
            cells = [
                f"{c.task} / {c.strategy}",
                c.figure,
                _number(c.baseline),
                _number(c.current),
                _number(c.change),
                f"**{c.verdict}**: {c.reason}",
                c.test,
            ]
            out.append("| " + " | ".join(str(x).replace("|", "\\|") for x in cells) + " |")
        return out

    changed = [c for c in checks if c.verdict != OK]
    if changed:
        lines += rows(changed) + [""]
    lines += ["<details><summary>All checks</summary>", "", *rows(checks), "", "</details>", ""]
    return "\n".join(lines)
