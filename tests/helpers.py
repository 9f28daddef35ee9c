"""Shared test helpers: the repository root, tiny models built locally from config (nothing is
downloaded), and task files that use them. Fixtures live in conftest.py."""

from __future__ import annotations

import contextlib
import json
import re
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


TINY = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64)


def strings_in(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)
    else:
        yield str(value)


def words(lower: bool) -> list[str]:
    words: set[str] = set()
    for path in (ROOT / "tasks" / "data").glob("*/*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            for text in strings_in(json.loads(line)):
                words.update(re.findall(r"\w+|[^\w\s]", text.lower() if lower else text))
    return sorted(words)


def word_vocab() -> dict[str, int]:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words(lower=True)]
    return {token: i for i, token in enumerate(tokens)}


CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def word_tokenizer():
    """A word-level tokenizer over the shipped data, with a chat template: enough for tiny LMs."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
    vocab = {token: i for i, token in enumerate(specials + words(lower=False))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    backend.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.add_tokens(specials[4:], special_tokens=True)  # role markers stay whole
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_model(kind: str):
    """A tiny classification model of one architecture family, random weights."""
    import torch
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        GPT2Config,
        GPT2ForSequenceClassification,
        LlamaConfig,
        LlamaForSequenceClassification,
        T5Config,
        T5ForSequenceClassification,
    )

    torch.manual_seed(0)
    if kind == "bert":
        return BertForSequenceClassification(BertConfig(vocab_size=100, num_labels=2, **TINY))
    if kind == "gpt2":
        return GPT2ForSequenceClassification(
            GPT2Config(vocab_size=100, n_embd=32, n_layer=4, n_head=2, n_positions=64, num_labels=2, pad_token_id=0)
        )
    if kind == "llama":
        return LlamaForSequenceClassification(
            LlamaConfig(vocab_size=100, num_key_value_heads=2, num_labels=2, pad_token_id=0, **TINY)
        )
    if kind == "t5":
        return T5ForSequenceClassification(
            T5Config(
                vocab_size=100,
                d_model=32,
                d_kv=16,
                d_ff=64,
                num_layers=2,
                num_decoder_layers=2,
                num_heads=2,
                num_labels=2,
                pad_token_id=0,
                decoder_start_token_id=0,
            )
        )
    raise ValueError(kind)


def save_tiny_llama(folder: Path, hidden: int = 32) -> Path:
    """A 2-block Llama-style causal LM (random weights, MLP twice as wide) with the word-level tokenizer
    and chat template, saved into `folder`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = word_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


HEADS = {"bert": ("classifier",), "gpt2": ("score",), "llama": ("score",), "t5": ("classification_head",)}


def write_task(
    folder: Path,
    name: str,
    model_dir: Path,
    body: str = "",
    data: str = "sentiment",
    fields: str = '{ text = "review", label = "sentiment" }',
) -> Path:
    """A task file using the tiny BERT and a slice of a shipped dataset."""
    path = folder / f"{name}.toml"
    path.write_text(
        textwrap.dedent(f"""\
        [task]
        name = "{name}"
        scenario = "classification"

        [model]
        source = "{model_dir}"
        max_length = 64

        [data]
        train = "{ROOT}/tasks/data/{data}/train.jsonl"
        eval = "{ROOT}/tasks/data/{data}/eval.jsonl"
        fields = {fields}
        max_train_samples = 64
        max_eval_samples = 48

        [metric]
        names = ["accuracy", "macro_f1"]

        [training]
        epochs = 1
        batch_size = 16
        learning_rate = 1e-3
        measure_warmup_steps = 1
        """)
        + textwrap.dedent(body),
        encoding="utf-8",
    )
    return path


TWO_RATES = "\n[search]\nlearning_rates = [1e-3, 3e-3]\n"  # a split task's own grid: half the default's rungs


def write_split_task(folder, model_dir, train_file, name="raced", strategies_body=""):
    """A split task (eval rows carved out of the one file, as `sentiment` is): 36 planned trial steps."""
    path = folder / f"{name}.toml"
    path.write_text(
        textwrap.dedent(f"""\
        [task]
        name = "{name}"
        scenario = "classification"

        [model]
        source = "{model_dir}"
        max_length = 48

        [data]
        train = "{train_file}"
        split = {{ eval = 40, seed = 0 }}
        fields = {{ text = "review", label = "sentiment" }}
        max_train_samples = 64

        [metric]
        names = ["accuracy", "macro_f1"]

        [training]
        epochs = 9
        batch_size = 16
        measure_warmup_steps = 1
        """)
        + strategies_body,
        encoding="utf-8",
    )
    return path


def write_reviews(folder: Path, rows: int = 120) -> Path:
    """The first `rows` rows of the shipped sentiment reviews, as a JSONL file in `folder`."""
    lines = (ROOT / "tasks/data/sentiment/train.jsonl").read_text().splitlines()[:rows]
    path = folder / "reviews.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def running_phase(run_dir: Path) -> str | None:
    """The phase (load, train, eval) a running cell of `run_dir` last reported in its progress file."""
    from harness.run.progress import read_progress

    states = [read_progress(d) for d in (run_dir / "cells").glob("*") if d.is_dir()]
    return next((state.get("phase") for state in states if state), None)


@contextlib.contextmanager
def registrations_undone(*modules: str):
    """Whatever plugins register inside the block (metrics, trackers, figures, tracking sinks) is gone
    afterwards, and `modules` are forgotten so that a later import registers afresh."""
    from harness.figures import FIGURES
    from harness.measure import TRACKERS
    from harness.metrics import METRICS
    from harness.track import SINKS

    registries = (METRICS, TRACKERS, FIGURES, SINKS)
    saved = [dict(registry._items) for registry in registries]
    try:
        yield
    finally:
        for registry, items in zip(registries, saved):
            registry._items.clear()
            registry._items.update(items)
        for module in modules:
            sys.modules.pop(module, None)
