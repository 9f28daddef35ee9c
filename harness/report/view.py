"""What the HTML report shows, computed from result files only: overview matrix, per-task tables and charts."""

from __future__ import annotations

import math

from harness.figures import shown_figures
from harness.metrics import higher_is_better
from harness.report.format import (
    NOT_LEARNED_MARK,
    eval_noise_only,
    human_bytes,
    human_seconds,
    learning_words,
    metric_value,
    missing,
    noise_marker,
    number,
    seed_count_text,
    strategy_sort_key,
    verdict_words,
)
from harness.report.svg import (
    BREAKDOWN_PARTS,
    PALETTE,
    Point,
    byte_ticks,
    line_chart,
    linear_ticks,
    scatter_chart,
    stacked_bars,
)
from harness.results.aggregate import BEST, TIE, UNKNOWN, tied_with


def strategy_colors(strategies: list[str]) -> dict[str, str]:
    """One colour per strategy, the same in every chart of the page."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(strategies)}


def _cell(text, sort=None, **extra) -> dict:
    """A table cell: shown text and the value the sort script uses ('' sorts last)."""
    return {"text": text, "sort": "" if missing(sort) else sort, **extra}


def _shade(value, low, high, higher: bool) -> str:
    """Per-task colour: darker green is better within the task's column."""
    if missing(value):
        return "#f4f4f4"
    share = 1.0 if high == low else (value - low) / (high - low)
    share = share if higher else 1 - share
    return f"hsl(145, 55%, {94 - 34 * share:.0f}%)"


def _win_rate_and_rank(aggregates, strategy: str) -> tuple[float | None, float | None]:
    """HELM-style mean win rate (share of other strategies beaten per task; a pair within noise of each
    other, by the aggregate's pairwise noise rule, counts half, as equal means do) and mean rank."""
    rates, ranks = [], []
    for _, group in aggregates.groupby("task"):
        scored = group[group["primary_value_mean"].notna()]
        mine = scored[scored["strategy"] == strategy]
        if mine.empty or len(scored) < 2:
            continue
        higher = higher_is_better(mine["primary_metric"].iloc[0])
        row = mine.iloc[0]
        wins = 0.0
        others = scored[scored["strategy"] != strategy]
        for _, other in others.iterrows():
            if tied_with(row, other):
                wins += 0.5
            elif (other["primary_value_mean"] < row["primary_value_mean"]) == higher:
                wins += 1.0
        rates.append(wins / len(others))
        ranks.append(float(row["rank_in_task"]))
    return (sum(rates) / len(rates) if rates else None), (sum(ranks) / len(ranks) if ranks else None)


