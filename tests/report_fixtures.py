"""Result files built in Python for report tests: the schema of harness/run/cell.py, hand-picked numbers."""

from __future__ import annotations

import hashlib
from pathlib import Path

from harness.results.io import write_result
from harness.results.schema import CellResult, ErrorInfo

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = "<img src=x onerror=alert(2)>"
GiB = 2**30


def cell_result(
    task: str,
    strategy: str,
    seed: int,
    value: float,
    *,
    memory: float,
    tokens_per_s: float | None,
    status: str = "ok",
    metric: str = "accuracy",
    trainable: int = 1000,
    total: int = 100_000,
    breakdown: dict | None = None,
    examples: list | None = None,
    confusion_matrix: dict | None = None,
    message: str = "boom",
    **extra,
) -> dict:
    """One cell result in the current schema (built through CellResult), with the fields the report reads."""
    header = {
        "cell_id": hashlib.sha256(f"{task}|{strategy}|{seed}".encode()).hexdigest()[:16],
        "task": task,
        "scenario": "classification",
        "domain": None,
        "strategy": strategy,
        "seed": seed,
        "profile": "default",
        "primary_metric": metric,
        "config": {"data_sha256": "abc123", "seed": seed, "strategy": strategy},
    }
    if status != "ok":
        return CellResult(
            **header,
            status=status,
            error=ErrorInfo("RuntimeError", message, ["Traceback (most recent call last):", "RuntimeError: boom"]),
        ).to_dict()
    details = {k: v for k, v in (("examples", examples), ("confusion_matrix", confusion_matrix)) if v is not None}
    trackers = {
        "throughput": {
            "train_tokens_per_s": tokens_per_s,
            "train_samples_per_s": tokens_per_s and tokens_per_s / 30,
            "eval_tokens_per_s": 2000.0 + seed,
        },
        "memory": {
            "peak_bytes": memory,
            "kind": "process_peak_rss",
            "phases": {},
            **({"breakdown": breakdown} if breakdown else {}),
        },
        "timing": {"train_seconds": 30.0 + seed if tokens_per_s else None, "eval_seconds": 2.0, "load_seconds": 1.0},
    }
    result = CellResult(
        **header,
        status="ok",
        metrics={metric: value, "macro_f1": value - 0.01},
        primary_value=value,
        details=details,
        params={"total": total, "trainable": trainable, "trainable_percent": 100 * trainable / total},
        weights={"bytes": trainable * 4, "format": "safetensors", "path": "weights"} if tokens_per_s else None,
        provenance={
            "device": "cpu",
            "device_name": "x86_64",
            "python": "3.11.7",
            "platform": "Linux",
            "cpu_count": 2,
            "git_commit": "0123abcd",
            "git_dirty": False,
            "packages": {"torch": "2.13.0+cpu", "transformers": "5.24.0"},
        },
        data={
            "source": f"{task} corpus",
            "citation": "Doe 2026",
            "licence": "CC BY 4.0",
            "train_rows": 100,
            "eval_rows": 50,
            "train_sha256": "1111",
            "eval_sha256": "2222",
            "split": None,
        },
        finished_at="2026-11-28T12:00:00+0000",
        trackers=trackers,
    )
    return {**result.to_dict(), **extra}


# (strategy, accuracy per seed, peak memory, train tokens/s): full is best beyond noise, lora ties it.
SENTIMENT = (
    ("none", (0.50, 0.50, 0.50), 0.5 * GiB, None),
    ("full", (0.90, 0.91, 0.92), 2.0 * GiB, 800.0),
    ("lora", (0.89, 0.91, 0.90), 1.0 * GiB, 1500.0),
    ("adapter", (0.70, 0.71, 0.72), 1.1 * GiB, 1200.0),
)


def three_seed_results() -> list[dict]:
    """Two tasks x four strategies x three seeds; one failed cell; examples, confusion matrices, breakdowns."""
    results = []
    for strategy, values, memory, speed in SENTIMENT:
        for seed, value in enumerate(values):
            extra = {"confusion_matrix": {"labels": ["neg", "pos"], "counts": [[40 + seed, 10], [5, 45]]}}
            if speed:
                extra["breakdown"] = {
                    "weights_bytes": 0.4 * GiB,
                    "gradients_bytes": 0.1 * GiB,
                    "optimizer_state_bytes": 0.2 * GiB,
                    "other_bytes": memory - 0.7 * GiB,
                }
            results.append(cell_result("sentiment", strategy, seed, value, memory=memory, tokens_per_s=speed, **extra))
    for strategy, base, memory, speed in (
        ("none", 40.0, 0.5 * GiB, None),
        ("full", 12.0, 2.0 * GiB, 700.0),
        ("lora", 14.0, 1.0 * GiB, 1300.0),
    ):
        for seed in range(3):
            examples = [
                {"input": f"question {i}", "reference": f"answer {i}", "prediction": f"{strategy} says {i}"}
                for i in range(3)
            ]
            results.append(
                cell_result(
                    "qa",
                    strategy,
                    seed,
                    base + seed * 0.5,
                    metric="perplexity",
                    memory=memory,
                    tokens_per_s=speed,
                    examples=examples,
                )
            )
    results.append(
        cell_result(
            "qa",
            "adapter",
            0,
            0.0,
            memory=0,
            tokens_per_s=None,
            status="oom",
            metric="perplexity",
            message="CUDA out of memory while allocating",
        )
    )
    return results


def single_seed_results() -> list[dict]:
    return [cell_result("sentiment", s, 0, v[0], memory=m, tokens_per_s=t) for s, v, m, t in SENTIMENT]


def injected_results() -> list[dict]:
    """Markup in a task name, in dataset text (example input, reference, labels) and in generated text."""
    task = f"evil{XSS_SCRIPT}"
    results = []
    for strategy, value in (("full", 0.9), ("lora", 0.8)):
        results.append(
            cell_result(
                task,
                strategy,
                0,
                value,
                memory=GiB,
                tokens_per_s=1000.0,
                data={"source": f"data {XSS_SCRIPT}", "citation": XSS_IMG, "licence": "x"},
                examples=[
                    {
                        "input": f"dataset {XSS_IMG}",
                        "reference": f"ref {XSS_SCRIPT}",
                        "prediction": f"model {XSS_IMG} {XSS_SCRIPT}",
                    }
                ],
                confusion_matrix={"labels": [XSS_IMG, "ok"], "counts": [[1, 0], [0, 1]]},
            )
        )
    results.append(
        cell_result(task, "adapter", 0, 0, memory=0, tokens_per_s=None, status="failed", message=f"error {XSS_IMG}")
    )
    return results


def write_run(run_dir: Path, results: list[dict]) -> Path:
    """Write every result as RUN_DIR/cells/<cell_id>.json and return RUN_DIR."""
    for result in results:
        write_result(run_dir, result)
    return run_dir
