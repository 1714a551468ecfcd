"""Reading and writing the suite's torch files (``model.pt``, ``checkpoint.pt``) without ever running their code.

Users exchange trained models (the paper's are published), so a file received from someone else is data, never
code: ``load_torch_file`` reads with ``torch.load(weights_only=True)``, which rebuilds tensors and plain containers
only and refuses anything a pickle would have to execute. ``plain`` turns what the suite saves into such
containers first (numpy scalars and arrays become Python numbers and lists). A refused or damaged file is a
``CheckpointError`` naming the file and what to do.
"""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hcebench.errors import CheckpointError
from hcebench.io import atomic_path

#: What a ``model.pt`` holds besides ``best_epoch``: the weights and what rebuilding and checking the model needs.
MODEL_FIELDS = ("state_dict", "architecture", "entry", "labels", "reachability_hash", "genes", "settings")


def plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays, tuples and dataclass-free containers made plain (loadable safely)."""
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def write_torch_file(content: dict, path: str | os.PathLike, what: str) -> None:
    """Write ``content`` to ``path`` with ``torch.save``, atomically (a failed write keeps the old file). torch
    reports a refused write (a full disk, a file-size limit) as an error of its zip container that names neither
    the file nor the cause; it is raised as the ``OSError`` it is, naming both."""
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            torch.save(content, tmp)
        except RuntimeError as err:
            if "inline_container" not in str(err) and "write" not in str(err).lower():
                raise
            free = shutil.disk_usage(tmp.parent).free
            raise OSError(
                errno.ENOSPC,
                f"No space left on device or a file-size limit reached: writing the {what} {path} failed with "
                f"{free:,} bytes free on its disk (torch: {str(err).strip().splitlines()[0]}); free space and "
                "rerun the job",
            ) from None


def load_torch_file(path: str | os.PathLike, what: str) -> dict:
    """Read a torch file written by hcebench, safely: tensors and plain containers only.

    ``what`` names the file's role in messages ("model", "training checkpoint"). Raises ``CheckpointError`` for a
    file that holds code-bearing objects (refused, never executed), a truncated or corrupt file, or one that is not
    a dict.
    """
    path = Path(path)
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "Weights only load failed" in str(err) or "Unsupported global" in str(err):
            raise CheckpointError(
                f"{what} {path} was refused: it holds Python objects that only a full unpickle could rebuild, and "
                "unpickling can run code. hcebench writes tensors and plain containers only, so this file was not "
                "written by it (or by an older version): get the file again from a source you trust, or delete it "
                "and rerun the job that makes it"
            ) from None
        raise CheckpointError(
            f"{what} {path} is corrupt ({reason}): delete it and rerun the job that makes it"
        ) from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, ValueError, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise CheckpointError(f"{what} {path} does not exist: rerun the job that makes it") from None
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(
            f"{what} {path} is truncated or corrupt ({reason}): delete it and rerun the job that makes it"
        ) from None
    if not isinstance(content, dict):
        raise CheckpointError(
            f"{what} {path} holds a {type(content).__name__}, not hcebench's dict of fields"
        )
    return content


def require_fields(content: dict, fields: tuple[str, ...], path: str | os.PathLike, what: str) -> None:
    """A ``CheckpointError`` naming the file and the fields it lacks (a file of another tool or version)."""
    missing = [f for f in fields if f not in content]
    if missing:
        raise CheckpointError(
            f"{what} {path} lacks {missing}: it was not written by this version of hcebench; "
            "delete it and rerun the job that makes it"
        )