def overview(aggregates, tasks: list[str], strategies: list[str]) -> dict:
    """The task x strategy matrix of the primary metric, with markers, colours, win rate and mean rank."""
    by_key = {(r["task"], r["strategy"]): r for _, r in aggregates.iterrows()}
    ranges: dict[str, tuple[float, float]] = {}
    metrics: dict[str, str] = {}
    for task in tasks:
        group = aggregates[(aggregates["task"] == task) & aggregates["primary_value_mean"].notna()]
        ranges[task] = (group["primary_value_mean"].min(), group["primary_value_mean"].max()) if len(group) else (0, 0)
        metrics[task] = group["primary_metric"].iloc[0] if len(group) else ""
    rows = []
    for strategy in strategies:
        cells = []
        for task in tasks:
            row = by_key.get((task, strategy))
            if row is None:
                cells.append(_cell("not run", None, color="#f4f4f4", marker="", title="", classes="missing"))
                continue
            if int(row["n"]) == 0:
                statuses = row["failed_statuses"]
                cells.append(
                    _cell(
                        "failed" if statuses == "failed" else f"failed ({statuses})",
                        None,
                        color="#fde2e1",
                        marker="",
                        title=f"{row['n_failed']} failed cell(s)",
                        classes="failed",
                    )
                )
                continue
            verdict = row["noise_vs_best"]
            title = f"n={seed_count_text(row)}; {verdict_words(row) or 'worse than the best beyond noise'}"
            if isinstance(row.get("noise_test"), str):
                title += f"; decided by {row['noise_test']}"
            not_learned = learning_words(row)
            if not_learned:
                title += f"; {row.get('learning_detail') or not_learned}"
            cells.append(
                _cell(
                    metric_value(row["primary_value_mean"], row["primary_value_std"]),
                    row["primary_value_mean"],
                    marker=f"{noise_marker(verdict)} {NOT_LEARNED_MARK}".strip()
                    if not_learned
                    else noise_marker(verdict),
                    title=title,
                    color=_shade(row["primary_value_mean"], *ranges[task], higher_is_better(row["primary_metric"])),
                    classes="not-learned"
                    if not_learned
                    else "best"
                    if verdict == BEST
                    else ("tie" if verdict == TIE else ""),
                )
            )
        win_rate, mean_rank = _win_rate_and_rank(aggregates, strategy)
        rows.append(
            {
                "strategy": strategy,
                "cells": cells,
                "win_rate": _cell("n/a" if win_rate is None else f"{win_rate:.0%}", win_rate),
                "mean_rank": _cell("n/a" if mean_rank is None else f"{mean_rank:.2g}", mean_rank),
            }
        )
    return {"tasks": [{"name": t, "metric": metrics[t]} for t in tasks], "rows": rows}


def _figure(row, column: str, formatter) -> dict:
    mean = row.get(f"{column}_mean")
    std = row.get(f"{column}_std")
    text = formatter(mean)
    if not missing(mean) and not missing(std) and std > 0:
        text += f" ± {formatter(std)}"
    return _cell(text, mean)


def task_table(group, metric_columns: list[str]) -> dict:
    """Per-task sortable table: metrics (mean ± std), noise marker, memory, throughput, size, time."""
    primary = group["primary_metric"].dropna().iloc[0] if group["primary_metric"].notna().any() else "primary"
    columns = ["strategy", "settings", "seeds", f"{primary} (primary)"] + [
        c.removeprefix("metric.") for c in metric_columns if c != f"metric.{primary}"
    ]
    forgets = "forgetting_mean" in group and group["forgetting_mean"].notna().any()
    columns += [
        "vs best",
        "peak memory",
        "train tokens/s",
        "eval / generation tokens/s",
        "trainable %",
        "trainable params",
        "saved weights",
        "training time",
    ] + [f.header for f in shown_figures(group)]
    if forgets:
        columns.append("forgetting (nats/token vs none)")
    rows = []
    for _, row in sorted(group.iterrows(), key=lambda item: strategy_sort_key(item[1]["strategy"])):
        verdict = row["noise_vs_best"] if int(row["n"]) else None
        cells = [
            _cell(row["strategy"], row["strategy"]),
            _cell(row.get("settings") or "defaults", row.get("settings")),
            _cell(seed_count_text(row), int(row["n"])),
            _cell(
                " ".join(
                    part
                    for part in (metric_value(row["primary_value_mean"], row["primary_value_std"]), learning_words(row))
                    if part
                ),
                row["primary_value_mean"],
                classes="not-learned" if learning_words(row) else "best" if verdict == BEST else "",
                title=row.get("learning_detail") if learning_words(row) else "",
            ),
        ]
        for column in metric_columns:
            if column != f"metric.{primary}":
                cells.append(
                    _cell(metric_value(row.get(f"{column}_mean"), row.get(f"{column}_std")), row.get(f"{column}_mean"))
                )
        marker = noise_marker(verdict)
        label = verdict_words(row) if verdict else ""
        p_value = row.get("noise_p_value")
        if not missing(p_value) and not eval_noise_only(row):
            label += f" (p = {p_value:.2g})"
        test = row.get("noise_test") if isinstance(row.get("noise_test"), str) else ""
        cells += [
            _cell(f"{marker} {label}".strip(), {BEST: 0, TIE: 1, UNKNOWN: 2}.get(verdict or "", 3), title=test),
            _figure(row, "peak_memory_bytes", human_bytes),
            _figure(row, "train_tokens_per_s", number),
            _figure(row, "eval_tokens_per_s", number),
            _cell(number(row.get("trainable_percent_mean"), 3), row.get("trainable_percent_mean")),
            _cell(number(row.get("trainable_params_mean")), row.get("trainable_params_mean")),
            _cell(human_bytes(row.get("weights_bytes_mean")), row.get("weights_bytes_mean")),
            _figure(row, "train_seconds", human_seconds),
        ]
        cells += [_figure(row, figure.name, number) for figure in shown_figures(group)]
        if forgets:
            cells.append(_figure(row, "forgetting", lambda v: "n/a" if missing(v) else f"{v:+.3f}"))
        rows.append({"strategy": row["strategy"], "cells": cells})
    return {"columns": columns, "rows": rows}


