"""Evaluate the tuned model in process with lm-eval (causal or seq2seq models through HFLM)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def _task_manager(include: Path | None):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=[str(include)], include_defaults=False) if include else TaskManager()


def evaluate_in_process(model, tokenizer, kind: str, spec, base: Path) -> dict[str, float]:
    """lm-eval scores as `lm_eval.TASK.METRIC` (stderr and aliases left out).

    Task YAMLs in `include_path` may name data files relative to their own folder:
    lm-eval resolves them against the working directory, so the call runs there.
    """
    if kind not in ("causal", "seq2seq"):
        raise ValueError(f"lm-eval's HFLM takes causal or seq2seq models, not {kind}; drop [lm_eval] from this task")
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, backend=kind, batch_size=spec.batch_size)
    include = (base / spec.include_path).resolve() if spec.include_path else None
    with contextlib.chdir(include or os.getcwd()):
        results = simple_evaluate(
            model=lm,
            tasks=list(spec.tasks),
            task_manager=_task_manager(include),
            num_fewshot=spec.num_fewshot,
            limit=spec.limit,
            bootstrap_iters=0,
        )
    return flatten_scores(results["results"])


NOT_SCORES = frozenset({"sample_len", "sample_count", "alias"})  # lm-eval bookkeeping beside the metrics


def flatten_scores(results: dict) -> dict[str, float]:
    flat = {}
    for task, scores in results.items():
        for key, value in scores.items():
            metric = key.split(",")[0]
            if (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and not metric.endswith("_stderr")
                and metric not in NOT_SCORES
            ):
                flat[f"lm_eval.{task}.{metric}"] = float(value)
    return flat
