"""Conditional generation shared by generation, dialogue, domain and generative QA.

A subclass says how a row becomes a conversation (`messages`) and what the
model should answer (`target`). Causal LMs train on prompt + target with the
loss on target tokens only; seq2seq models encode the prompt and decode the
target. Evaluation generates with the task's [generation] settings and, when
asked, computes perplexity of the reference targets.
"""

from __future__ import annotations

import abc
import inspect
import math
from collections import Counter

import torch

from harness.models import base_model, prepends_virtual_tokens
from harness.scenarios.base import Batch, Evaluation, Scenario
from harness.scenarios.packing import IGNORE, Packing, next_labels


class TextToText(Scenario):
    provides = frozenset({"text", "model_loss"})  # generated text; reference loss for perplexity
    kinds = ("causal", "seq2seq")
    head_on_targets = False  # set by prepare_training: a causal LM's head runs on the scored positions only

    @abc.abstractmethod
    def messages(self, row: dict) -> list[dict[str, str]]:
        """The conversation the model answers: [{"role": "system"|"user"|"assistant", "content": ...}]."""

    @abc.abstractmethod
    def target(self, row: dict) -> str | list[str]:
        """The reference answer (a list when several are acceptable; the first one is trained on)."""

    @property
    def peft_task_type(self) -> str:
        return "SEQ_2_SEQ_LM" if self.kind == "seq2seq" else "CAUSAL_LM"

    @property
    def uses_chat_template(self) -> bool:
        return (
            self.kind == "causal"
            and getattr(self.options, "chat_template", True)
            and bool(getattr(self.tokenizer, "chat_template", None))
        )

    def prompt(self, row: dict) -> str:
        messages = self.messages(row)
        if self.uses_chat_template:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if len(messages) == 1:
            return messages[0]["content"] + "\n"
        return "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages) + "Assistant: "

    def load_model(self, source: str, **extra):
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

        from harness.models import load_options

        loader = AutoModelForSeq2SeqLM if self.kind == "seq2seq" else AutoModelForCausalLM
        # output_loading_info=True makes it a (model, info) pair, which the stubs do not say
        options = {**load_options(self.task.model), **extra}
        model, _ = loader.from_pretrained(source, output_loading_info=True, **options)  # type: ignore[misc]
        if model.config.pad_token_id is None:
            model.config.pad_token_id = self.tokenizer.pad_token_id
        return model, ()  # language-model heads are pretrained: nothing fresh to train

    # ------------------------------------------------------------ batches

    def training_batch(self, rows: list[dict]) -> Batch:
        """Teacher-forced inputs with labels on the target tokens only, right-padded."""
        tok, limit = self.tokenizer, self.task.model.max_length
        targets = [self._first(self.target(r)) for r in rows]
        if self.kind == "seq2seq":
            inputs = tok(
                [self.prompt(r) for r in rows], truncation=True, max_length=limit, padding=True, return_tensors="pt"
            )
            labels = tok(text_target=targets, truncation=True, max_length=limit, padding=True, return_tensors="pt")[
                "input_ids"
            ]
            labels[labels == tok.pad_token_id] = IGNORE
            n_tokens = int(inputs["attention_mask"].sum()) + int((labels != IGNORE).sum())
            return Batch({**inputs, "labels": labels}, len(rows), n_tokens)
        sequences, label_rows = [], []
        for row, target in zip(rows, targets):
            prompt_ids = tok(self.prompt(row), add_special_tokens=not self.uses_chat_template)["input_ids"]
            target_ids = tok(target, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            target_ids = target_ids[: max(1, limit // 2)]
            prompt_ids = prompt_ids[-(limit - len(target_ids)) :]  # keep the end of a long prompt
            sequences.append(prompt_ids + target_ids)
            label_rows.append([IGNORE] * len(prompt_ids) + target_ids)
        width = max(map(len, sequences))
        pad = tok.pad_token_id
        input_ids = torch.tensor([s + [pad] * (width - len(s)) for s in sequences])
        attention = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences])
        labels = torch.tensor([ids + [IGNORE] * (width - len(ids)) for ids in label_rows])
        scored = int((labels[:, 1:] != IGNORE).sum()) if self.head_on_targets else None
        inputs = {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
        return Batch(inputs, len(rows), int(attention.sum()), head_positions=scored)

    def full_lengths(self, rows: list[dict]) -> list[int]:
        """Prompt and target tokens (with the end-of-text token) as a training row would take them uncut."""
        tok = self.tokenizer
        add_special = not self.uses_chat_template or self.kind == "seq2seq"
        prompts = tok([self.prompt(r) for r in rows], add_special_tokens=add_special, verbose=False)["input_ids"]
        targets = tok([self._first(self.target(r)) for r in rows], add_special_tokens=False, verbose=False)
        if self.kind == "seq2seq":  # the prompt and the target are cut apart, each at max_length
            return [max(len(p), len(t) + 1) for p, t in zip(prompts, targets["input_ids"])]
        return [len(p) + len(t) + 1 for p, t in zip(prompts, targets["input_ids"])]

    @staticmethod
    def _first(target: str | list[str]) -> str:
        return target[0] if isinstance(target, list) else str(target)

    # ------------------------------------------------------------ training

    def prepare_training(self, model) -> dict:
        """A causal LM's head on the target positions only, where the model allows it; packed training
        batches ([training] packing) where the model allows them."""
        if self.kind != "causal":
            return super().prepare_training(model)
        self.head_on_targets = _selects_positions(model)
        if not self.task.training.packing:
            why_not = "[training] packing = false"
        elif not self.head_on_targets:
            why_not = "the head cannot run on chosen positions"
        else:
            self.packing, why_not = Packing.for_causal_lm(model)
        return {
            "lm_head_on": "target positions" if self.head_on_targets else "every position",
            "packed": self.packing is not None,
            **({"why_not_packed": why_not} if why_not else {}),
        }

    def training_loss(self, model, inputs: dict):
        """Mean negative log-likelihood of the target tokens, as the model's own loss computes it; a causal
        LM's head runs on the positions that predict a target token only (see `scored_logits`)."""
        if self.kind != "causal":
            return super().training_loss(model, inputs)
        logits, targets, _ = self.scored_logits(model, inputs)
        return torch.nn.functional.cross_entropy(logits, targets)

    def scored_logits(self, model, inputs: dict):
        """For a causal LM and inputs with labels (or, packed, next_labels): the logits (n x vocab, float) at
        the n positions whose next token is scored (label not IGNORE), those tokens (n), and each one's
        row (n).

        The language-model head (49,152 x 576 on SmolLM2-135M, a fifth of its weights) and the loss over
        the vocabulary then run on the target tokens only, not on every prompt position; what is computed
        for the scored positions does not change. Where the model's forward cannot select positions
        (`logits_to_keep`), or a prompt-learning method prepends virtual tokens, the positions are taken
        from the whole output instead."""
        following = inputs.pop("next_labels") if "next_labels" in inputs else next_labels(inputs.pop("labels"))
        scored = following != IGNORE
        if _selects_positions(model):
            logits = model(**inputs, logits_to_keep=scored).logits
        else:  # prompt-learning methods prepend virtual tokens: the inputs' positions are the last ones
            logits = model(**inputs).logits[:, -following.size(1) :][scored]
        return logits.float(), following[scored], scored.nonzero()[:, 0]

    # ------------------------------------------------------------ evaluation

    def perplexity(self, model, batch_size: int, device) -> tuple[float, list[float]]:
        """exp(mean negative log-likelihood per reference target token), teacher-forced; and each item's
        own mean negative log-likelihood per target token (for paired tests)."""
        total_nll, total_tokens, item_nll = 0.0, 0, [0.0] * len(self.eval_rows)
        with torch.no_grad():
            for indices in self.eval_batches(batch_size):
                batch = self.training_batch([self.eval_rows[i] for i in indices])
                inputs = batch.on(device)
                if self.kind == "causal":
                    logits, targets, rows = self.scored_logits(model, inputs)
                    nll = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
                    row_nll = torch.zeros(len(indices), device=nll.device).index_add_(0, rows, nll)
                    row_tokens = torch.bincount(rows, minlength=len(indices))
                else:
                    labels = inputs["labels"]
                    logits = model(**inputs).logits.float()
                    nll = torch.nn.functional.cross_entropy(
                        logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=IGNORE, reduction="none"
                    ).view(labels.shape)
                    row_nll, row_tokens = nll.sum(dim=1), (labels != IGNORE).sum(dim=1)
                total_nll += float(row_nll.sum())
                total_tokens += int(row_tokens.sum())
                for i, nll_per_token in zip(indices, (row_nll / row_tokens.clamp(min=1)).tolist()):
                    item_nll[i] = nll_per_token
        mean_nll = total_nll / total_tokens
        return (math.exp(mean_nll) if mean_nll < 700 else math.inf), item_nll  # exp overflows past ~709

    def general_text_loss(self, model, texts: list[str], max_length: int, batch_size: int, device) -> tuple[float, int]:
        """Mean negative log-likelihood per token (nats) of plain `texts` (for forgetting), and the tokens scored."""
        if self.kind != "causal":
            raise ValueError("forgetting is measured on causal language models only")
        total_nll, total_tokens = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                encoded = self.tokenizer(
                    texts[start : start + batch_size],
                    truncation=True,
                    max_length=max_length,
                    padding=True,
                    return_tensors="pt",
                ).to(device)
                logits = model(**encoded).logits.float()[:, -encoded["input_ids"].size(1) :]  # past virtual tokens
                labels = encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, IGNORE)
                nll = torch.nn.functional.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.size(-1)),
                    labels[:, 1:].reshape(-1),
                    ignore_index=IGNORE,
                    reduction="sum",
                )
                total_nll += float(nll)
                total_tokens += int((labels[:, 1:] != IGNORE).sum())
        if total_tokens == 0:
            raise ValueError("forgetting: the general texts gave no tokens to score")
        return total_nll / total_tokens, total_tokens

    def _cut(self, text: str) -> str:
        for stop in self.task.generation.stop:
            if stop and stop in text:
                text = text[: text.index(stop)]
        return text.strip()

    def _generated_length(self, ids: list[int]) -> int:
        """Tokens the model produced for one row: up to and including its end token; later ones are padding."""
        ends = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        start = 1 if self.kind == "seq2seq" else 0  # seq2seq output starts with the decoder start token
        for i, token in enumerate(ids[start:], start=1):
            if token in ends:
                return i
        return len(ids) - start

    def generate(self, model, batch_size: int, device, on_batch) -> list[str]:
        """Greedy or sampled continuations of every evaluation prompt."""
        spec, tok = self.task.generation, self.tokenizer
        settings = {
            "max_new_tokens": spec.max_new_tokens,
            "do_sample": spec.do_sample,
            "pad_token_id": tok.pad_token_id,
            "eos_token_id": tok.eos_token_id,
        }
        if spec.do_sample:
            settings.update(temperature=spec.temperature, top_p=spec.top_p)
        tok.padding_side = tok.truncation_side = "left"  # generation continues from the prompt's end
        encoding = {
            "truncation": True,
            "max_length": self.task.model.max_length,
            "add_special_tokens": self.kind == "seq2seq" or not self.uses_chat_template,
        }
        prompts = [self.prompt(r) for r in self.eval_rows]
        outputs: list[str] = [""] * len(prompts)
        try:
            # length-sorted batches: a batch's prompts need little left-padding
            lengths = [len(ids) for ids in tok(prompts, **encoding)["input_ids"]]
            for indices in self.eval_batches(batch_size, lengths):
                encoded = tok([prompts[i] for i in indices], return_tensors="pt", padding=True, **encoding)
                batch = Batch(dict(encoded), len(indices), 0)
                with on_batch(batch) as record, torch.no_grad():
                    generated = model.generate(**batch.on(device), **settings)
                    new = generated if self.kind == "seq2seq" else generated[:, encoded["input_ids"].shape[1] :]
                    new = new.cpu()
                    record.tokens = sum(self._generated_length(row) for row in new.tolist())
                for i, text in zip(indices, tok.batch_decode(new, skip_special_tokens=True)):
                    outputs[i] = self._cut(text)
        finally:
            tok.padding_side = tok.truncation_side = "right"
        return outputs

    def evaluate(self, model, batch_size: int, device, on_batch) -> Evaluation:
        predictions = self.generate(model, batch_size, device, on_batch)
        references = [self.target(r) for r in self.eval_rows]
        scores, item_scores = {}, {}
        if "perplexity" in self.task.metric.names:
            scores["perplexity"], item_scores["perplexity"] = self.perplexity(model, batch_size, device)
        examples = [
            {"input": self.messages(r)[-1]["content"], "reference": self._first(ref), "prediction": pred}
            for r, ref, pred in list(zip(self.eval_rows, references, predictions))[: self.task.generation.keep_examples]
        ]
        return Evaluation(
            predictions,
            references,
            scores=scores,
            item_scores=item_scores,
            details={"examples": examples},
            trivial=self.constant_answer(len(references)),
        )

    def constant_answer(self, n: int) -> tuple[str, list[str]] | None:
        """The trivial reference: the commonest training answer for every prompt, where some answer repeats
        (a condition, a label). Where none does (titles, summaries), there is no commonest answer: the first
        row's would be an arbitrary pick whose score depends on the row order (abstract2title: ROUGE-L 0.191
        on one split, 0.263 on another), so the untuned model is the only reference."""
        (constant, count), *_ = Counter(self._first(self.target(r)) for r in self.train_rows).most_common(1)
        if count < 2:
            return None
        return f"the commonest training answer for every prompt ({constant[:40]!r}, {count} rows)", [constant] * n


def _selects_positions(model) -> bool:
    """Whether `model` computes logits at chosen positions only (transformers' `logits_to_keep`), over its
    inputs' positions (no prompt-learning virtual tokens in front)."""
    if prepends_virtual_tokens(model):
        return False
    return "logits_to_keep" in inspect.signature(base_model(model).forward).parameters