def _points(group, x_column: str, colors: dict[str, str]) -> list[Point]:
    points = []
    for _, row in group.iterrows():
        x, y = row.get(f"{x_column}_mean"), row["primary_value_mean"]
        if missing(x) or missing(y):
            continue
        points.append(
            Point(
                row["strategy"],
                float(x),
                float(y),
                colors[row["strategy"]],
                None if missing(row.get(f"{x_column}_std")) else float(row[f"{x_column}_std"]),
                None if missing(row["primary_value_std"]) else float(row["primary_value_std"]),
            )
        )
    return sorted(points, key=lambda p: strategy_sort_key(p.name))


def _quality_chart(task: str, group, colors: dict[str, str], x_column: str, x_name: str, **axis) -> dict:
    """The primary metric (mean over seeds) against one figure, a point per strategy, with the Pareto front;
    `axis` gives the x axis: x_label, x_ticks, x_format, higher_x_better."""
    metric = group["primary_metric"].dropna().iloc[0] if group["primary_metric"].notna().any() else "primary metric"
    return {
        "svg": scatter_chart(
            _points(group, x_column, colors),
            title=f"{task}: {metric} vs {x_name}",
            y_label=metric,
            y_format=lambda v: f"{metric} {v:.4g}",
            higher_y_better=higher_is_better(metric),
            **axis,
        )
    }


def task_charts(task: str, group, colors: dict[str, str], memory_kind: str) -> list:
    """Primary metric vs peak memory, vs training throughput and, where cells have a price, vs cost per
    cell, each with its Pareto front."""
    metric = group["primary_metric"].dropna().iloc[0] if group["primary_metric"].notna().any() else "primary metric"
    vertical = "Up" if higher_is_better(metric) else "Down"
    untrained = sorted(group.loc[group["train_tokens_per_s_mean"].isna() & (group["n"] > 0), "strategy"])
    memory = _quality_chart(
        task,
        group,
        colors,
        "peak_memory_bytes",
        "peak memory",
        x_label=f"peak memory ({memory_kind})",
        x_ticks=byte_ticks,
        x_format=human_bytes,
        higher_x_better=False,
    )
    memory["note"] = (
        f"{vertical} and to the left is better; the dashed line joins the strategies no other beats "
        "on both axes (the Pareto front)."
    )
    throughput = _quality_chart(
        task,
        group,
        colors,
        "train_tokens_per_s",
        "training throughput",
        x_label="training throughput (non-padding tokens/s)",
        x_ticks=linear_ticks,
        x_format=lambda v: f"{v:,.0f} tokens/s",
        higher_x_better=True,
    )
    throughput["note"] = f"{vertical} and to the right is better." + (
        " Not plotted (no training steps): " + ", ".join(f'"{s}"' for s in untrained) + "." if untrained else ""
    )
    charts = [memory, throughput]
    if "cost_mean" in group and group["cost_mean"].notna().any():  # the run had a price per device-hour
        cost = _quality_chart(
            task,
            group,
            colors,
            "cost",
            "cost per cell",
            x_label="cost per cell (device-hours x the run's price per device-hour)",
            x_ticks=linear_ticks,
            x_format=lambda v: f"{v:.4g} per cell",
            higher_x_better=False,
        )
        cost["note"] = f"{vertical} and to the left is better: the quality each strategy buys for its price."
        charts.append(cost)
    return charts


