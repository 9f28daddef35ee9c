"""Tiny models built locally from config; nothing is downloaded."""
from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64)


def _vocab() -> dict[str, int]:
    words: set[str] = set()
    for path in (ROOT / "tasks" / "data").glob("*/*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            for value in json.loads(line).values():
                words.update(re.findall(r"\w+|[^\w\s]", str(value).lower()))
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words)]
    return {token: i for i, token in enumerate(tokens)}


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 4-block BERT with a word-level vocabulary of the shipped data, saved like a checkpoint."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = _vocab()
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), max_position_embeddings=128, **TINY)).save_pretrained(folder)
    BertTokenizerFast(vocab=vocab).save_pretrained(folder)
    return folder


def tiny_model(kind: str):
    """A tiny classification model of one architecture family, random weights."""
    import torch
    from transformers import (BertConfig, BertForSequenceClassification, GPT2Config, GPT2ForSequenceClassification,
                              LlamaConfig, LlamaForSequenceClassification, T5Config, T5ForSequenceClassification)

    torch.manual_seed(0)
    if kind == "bert":
        return BertForSequenceClassification(BertConfig(vocab_size=100, num_labels=2, **TINY))
    if kind == "gpt2":
        return GPT2ForSequenceClassification(GPT2Config(vocab_size=100, n_embd=32, n_layer=4, n_head=2,
                                                        n_positions=64, num_labels=2, pad_token_id=0))
    if kind == "llama":
        return LlamaForSequenceClassification(LlamaConfig(vocab_size=100, num_key_value_heads=2, num_labels=2,
                                                          pad_token_id=0, **TINY))
    if kind == "t5":
        return T5ForSequenceClassification(T5Config(vocab_size=100, d_model=32, d_kv=16, d_ff=64, num_layers=2,
                                                    num_decoder_layers=2, num_heads=2, num_labels=2,
                                                    pad_token_id=0, decoder_start_token_id=0))
    raise ValueError(kind)


HEADS = {"bert": ("classifier",), "gpt2": ("score",), "llama": ("score",), "t5": ("classification_head",)}


def write_task(folder: Path, name: str, model_dir: Path, body: str = "", data: str = "sentiment",
               fields: str = '{ text = "review", label = "sentiment" }') -> Path:
    """A task file using the tiny BERT and a slice of a shipped dataset."""
    path = folder / f"{name}.toml"
    path.write_text(textwrap.dedent(f"""\
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
        """) + textwrap.dedent(body), encoding="utf-8")
    return path
