"""Sequence classification: text -> one label; accuracy and macro-F1."""

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


@SCENARIOS.register("classification")
class Classification(Scenario):
    name = "classification"
    fields = ("text", "label")
    provides = frozenset({"labels"})
    kinds = ("encoder", "causal")
    peft_task_type = "SEQ_CLS"

    @dataclass(frozen=True)
    class Options:
        class_weights: Literal["none", "balanced"] = field(
            "none",
            help="balanced: weight each class's training loss by rows / (classes x its rows), so a rare class "
            "counts as much as a common one (every strategy alike); none: plain cross-entropy",
        )

    def __init__(self, task, tokenizer, kind, train_rows, eval_rows) -> None:
        super().__init__(task, tokenizer, kind, train_rows, eval_rows)
        self.labels = sorted({str(row["label"]) for row in train_rows})
        unseen = sorted({str(row["label"]) for row in eval_rows} - set(self.labels))
        if unseen:
            raise ValueError(f"{task.path}: evaluation labels never seen in training: {', '.join(unseen)}")
        self.label_ids = {label: i for i, label in enumerate(self.labels)}
        self.class_weights = None
        if self.options.class_weights == "balanced":
            counts = Counter(str(row["label"]) for row in train_rows)
            self.class_weights = torch.tensor(
                [len(train_rows) / (len(self.labels) * counts[label]) for label in self.labels]
            )

    def prepare_training(self, model) -> dict:
        """Packed training batches ([training] packing) where the model allows them."""
        if not self.task.training.packing:
            return {"packed": False, "why_not_packed": "[training] packing = false"}
        if self.kind != "encoder":
            return {"packed": False, "why_not_packed": f"{self.kind} models classify from their last token"}
        self.packing, why_not = Packing.for_encoder(model)
        return {"packed": self.packing is not None, **({"why_not_packed": why_not} if why_not else {})}

    def training_loss(self, model, inputs: dict):
        layout = inputs.pop("layout", None)
        with self.packing.unpacked(layout) if layout is not None else contextlib.nullcontext():
            if self.class_weights is None:
                return super().training_loss(model, inputs)
            labels = inputs["labels"]
            logits = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits
            weights = self.class_weights.to(device=logits.device, dtype=torch.float32)
            return torch.nn.functional.cross_entropy(logits.float(), labels, weight=weights)

    def load_model(self, source: str):
        from transformers import AutoModelForSequenceClassification

        from harness.models import load_options

        model, info = AutoModelForSequenceClassification.from_pretrained(
            source,
            num_labels=len(self.labels),
            id2label=dict(enumerate(self.labels)),
            label2id=self.label_ids,
            output_loading_info=True,
            **load_options(self.task.model),
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
        )