def cost_note(task: str, results: list[dict]) -> str:
    """One line on what the task's ok cells cost: device time, money at the run's price (when given) and
    energy where a counter was read, else why energy is not measurable here."""
    costs = [r["cost"] for r in results if r.get("task") == task and r.get("status") == "ok" and r.get("cost")]
    if not costs:
        return ""
    hours = sum(c["device_hours"] for c in costs)
    line = f"Device time: {hours:.3g} device-hours over {len(costs)} cell(s)"
    prices = {c["price_per_device_hour"] for c in costs} - {None}
    if prices and all(c["cost"] is not None for c in costs):
        rates = ", ".join(f"{p:g}" for p in sorted(prices))
        line += f"; cost {sum(c['cost'] for c in costs):.4g} at {rates} per device-hour"
    else:
        line += f"; cost: {costs[0].get('cost_note') or 'not priced'}"
    if all(c.get("energy_kwh") is not None for c in costs):
        line += f"; energy {sum(c['energy_kwh'] for c in costs):.3g} kWh ({costs[0]['energy_source']})"
    else:
        line += f"; energy: {next(c['energy_source'] for c in costs if c.get('energy_kwh') is None)}"
    return line + "."


def learning_curves(task: str, results: list[dict], colors: dict[str, str]) -> list[dict]:
    """The primary metric against training tokens and against training seconds, one line per strategy
    (its lowest ok seed), from the periodic evaluations of tasks with `eval_every_steps`; [] without any."""
    first: dict[str, dict] = {}
    for result in sorted(results, key=lambda r: r["seed"]):
        history = (result.get("training") or {}).get("periodic_evaluation") or []
        if result["task"] == task and result["status"] == "ok" and history:
            first.setdefault(result["strategy"], result)
    if not first:
        return []
    metric = next(iter(first.values()))["primary_metric"]
    direction = "Up" if higher_is_better(metric) else "Down"
    charts = []
    for x_key, x_label, x_format in (
        ("tokens", "training tokens (non-padding)", lambda v: f"{v:,.0f} tokens"),
        ("train_seconds", "training time (s, steps only)", lambda v: f"{v:,.1f} s"),
    ):
        series = [
            (
                strategy,
                colors.get(strategy, "#888"),
                [(h[x_key], h[metric]) for h in result["training"]["periodic_evaluation"]],
            )
            for strategy, result in sorted(first.items(), key=lambda item: strategy_sort_key(item[0]))
        ]
        charts.append(
            {
                "svg": line_chart(
                    series,
                    title=f"{task}: learning curve, {metric} vs {x_label}",
                    x_label=x_label,
                    y_label=metric,
                    x_format=x_format,
                    y_format=lambda v: f"{metric} {v:.4g}",
                ),
                "note": f"{direction} is better. Periodic evaluations (eval_every_steps), lowest seed per strategy.",
            }
        )
    return charts


def memory_breakdown_chart(task: str, results: list[dict], strategies: list[str]):
    """Stacked bars of the mean training-peak breakdown per strategy, or None when no result carries one."""
    bars = []
    for strategy in strategies:
        breakdowns = [
            r["memory"]["breakdown"]
            for r in results
            if r["task"] == task
            and r["strategy"] == strategy
            and r["status"] == "ok"
            and isinstance((r.get("memory") or {}).get("breakdown"), dict)
        ]
        if breakdowns:
            bars.append(
                (
                    strategy,
                    {key: sum(b.get(key) or 0 for b in breakdowns) / len(breakdowns) for key, _, _ in BREAKDOWN_PARTS},
                )
            )
    if not bars:
        return None
    return stacked_bars(bars, title=f"{task}: training memory by part")


