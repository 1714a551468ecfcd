"""Atomic file and directory writes: nothing half-written survives a failure.

Every artifact is written to a temporary sibling path and renamed into place only once complete,
so an interrupted rule leaves either the old artifact or none, never a truncated one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` if the block succeeds.

    With ``is_dir`` the yielded directory already exists, empty, ready to be filled.

    The temporary path lives in the same directory so the rename is atomic on POSIX file systems.
    On any exception the temporary path is removed and ``final`` is left untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    # A job killed outright (SIGKILL, node loss) leaves its temporary sibling behind; Snakemake never runs two
    # jobs for the same output at once, so any such leftover is stale and the restart begins clean.
    for stale in final.parent.glob(f".{final.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    if (
        is_dir
    ):  # mkdtemp makes it private (0700); the directory it becomes follows the umask, as mkdir's would
        tmp.chmod(0o777 & ~current_umask())
    target = tmp if is_dir else tmp / final.name
    try:
        yield target
        if is_dir:
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        else:
            os.replace(target, final)
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def current_umask() -> int:
    """The process's file mode creation mask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def load_array(path: str | os.PathLike) -> np.ndarray:
    """A ``.npy`` array, refusing pickled objects (a file received may run code when unpickled); errors name the
    file."""
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as err:
        raise ValueError(
            f"{path} cannot be read as a plain .npy array ({err}); it holds pickled objects or is damaged: "
            "remake it with the rule that writes it"
        ) from None


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays appear in metadata.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
