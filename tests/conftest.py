"""Fixtures: an isolated cache, and tiny models built locally from config (nothing is downloaded)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.helpers import TINY, save_tiny_llama, word_tokenizer, word_vocab

_TEMP_ROOT = pytest.StashKey[tuple]()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Everything the suite writes to a temporary folder goes under one folder of its own, removed when the
    suite ends, so that /tmp holds nothing new afterwards: pytest's tmp_path folders (unless --basetemp
    is given), TMPDIR of every process the suite starts (runners, cell servers, the temp folders a
    SIGKILLed runner cannot remove), Ray's session folders (RAY_TMPDIR; kept short, since Ray's socket
    paths must stay under 107 bytes) and torch's compile cache (TORCHINDUCTOR_CACHE_DIR, which torch
    would otherwise make in this process's temporary folder). This process keeps the system's temporary
    folder: there multiprocessing removes its own folder at exit, after this hook."""
    tempfile.gettempdir()  # read (and kept) before TMPDIR changes below
    root = Path(tempfile.mkdtemp(prefix="tb-"))
    folders = {"TMPDIR": root / "t", "RAY_TMPDIR": root / "r", "TORCHINDUCTOR_CACHE_DIR": root / "i"}
    config.stash[_TEMP_ROOT] = (root, {name: os.environ.get(name) for name in folders})
    if config.option.basetemp is None:
        config.option.basetemp = str(root / "pytest")
    for name, folder in folders.items():
        folder.mkdir()
        os.environ[name] = str(folder)


def pytest_unconfigure(config):
    if _TEMP_ROOT not in config.stash:
        return
    root, before = config.stash[_TEMP_ROOT]
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def isolated_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tunebench-cache")


@pytest.fixture(autouse=True)
def _isolated_cache(request, isolated_cache, monkeypatch):
    """Tests write prepared data (and any model cache) to a temporary folder, never to ~/.cache;
    slow real-model tests keep the user's cache, where the converted SmolLM2 weights live."""
    if request.node.get_closest_marker("slow") is None:
        monkeypatch.setenv("TUNEBENCH_CACHE", str(isolated_cache))


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A 2-block Llama-style causal LM with a word-level tokenizer and chat template."""
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory) -> Path:
    """A 1+1-block T5-style encoder-decoder with the word-level tokenizer."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    folder = tmp_path_factory.mktemp("tiny-t5")
    tokenizer = word_tokenizer()
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
    vocab = word_vocab()
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), max_position_embeddings=128, **TINY)).save_pretrained(folder)
    BertTokenizerFast(vocab=vocab).save_pretrained(folder)
    return folder