def search_section(task: str, trials: list[dict], colors: dict[str, str]) -> dict | None:
    """The learning-rate search of `task`, from its trial results: a sensitivity chart (validation score
    against log10 of the learning rate, one line per strategy) and per strategy the chosen rate, its
    validation score and its robustness; None when the task was not searched."""
    from harness.results.search import ROBUSTNESS_FACTOR, summaries

    found = [s for s in summaries(r for r in trials if r["task"] == task)]
    if not found:
        return None
    found.sort(key=lambda s: strategy_sort_key(s.strategy))
    metric = found[0].metric
    series = [
        (s.strategy, colors.get(s.strategy, "#888"), [(math.log10(rate), v) for rate, v in s.scores if v is not None])
        for s in found
    ]
    chart = line_chart(
        series,
        title=f"{task}: {metric} vs learning rate (search trials, validation rows)",
        x_label="log10(learning rate): -3 is 1e-3",
        y_label=f"{metric} on validation",
        x_format=lambda v: f"{10**v:.0e}",
        y_format=lambda v: f"{metric} {v:.4g}",
    )
    rows = [
        {
            "strategy": s.strategy,
            "chosen": "none finished" if s.chosen is None else f"{s.chosen:g}",
            "score": number(s.best_score),
            "robustness": "not measurable" if s.robustness is None else f"{s.robustness:.1%}",
            "trials": ", ".join(f"{rate:g}: {number(v) if v is not None else 'failed'}" for rate, v in s.scores),
        }
        for s in found
    ]
    direction = "Up" if higher_is_better(metric) else "Down"
    note = (
        f"{direction} is better. Each point is a trial trained on the task's training rows minus a held-out "
        f"validation share and scored on that share, never on the eval split; the final cells train with the "
        f"chosen rate. Robustness: the share of the best validation score kept at {ROBUSTNESS_FACTOR:g}x and "
        f"1/{ROBUSTNESS_FACTOR:g}x the chosen rate (interpolated in log rate; the worse side; sides outside "
        f"the searched range are left out)."
    )
    return {"chart": chart, "rows": rows, "note": note, "metric": metric}


def race_section(run_dir, colors: dict[str, str]) -> dict | None:
    """`tunebench pick`'s answer and its race, from RUN_DIR/pick.json (harness.run.race): the answer's
    lines and a chart of validation score against training steps, one line per (strategy, rate), the
    pairs dropped by the race in grey; None when the run was not a pick."""
    import json
    from pathlib import Path

    from harness.run.race import PICK_FILE

    path = Path(run_dir) / PICK_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    race = record.get("race") or {}
    series = []
    for pair in race.get("pairs", []):
        points = [(float(steps), score) for steps, score in pair["scores"].items() if score is not None]
        dropped = pair.get("pruned_after_steps") is not None
        name = f"{pair['strategy']} {pair['learning_rate']:g}" + (" ×" if dropped else "")  # legend is narrow
        series.append((name, "#c8c8c8" if dropped else colors.get(pair["strategy"], "#888"), sorted(points)))
    series.sort(key=lambda item: item[1] != "#c8c8c8")  # dropped pairs first, drawn under the others
    chart = line_chart(
        series,
        title=f"{record.get('task')}: the race on validation rows (pick)",
        x_label="training steps of the rung",
        y_label="primary metric on validation",
        x_format=lambda v: f"{v:.0f}",
        y_format=lambda v: f"{v:.4g}",
    )
    return {
        "answer": record.get("answer") or [],
        "chart": chart,
        "excluded": race.get("excluded") or {},
        "not_run": race.get("not_run") or [],
        "cost": record.get("cost") or {},
        "race_cells": sorted({c for pair in race.get("pairs", []) for c in pair.get("cells", {}).values()}),
    }
