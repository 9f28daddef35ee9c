"""Provenance: versions, device, commit."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "transformers", "peft", "datasets", "evaluate", "lm_eval", "pandas", "numpy", "tunebench")


def _git(*args: str, cwd: Path) -> str | None:
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def capture(device, cwd: Path | None = None) -> dict:
    """Where and with what a result was produced."""
    import torch

    cwd = cwd or Path(__file__).resolve().parents[2]
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=cwd)
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "git_commit": _git("rev-parse", "HEAD", cwd=cwd),
        "git_branch": git_branch(cwd),
        "git_dirty": bool(status) if status is not None else None,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }


def git_branch(cwd=None) -> str | None:
    """The branch being run: CI's (GitHub Actions' head or ref name) where set, else the checkout's."""
    named = os.environ.get("GITHUB_HEAD_REF") or os.environ.get("GITHUB_REF_NAME")
    if named:
        return named
    branch = _git("rev-parse", "--abbrev-ref", "HEAD", cwd=cwd)
    return None if branch in (None, "HEAD") else branch
