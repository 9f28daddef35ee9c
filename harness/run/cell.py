"""One cell, top to bottom:
resolve config -> load data -> load model -> apply strategy -> train -> evaluate -> measure -> write result.
"""

from __future__ import annotations

import contextlib
import random
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import cast

import numpy as np
import torch

from harness.data import data_card, load_task_data, read_texts
from harness.data.checks import with_tokens
from harness.measure import TRACKERS, TrackerContext, phase
from harness.measure.breakdown import MemoryBreakdown
from harness.measure.environment import capture
from harness.measure.flops import device_peak, flops_per_token, higher_peak
from harness.measure.memory import MemoryTracker
from harness.measure.params import count_parameters, folder_bytes
from harness.measure.throughput import Throughput, ThroughputTracker
from harness.metrics import compute, higher_is_better, per_item
from harness.models import load_tokenizer, local_source, model_kind
from harness.results.items import write_items
from harness.results.learning import cell_learning
from harness.run.progress import ProgressFile
from harness.run.train import TrainHooks, device_defaults, planned_steps, resolved_precision, train
from harness.run.watch import TrainingWatch
from harness.scenarios import SCENARIOS
from harness.scenarios.base import Batch
from harness.scenarios.text_to_text import TextToText
from harness.specs import CellSpec
from harness.strategies import STRATEGIES, ModelContext, freeze_all_but

TRACEBACK_LINES = 15


def cell_header(cell: CellSpec) -> dict:
    """The part of a result known before the cell runs."""
    return {
        "cell_id": cell.cell_id,
        "task": cell.task.name,
        "scenario": cell.task.task.scenario,
        "domain": cell.task.task.domain,
        "strategy": cell.strategy,
        "seed": cell.seed,
        "profile": cell.profile,
        "primary_metric": cell.task.primary_metric,
        "config": cell.resolved(),
        "search": search_record(cell),
    }


def search_record(cell: CellSpec) -> dict | None:
    """A search trial's learning rate and validation carve, or what a finished search chose for this cell."""
    if cell.is_trial:
        return {
            "role": "trial",
            "learning_rate": cell.task.training.learning_rate,
            "max_steps": cell.task.training.max_steps,  # the task's own cap
            "stop_after_steps": cell.task.training.stop_after_steps,  # a race's rung: a prefix of the full run
            "validation": cell.task.data.validation,
        }
    return {"role": "final", **cell.selection} if cell.selection else None


def failed_result(cell: CellSpec, status: str, error_type: str, message: str, log_tail: list[str]) -> dict:
    return {
        **cell_header(cell),
        "status": status,
        "primary_value": None,
        "error": {"type": error_type, "message": message, "traceback_tail": log_tail},
    }


def pick_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _save_weights(model, folder: Path) -> dict:
    """The tuned weights in standard form: peft's own layout, else the trainable tensors as safetensors."""
    folder.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "peft_config"):
        model.save_pretrained(folder)
        form = "peft"
    else:
        from safetensors.torch import save_file

        state = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
        save_file(state, folder / "trainable.safetensors", metadata={"format": "pt"})
        form = "safetensors"
    return {"path": str(folder.name), "format": form, "bytes": folder_bytes(folder)}


def measured_step(throughput, breakdown: MemoryBreakdown) -> Callable[[Batch], contextlib.ExitStack]:
    """What a cell measures around each training step: its time, samples and tokens, and its activations."""

    def step_context(batch: Batch) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        stack.enter_context(throughput.step(batch.n_samples, batch.n_tokens, batch.slots, batch.head_positions))
        shape = tuple(batch.inputs["input_ids"].shape) if "input_ids" in batch.inputs else None
        stack.enter_context(breakdown.step(shape))  # activations
        return stack

    return step_context


