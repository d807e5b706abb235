"""The manifest on disk: load and validate, dump, atomic write, and the locked
read-modify-write of one event (:func:`record_event`). The only I/O of the package."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from turnout.errors import InputError, TurnoutError
from turnout.manifest.events import apply_event
from turnout.manifest.schema import FILE_MODE, ManifestCorrupt, empty, validate


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a manifest; a missing file is an empty manifest for its env.

    The env of a missing manifest is the name of the directory it would live in.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return empty(path.resolve().parent.name)
    except (OSError, UnicodeDecodeError) as error:
        raise ManifestCorrupt(
            f"manifest {path}: cannot be read ({error}); check its permissions or restore it "
            "from version control"
        ) from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        detail = " ".join(str(error).split())
        raise ManifestCorrupt(
            f"manifest {path}: is not valid YAML ({detail}); restore it from version control or "
            f"rebuild it with 'invoke reconcile --env {path.resolve().parent.name}'"
        ) from error
    if data is None:
        raise ManifestCorrupt(
            f"manifest {path}: is empty; restore it from version control or rebuild it with "
            f"'invoke reconcile --env {path.resolve().parent.name}'"
        )
    return validate(data, path)


_HEADER = (
    "# turnout manifest: written by turnout at the end of every deploy; see docs/manifest.md.\n"
    "# Edit by hand only to repair it; 'invoke reconcile' rebuilds it from the fleet.\n"
)


def dump(data: Mapping[str, Any]) -> str:
    """The YAML text of a validated manifest (stable: the same data gives the same bytes)."""
    body = yaml.safe_dump(
        dict(data), sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000
    )
    return _HEADER + body


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: Mapping[str, Any]) -> None:
    """Validate and write the manifest so readers see the old file or the new one, never a part.

    Temp file in the same directory, fsync, os.replace, fsync of the directory; mode 0644.
    """
    path = Path(path)
    text = dump(validate(data, path))
    directory = path.parent
    tmp_name: str | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), FILE_MODE)
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
        _fsync_dir(directory)
    except OSError as error:
        raise TurnoutError(
            f"manifest {path}: cannot be written ({error}); it was left as it was"
        ) from error
    finally:
        if tmp_name is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)


@contextlib.contextmanager
def _dir_lock(directory: Path) -> Iterator[None]:
    """An exclusive advisory lock on the manifest's directory for one read-modify-write."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as error:
        raise InputError(
            f"manifest directory {directory}: cannot be opened ({error}); check the --env and "
            "that inventories/<env>/ exists"
        ) from error
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def record_event(path: str | os.PathLike[str], event: Mapping[str, Any]) -> dict[str, Any]:
    """Load the manifest at ``path``, apply ``event`` and write it atomically; return it."""
    path = Path(path)
    with _dir_lock(path.parent):
        current = load(path)
        manifest = apply_event(current, event)
        if manifest != current or not path.exists():
            write_atomic(path, manifest)
    return manifest
