"""Question answering: extractive (a span head on an encoder, SQuAD-style, with stride windows over
long contexts) or generative (the model writes the answer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from harness.scenarios.base import SCENARIOS, Batch, Evaluation, Scenario, new_head_modules
from harness.scenarios.prompting import template_problems, user_messages
from harness.scenarios.text_to_text import TextToText
from harness.schema import field

N_BEST = 20  # start and end candidates considered per window


@dataclass(frozen=True)
class QAOptions:
    style: Literal["extractive", "generative"] = field(
        "extractive", help="extractive: span head on an encoder; generative: a causal or seq2seq LM writes the answer"
    )
    doc_stride: int = field(64, min=1, help="extractive: tokens shared by consecutive windows of a long context")
    max_answer_tokens: int = field(30, min=1, help="extractive: longest span considered")
    template: str = field("{question}", help="generative: the user's message; {question}, {context} placeholders")
    instruction: str = field("", help="generative: text put before the question")
    system: str | None = field(None, help="generative: system message")
    chat_template: bool = field(True, help="generative: use the tokenizer's chat template when it has one")


@SCENARIOS.register("question_answering")
class QuestionAnswering(Scenario):
    """Registered entry: picks the extractive or generative implementation from [scenario] style."""

    name = "question_answering"
    fields = ("question", "context", "answers", "answer")
    provides = frozenset({"text", "spans", "model_loss"})  # the union of the two styles; see provided()
    kinds = ("encoder", "causal", "seq2seq")
    Options = QAOptions

    @classmethod
    def check_options(cls, options: QAOptions) -> list[tuple[str, str]]:
        return template_problems(options.template, ("question", "context"))

    @classmethod
    def required_fields(cls, options: QAOptions) -> tuple[str, ...]:
        return ("question", "context", "answers") if options.style == "extractive" else ("question", "answer")

    @classmethod
    def row_problems(cls, options: QAOptions, row: dict) -> list[tuple[str, str, str, str]]:
        answers, context = row.get("answers"), str(row.get("context", ""))
        if options.style != "extractive" or not isinstance(answers, dict):
            return []  # the scenario refuses answers not in SQuAD format itself
        absent = [str(a) for a in answers.get("text", ()) if str(a) not in context]
        if not absent:
            return []
        return [
            (
                "answers",
                "answer_not_in_context",
                f"answer {absent[0][:60]!r} is not in its context",
                "correct the answer or the context (an extractive model can only point at context text)",
            )
        ]

    @classmethod
    def provided(cls, options: QAOptions) -> frozenset[str]:
        return ExtractiveQA.provides if options.style == "extractive" else GenerativeQA.provides

    @classmethod
    def supported_kinds(cls, options: QAOptions) -> tuple[str, ...]:
        return ExtractiveQA.kinds if options.style == "extractive" else GenerativeQA.kinds

    @classmethod
    def create(cls, task, tokenizer, kind, train_rows, eval_rows) -> Scenario:
        implementation = ExtractiveQA if task.scenario.style == "extractive" else GenerativeQA
        return implementation(task, tokenizer, kind, train_rows, eval_rows)


class GenerativeQA(TextToText):
    name = "question_answering"

    def messages(self, row: dict) -> list[dict[str, str]]:
        return user_messages(self.options, {"question": row["question"], "context": row.get("context", "")})

    def target(self, row: dict) -> str | list[str]:
        answer = row["answer"]
        return [str(a) for a in answer] if isinstance(answer, (list, tuple)) else str(answer)


class ExtractiveQA(Scenario):
    name = "question_answering"
    provides = frozenset({"text", "spans"})  # answer spans from the context, as text
    kinds = ("encoder",)
    peft_task_type = "QUESTION_ANS"
    over_length = "split into overlapping windows"

    def __init__(self, task, tokenizer, kind, train_rows, eval_rows) -> None:
        super().__init__(task, tokenizer, kind, train_rows, eval_rows)
        for split, rows in (("train", train_rows), ("eval", eval_rows)):
            for number, row in enumerate(rows, start=1):
                answers = row["answers"]
                if not (
                    isinstance(answers, dict)
                    and len(answers.get("text", ())) > 0
                    and len(answers.get("answer_start", ())) > 0
                ):
                    raise ValueError(
                        f"{task.path}: {split} row {number}: field answers must be "
                        f'{{"text": [...], "answer_start": [...]}} (SQuAD format)'
                    )

    def load_model(self, source: str, **options):
        from transformers import AutoModelForQuestionAnswering

        from harness.models import load_options

        model, info = AutoModelForQuestionAnswering.from_pretrained(
            source, output_loading_info=True, **load_options(self.task.model), **options
        )
        return model, new_head_modules(info)

    def prepare_training(self, model) -> dict:
        return {"packed": False, "why_not_packed": "its span loss scores every position of a window, padding included"}

    def row_lengths(self, rows: list[dict]) -> list[int]:
        """Tokens of question and whole context: rows whose contexts overflow into several windows sort
        together."""
        encoded = self.tokenizer(
            [str(r["question"]) for r in rows], [str(r["context"]) for r in rows], verbose=False
        )  # not truncated, so not warned about lengths past the model's
        return [len(ids) for ids in encoded["input_ids"]]

    def _windows(self, rows: list[dict]):
        """Tokenised (question, context) windows; long contexts overflow into several windows."""
        return self.tokenizer(
            [str(r["question"]) for r in rows],
            [str(r["context"]) for r in rows],
            truncation="only_second",
            max_length=self.task.model.max_length,
            stride=self.options.doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=True,
            return_tensors="pt",
        )

    def training_batch(self, rows: list[dict]) -> Batch:
        encoded = self._windows(rows)
        starts, ends = [], []
        for w, row_index in enumerate(encoded["overflow_to_sample_mapping"].tolist()):
            answers = rows[row_index]["answers"]
            answer_start = int(answers["answer_start"][0])
            answer_end = answer_start + len(answers["text"][0])
            sequence = encoded.sequence_ids(w)
            offsets = encoded["offset_mapping"][w].tolist()
            context = [i for i, s in enumerate(sequence) if s == 1]
            start = end = 0  # the [CLS] position: "the answer is not in this window"
            if context and offsets[context[0]][0] <= answer_start and offsets[context[-1]][1] >= answer_end:
                start = next(i for i in context if offsets[i][1] > answer_start)
                end = next(i for i in reversed(context) if offsets[i][0] < answer_end)
            starts.append(start)
            ends.append(end)
        inputs = {k: encoded[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded}
        inputs.update(start_positions=torch.tensor(starts), end_positions=torch.tensor(ends))
        return Batch(inputs, len(rows), int(encoded["attention_mask"].sum()))  # samples are examples, not windows

    def _best_span(self, start_logits, end_logits, sequence, offsets) -> tuple[float, tuple[int, int] | None]:
        best: tuple[float, tuple[int, int] | None] = (float("-inf"), None)
        for s in torch.topk(start_logits, min(N_BEST, len(start_logits))).indices.tolist():
            for e in torch.topk(end_logits, min(N_BEST, len(end_logits))).indices.tolist():
                if sequence[s] != 1 or sequence[e] != 1 or e < s or e - s + 1 > self.options.max_answer_tokens:
                    continue
                score = float(start_logits[s] + end_logits[e])
                if score > best[0]:
                    best = (score, (offsets[s][0], offsets[e][1]))
        return best

    def evaluate(self, model, batch_size: int, device, on_batch) -> Evaluation:
        predictions: list[str] = [""] * len(self.eval_rows)
        for indices in self.eval_batches(batch_size):
            rows = [self.eval_rows[i] for i in indices]
            encoded = self._windows(rows)
            inputs = {k: encoded[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded}
            batch = Batch(inputs, len(rows), int(encoded["attention_mask"].sum()))
            with on_batch(batch), torch.no_grad():
                output = model(**batch.on(device))
            best: dict[int, tuple[float, tuple[int, int] | None]] = {}
            for w, row_index in enumerate(encoded["overflow_to_sample_mapping"].tolist()):
                candidate = self._best_span(
                    output.start_logits[w].cpu(),
                    output.end_logits[w].cpu(),
                    encoded.sequence_ids(w),
                    encoded["offset_mapping"][w].tolist(),
                )
                if candidate[0] > best.get(row_index, (float("-inf"), None))[0]:
                    best[row_index] = candidate
            for i, (index, row) in enumerate(zip(indices, rows)):
                span = best.get(i, (0.0, None))[1]
                predictions[index] = str(row["context"])[span[0] : span[1]] if span else ""
        references = [list(r["answers"]["text"]) for r in self.eval_rows]
        examples = [
            {"input": r["question"], "reference": ref[0], "prediction": p}
            for r, ref, p in list(zip(self.eval_rows, references, predictions))[: self.task.generation.keep_examples]
        ]
        return Evaluation(
            predictions,
            references,
            details={"examples": examples},
            trivial=("the empty answer", [""] * len(references)),
        )
