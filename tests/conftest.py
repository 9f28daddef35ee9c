"""Tiny models built locally from config; nothing is downloaded."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def isolated_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tunebench-cache")


@pytest.fixture(autouse=True)
def _isolated_cache(request, isolated_cache, monkeypatch):
    """Tests write prepared data (and any model cache) to a temporary folder, never to ~/.cache;
    slow real-model tests keep the user's cache, where the converted SmolLM2 weights live."""
    if request.node.get_closest_marker("slow") is None:
        monkeypatch.setenv("TUNEBENCH_CACHE", str(isolated_cache))


TINY = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64)


def _strings(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    else:
        yield str(value)


def _words(lower: bool) -> list[str]:
    words: set[str] = set()
    for path in (ROOT / "tasks" / "data").glob("*/*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            for text in _strings(json.loads(line)):
                words.update(re.findall(r"\w+|[^\w\s]", text.lower() if lower else text))
    return sorted(words)


def _vocab() -> dict[str, int]:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_words(lower=True)]
    return {token: i for i, token in enumerate(tokens)}


CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def _word_tokenizer():
    """A word-level tokenizer over the shipped data, with a chat template: enough for tiny LMs."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
    vocab = {token: i for i, token in enumerate(specials + _words(lower=False))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    backend.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.add_tokens(specials[4:], special_tokens=True)  # role markers stay whole
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A 2-block Llama-style causal LM with a word-level tokenizer and chat template."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = _word_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
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


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory) -> Path:
    """A 1+1-block T5-style encoder-decoder with the word-level tokenizer."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    folder = tmp_path_factory.mktemp("tiny-t5")
    tokenizer = _word_tokenizer()
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=16,
        d_ff=64,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=2,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    T5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


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
