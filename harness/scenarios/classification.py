"""Sequence classification: text -> one label; accuracy and macro-F1.

Imbalanced classes are weighed by default: with `class_weights = "auto"` (the default), training labels
whose majority class holds more than IMBALANCED_SHARE of the rows get balanced class weights, so no
strategy's score hangs on whether a short run escapes predicting the majority class; every strategy of
the task is weighed alike.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass
from typing import Literal

import torch

from harness.metrics import macro_f1
from harness.scenarios.base import SCENARIOS, Batch, Evaluation, Scenario, new_head_modules
from harness.scenarios.packing import Packing
from harness.schema import field

IMBALANCED_SHARE = 0.6  # majority share of the training labels above which "auto" weighs the classes


def class_weighting(option: str, labels: list[str]) -> tuple[str, str]:
    """The weighting that applies ("balanced" or "none") for a class_weights option and the training
    labels, and why, in words."""
    if not labels:
        return "none", "no training labels"
    label, count = Counter(labels).most_common(1)[0]
    share = f"the majority class {label!r} holds {count / len(labels):.0%} of the {len(labels)} training rows"
    if option != "auto":
        return option, f'class_weights = "{option}" set by the task ({share})'
    if count / len(labels) > IMBALANCED_SHARE:
        return "balanced", f"auto: {share}, above {IMBALANCED_SHARE:.0%}"
    return "none", f"auto: {share}, at most {IMBALANCED_SHARE:.0%}"


@SCENARIOS.register("classification")
class Classification(Scenario):
    name = "classification"
    fields = ("text", "label")
    provides = frozenset({"labels"})
    kinds = ("encoder", "causal")
    peft_task_type = "SEQ_CLS"

    @dataclass(frozen=True)
    class Options:
        class_weights: Literal["auto", "none", "balanced"] = field(
            "auto",
            help="balanced: weight each class's training loss by rows / (classes x its rows), so a rare class "
            "counts as much as a common one (every strategy alike); none: plain cross-entropy; auto: balanced "
            f"when the majority class holds more than {IMBALANCED_SHARE:.0%} of the training rows, else none",
        )

    def __init__(self, task, tokenizer, kind, train_rows, eval_rows) -> None:
        super().__init__(task, tokenizer, kind, train_rows, eval_rows)
        self.labels = sorted({str(row["label"]) for row in train_rows})
        unseen = sorted({str(row["label"]) for row in eval_rows} - set(self.labels))
        if unseen:
            raise ValueError(f"{task.path}: evaluation labels never seen in training: {', '.join(unseen)}")
        self.label_ids = {label: i for i, label in enumerate(self.labels)}
        self.class_weights = None
        self.weighting = class_weighting(self.options.class_weights, [str(row["label"]) for row in train_rows])
        if self.weighting[0] == "balanced":
            counts = Counter(str(row["label"]) for row in train_rows)
            self.class_weights = torch.tensor(
                [len(train_rows) / (len(self.labels) * counts[label]) for label in self.labels]
            )

    @classmethod
    def data_notes(cls, options, train_rows: list[dict]) -> list[str]:
        weighting, why = class_weighting(options.class_weights, [str(row["label"]) for row in train_rows])
        return [f"class weights {weighting} ({why})"]

    def prepare_training(self, model) -> dict:
        """Packed training batches ([training] packing) where the model allows them; the class weighting."""
        weighting = {"class_weights": self.weighting[0], "class_weights_why": self.weighting[1]}
        if not self.task.training.packing:
            return {"packed": False, "why_not_packed": "[training] packing = false", **weighting}
        if self.kind != "encoder":
            return {
                "packed": False,
                "why_not_packed": f"{self.kind} models classify from their last token",
                **weighting,
            }
        self.packing, why_not = Packing.for_encoder(model)
        return {"packed": self.packing is not None, **({"why_not_packed": why_not} if why_not else {}), **weighting}

    def training_loss(self, model, inputs: dict):
        layout = inputs.pop("layout", None)
        with self.packing.unpacked(layout) if layout is not None else contextlib.nullcontext():
            if self.class_weights is None:
                return super().training_loss(model, inputs)
            labels = inputs["labels"]
            logits = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits
            weights = self.class_weights.to(device=logits.device, dtype=torch.float32)
            return torch.nn.functional.cross_entropy(logits.float(), labels, weight=weights)

    def load_model(self, source: str, **options):
        from transformers import AutoModelForSequenceClassification

        from harness.models import load_options

        model, info = AutoModelForSequenceClassification.from_pretrained(
            source,
            num_labels=len(self.labels),
            id2label=dict(enumerate(self.labels)),
            label2id=self.label_ids,
            output_loading_info=True,
            **load_options(self.task.model),
            **options,
        )
        if model.config.pad_token_id is None:  # decoder models classify from the last non-pad token
            model.config.pad_token_id = self.tokenizer.pad_token_id
        return model, new_head_modules(info)

    def _encode(self, rows: list[dict], **padding):
        return self.tokenizer(
            [str(r["text"]) for r in rows], truncation=True, max_length=self.task.model.max_length, **padding
        )

    def row_lengths(self, rows: list[dict]) -> list[int]:
        return [len(ids) for ids in self._encode(rows)["input_ids"]]

    def full_lengths(self, rows: list[dict]) -> list[int]:
        return [len(ids) for ids in self.tokenizer([str(r["text"]) for r in rows], verbose=False)["input_ids"]]

    def training_batch(self, rows: list[dict]) -> Batch:
        encoded = self._encode(rows, padding=True, return_tensors="pt")
        encoded["labels"] = torch.tensor([self.label_ids[str(r["label"])] for r in rows])
        n_tokens = int(encoded["attention_mask"].sum())
        return Batch(dict(encoded), len(rows), n_tokens, head_positions=len(rows))  # the head reads [CLS]

    def evaluate(self, model, batch_size: int, device, on_batch) -> Evaluation:
        predictions: list[str] = [""] * len(self.eval_rows)
        for indices in self.eval_batches(batch_size):
            batch = self.training_batch([self.eval_rows[i] for i in indices])
            with on_batch(batch), torch.no_grad():
                inputs = batch.on(device)
                inputs.pop("labels")
                logits = model(**inputs).logits
            for i, label in zip(indices, logits.argmax(dim=-1).tolist()):
                predictions[i] = self.labels[label]
        references = [str(r["label"]) for r in self.eval_rows]
        majority = Counter(str(r["label"]) for r in self.train_rows).most_common(1)[0][0]
        rate = sum(ref == majority for ref in references) / len(references)
        majority_f1 = macro_f1([majority] * len(references), references)  # the bar on imbalanced classes
        counts = [[0] * len(self.labels) for _ in self.labels]  # rows: reference, columns: prediction
        for reference, prediction in zip(references, predictions):
            counts[self.label_ids[reference]][self.label_ids[prediction]] += 1
        return Evaluation(
            predictions,
            references,
            {"majority_class_accuracy": rate, "majority_class_macro_f1": majority_f1},
            details={"confusion_matrix": {"labels": self.labels, "counts": counts}},
            trivial=(f"the majority class ({majority!r} for every row)", [majority] * len(references)),
        )
