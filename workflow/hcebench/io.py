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
    # A job killed outright (SIGKILL, node loss) leaves its temporary sibling behind, named with its process id; the
    # restart removes it and begins clean. A sibling whose writer still runs is left alone: two runs of the same
    # output at once (`snakemake --nolock`, a second run in the same directory) must not delete each other's work.
    prefix = f".{final.name}."
    for stale in final.parent.glob(f"{prefix}*.tmp"):
        if not writer_alive(stale.name[len(prefix) :].split(".", 1)[0]):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}.", suffix=".tmp", dir=final.parent))
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


def writer_alive(tag: str) -> bool:
    """Whether the process a temporary sibling's name tags (its process id) still runs; an untagged or malformed
    name, or this process's own id (a leftover of this process), is not a live writer."""
    if not tag.isdigit() or int(tag) == os.getpid():
        return False
    try:
        os.kill(int(tag), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


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