def run_cell(cell: CellSpec, cell_dir: Path, price_per_device_hour: float | None = None) -> dict:
    """Run one cell in this process and return its result (status "ok"); the price, where given, makes
    its cost."""
    task, training = cell.task, cell.task.training
    seed_everything(cell.seed)
    device = pick_device()
    synchronize = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    context = TrackerContext(device, synchronize, training, price_per_device_hour)
    trackers = [tracker(context) for tracker in TRACKERS.registered()]
    by_key = {tracker.key: tracker for tracker in trackers}
    memory, throughput = cast(MemoryTracker, by_key["memory"]), cast(Throughput, by_key["throughput"])
    scenario_class = SCENARIOS.get(task.task.scenario)
    strategy = STRATEGIES.get(cell.registered)(cell.options)
    device_defaults(device)
    precision = resolved_precision(training.precision, device)
    peak = device_peak(device, precision) if strategy.trains else None  # outside the timed phases

    card = data_card(task, scenario_class)  # before the timed load: a data error refuses the cell at once
    if card is not None and card.errors:
        raise ValueError(card.errors[0].line())
    progress = ProgressFile(cell_dir)  # for the runner's display (harness.run.progress)
    progress.phase("load", None)
    with phase(trackers, "load"):
        source = local_source(task.model, task.path.parent)
        kind = model_kind(source, task.model.kind, task.model.revision, task.model.trust_remote_code)
        tokenizer = load_tokenizer(source, task.model.revision, task.model.trust_remote_code)
        data = load_task_data(task, scenario_class.required_fields(task.scenario), scenario_class.fields)
        train_rows, eval_rows = data.train, data.eval
        scenario = scenario_class.create(task, tokenizer, kind, train_rows, eval_rows)
        extra = strategy.load_options(device)  # e.g. a quantised base; a plugin scenario may not take any
        model, head_modules = scenario.load_model(source, **extra) if extra else scenario.load_model(source)
        applied = strategy.apply(model, ModelContext(head_modules, scenario.peft_task_type))
        model = applied.model.to(device)
        freeze_all_but(model, applied, head_modules if strategy.trains else ())
    if card is not None:  # outside the timed phases: token lengths of the rows as used, untruncated
        card = with_tokens(
            card, scenario.full_lengths(train_rows + eval_rows), task.model.max_length, scenario.over_length
        )
    batching = scenario.prepare_training(model) if strategy.trains else {}
    params = count_parameters(model)
    rows, seq_len = (  # the largest batch training will build: the estimate at the shapes that will run
        scenario.largest_training_input(training.batch_size, cell.seed, training.epochs)
        if strategy.trains
        else (training.eval_batch_size, None)
    )
    preflight = _preflight(model, params, kind, task, rows, seq_len, cell.registered)
    if hasattr(model, "get_nb_trainable_parameters"):
        params["peft_reported_trainable"] = model.get_nb_trainable_parameters()[0]

    training_summary = None
    if strategy.trains:
        memory.breakdown = breakdown = MemoryBreakdown(model)
        watch = TrainingWatch(
            training,
            task.primary_metric,
            evaluate=lambda: _periodic_primary(scenario, model, task, device),
            step_seconds=lambda: sum(r.seconds for r in throughput.steps("train")),
        )
        hooks = TrainHooks(
            step_context=measured_step(throughput, breakdown),
            watch_optimizer=breakdown.watch,
            after_step=progress.after_step(watch.after_step),
        )
        resume = read_checkpoint(cell, cell_dir, data.record["train_sha256"]) if training.resume_from else None
        progress.phase("train", resume["total"] if resume else planned_steps(len(scenario.train_rows), training))
        with phase(trackers, "train"):
            training_summary = {
                **train(model, scenario, training, device, cell.seed, hooks, resume),
                **watch.summary(),
                **batching,
            }
        if (checkpoint := training_summary.pop("checkpoint")) is not None:
            write_checkpoint(cell_dir, {**checkpoint, "train_sha256": data.record["train_sha256"]})
        training_summary["resumed_from"] = training.resume_from
        peak = higher_peak(peak, device_peak(device, precision))  # a second reading, on a warm machine
        if breakdown.activation_shape is not None and len(breakdown.activation_shape) == 2:
            rows, seq_len = breakdown.activation_shape  # the formula at the shape whose activations were measured
            preflight["at_measured_shape"] = _preflight(model, params, kind, task, rows, seq_len, cell.registered)

    model.eval()
    progress.phase("eval", None)
    with phase(trackers, "eval"):
        evaluation = scenario.evaluate(
            model,
            training.eval_batch_size,
            device,
            progress.on_batch(lambda batch: throughput.step(batch.n_samples, batch.n_tokens, batch.slots)),
        )
    progress.close()
    metrics = _metrics(task, evaluation)
    if task.lm_eval is not None:
        from harness.metrics.lm_eval_bridge import evaluate_in_process

        with phase(trackers, "lm_eval"):
            metrics.update(evaluate_in_process(model, tokenizer, kind, task.lm_eval, task.path.parent))

    forgetting = None
    if task.forgetting is not None:  # the untuned `none` row gives the base loss on the same texts
        if not isinstance(scenario, TextToText):
            raise ValueError(f"{task.path}: forgetting is measured on generative scenarios only")
        texts = read_texts(task.forgetting, task.path.parent)
        with phase(trackers, "forgetting"):
            loss, tokens = scenario.general_text_loss(
                model, texts, task.forgetting.max_length, training.eval_batch_size, device
            )
        forgetting = {"general_text_loss": loss, "texts": len(texts), "tokens": tokens, "source": task.forgetting.text}
    item_values = per_item(task.primary_metric, evaluation.predictions, evaluation.references, evaluation.item_scores)
    items = _save_items(task, evaluation, eval_rows, cell_dir, item_values)
    learning = (  # did it learn? (harness.results.learning; load_results adds the untuned row's verdict)
        cell_learning(
            task.primary_metric,
            metrics[task.primary_metric],
            evaluation,
            training_summary,
            labels="labels" in scenario_class.provides,
            item_values=item_values,
        )
        if strategy.trains
        else None
    )
    weights = None
    if strategy.trains and training.save_weights:
        weights = _save_weights(model, cell_dir / "weights")
    result = {
        **cell_header(cell),
        "status": "ok",
        "error": None,
        "metrics": metrics,
        "primary_value": metrics[task.primary_metric],
        "reference": evaluation.reference_figures,
        "details": evaluation.details,  # e.g. examples, a confusion matrix
        "model_kind": kind,
        "params": params,
        "training": training_summary,
        "learning": learning,
        **{tracker.key: tracker.summary() for tracker in trackers},
        "weights": weights,
        "items": items,
        "forgetting": forgetting,
        "preflight": preflight,
        "efficiency": _efficiency(model, throughput, peak) if strategy.trains else None,
        "data": {**data.record, "card": card.record() if card is not None else None},
        "provenance": capture(device),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if training_summary and training.resume_from and not training_summary["steps_this_cell"]:
        result = with_training_measured_in(result, cell_dir.parent, training.resume_from)
    return result


CHECKPOINT = "resume.pt"


def checkpoint_path(run_cells: Path, cell_id: str) -> Path:
    """Where a cell stopped at training.stop_after_steps keeps what training.resume_from continues."""
    return run_cells / cell_id / CHECKPOINT


def write_checkpoint(cell_dir: Path, checkpoint: dict) -> None:
    """Written whole or not at all, so a killed cell never leaves half a checkpoint to resume from."""
    cell_dir.mkdir(parents=True, exist_ok=True)
    temporary = cell_dir / f".{CHECKPOINT}.tmp"
    torch.save(checkpoint, temporary)
    temporary.replace(cell_dir / CHECKPOINT)


def read_checkpoint(cell: CellSpec, cell_dir: Path, train_sha256: str) -> dict:
    """The checkpoint `training.resume_from` names, if it trained on this cell's rows (a one-line error
    naming the task file and key otherwise)."""
    source = cell.task.training.resume_from
    path = checkpoint_path(cell_dir.parent, str(source))
    where = f"{cell.task.path}: training.resume_from"
    if not path.is_file():
        raise ValueError(f"{where}: no checkpoint of cell {source} at {path} (it must have run with stop_after_steps)")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if checkpoint["train_sha256"] != train_sha256:
        theirs = checkpoint["train_sha256"]
        raise ValueError(f"{where}: cell {source} trained on other rows (digest {theirs}, here {train_sha256})")
    return checkpoint


def with_training_measured_in(result: dict, run_cells: Path, source: str) -> dict:
    """A cell that only evaluates a finished checkpoint ran no training step: its training figures (peak
    memory, training throughput, MFU, the pre-flight estimate) are those of the cell that trained it
    last, said so under `training_measured_in`; its own load and evaluation figures are kept."""
    from harness.results.io import cell_result_path, read_result

    trained = read_result(cell_result_path(run_cells.parent, source))
    own_memory, memory = result["memory"], dict(trained["memory"])
    memory["phases"] = {**memory.get("phases", {}), "eval": own_memory.get("phases", {}).get("eval")}
    memory["peak_bytes"] = max(memory.get("peak_bytes") or 0, own_memory.get("peak_bytes") or 0) or None
    throughput = {
        **result["throughput"],
        **{k: v for k, v in trained["throughput"].items() if k.startswith("train_")},
    }
    return {
        **result,
        "memory": memory,
        "throughput": throughput,
        "efficiency": trained.get("efficiency"),
        "preflight": trained.get("preflight"),
        "training_measured_in": source,
    }


def _efficiency(model, throughput: Throughput, peak: tuple[float | None, str] | None) -> dict:
    """Model FLOPs per training token and MFU against the device's peak (harness.measure.flops)."""
    steps = throughput.steps("train")
    samples = sum(r.samples for r in steps)
    seq_len = sum(r.real_slots for r in steps) / samples if samples else 0.0
    tokens = sum(r.tokens for r in steps)
    head = sum(r.tokens if r.head_positions is None else r.head_positions for r in steps)
    record = flops_per_token(model, seq_len, head / tokens if tokens else 1.0)
    tokens_per_s = throughput.trackers["train"].summary("train")["train_tokens_per_s"]
    peak_flops, source = peak or (None, "not measured")
    achieved = record["flops_per_token"] * tokens_per_s if tokens_per_s else None
    from harness.strategies.quantize import storage_kind

    quantised = any(storage_kind(p) in ("nf4", "int8") for p in model.parameters())
    return {
        **record,
        "train_flops_per_s": achieved,
        "peak_flops_per_s": peak_flops,
        "peak_source": source,
        "train_mfu_percent": 100 * achieved / peak_flops if achieved and peak_flops else None,
        "mfu_note": (
            "quantised base: its matmuls are counted as float ones and the de-quantising is not counted, "
            "so MFU is not comparable with a float base's; compare tokens/s"
            if quantised
            else None
        ),
    }


def _preflight(
    model,
    params: dict,
    kind: str,
    task,
    rows: int | None = None,
    seq_len: int | None = None,
    strategy: str = "full",
) -> dict:
    """The memory estimate with this model's actual parameter counts, made before training and kept next
    to what it predicts: at an input of `rows` x `seq_len` tokens (the largest training batch the
    scenario can make from its data), else at batch_size x max_length (the bound the validate-time guard
    uses)."""
    from harness.measure.preflight import model_estimate

    training = task.training
    rows = rows or (training.batch_size if params["trainable"] else training.eval_batch_size)
    seq_len = seq_len or task.model.max_length
    precision = resolved_precision(training.precision, pick_device())
    estimate = model_estimate(model, params, kind, training, rows, seq_len, precision, strategy)
    return {"input_shape": [rows, seq_len], **estimate.record()}


def _metrics(task, evaluation) -> dict[str, float]:
    """Every metric the task names: model metrics from the scenario, the rest from the predictions."""
    return {
        name: evaluation.scores[name]
        if name in evaluation.scores
        else compute(name, evaluation.predictions, evaluation.references)
        for name in task.metric.names
    }


def _save_items(task, evaluation, eval_rows: list[dict], cell_dir: Path, item_values: tuple) -> dict:
    """Each evaluation item's prediction, reference and primary-metric figure, for paired tests."""
    measure, values = item_values
    items = []
    for index, (row, prediction, reference) in enumerate(
        zip(eval_rows, evaluation.predictions, evaluation.references, strict=True)
    ):
        item = {"id": row.get("id", index), "prediction": prediction, "reference": reference}
        if measure:
            item[measure] = values[index]
        items.append(item)
    return write_items(cell_dir, items, measure, task.primary_metric, higher_is_better(task.primary_metric))


def _periodic_primary(scenario, model, task, device) -> float:
    """The primary metric now, for time-to-target; training resumes afterwards."""
    model.eval()
    try:
        evaluation = scenario.evaluate(
            model, task.training.eval_batch_size, device, lambda batch: ThroughputTracker().step(batch.n_samples)
        )
        return _metrics(task, evaluation)[task.primary_metric]
    finally:
        model.train()


def error_result(cell: CellSpec, exc: BaseException) -> dict:
    """A failed result for an exception raised inside the cell."""
    lines = traceback.format_exception(exc)
    tail = "".join(lines).splitlines()[-TRACEBACK_LINES:]
    out_of_memory = isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError))
    return failed_result(
        cell,
        "oom" if out_of_memory else "failed",
        type(exc).__name__,
        str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
        tail,
    )
