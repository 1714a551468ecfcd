"""A job's peak memory: the high-water mark of its own process, and of the worker processes it ran at once.

``own_peak_mb`` reads the kernel's high-water mark of this program (``VmHWM`` in ``/proc/self/status``). A process
that starts workers (the store build's census readers) has each report its own high-water mark when it ends and
records each batch of workers that ran at once (``record_worker_peaks``); ``worker_peak_mb`` is the largest batch,
summed over its workers. ``getrusage(RUSAGE_CHILDREN)`` is not used for the workers: on Linux a child started
through ``vfork`` (Python's ``subprocess``) inherits the high-water mark of its parent's memory, so every ``git``
call would read as a child as large as the job.
"""

from __future__ import annotations

import resource
import sys

#: The summed peaks (MB) of each batch of worker processes this process ran at once.
WORKER_BATCHES_MB: list[int] = []


def own_peak_mb() -> int:
    """This process's peak resident memory in MB: ``VmHWM`` (reset when the program started), or ``getrusage``'s
    ``ru_maxrss`` where there is no ``/proc`` (on Linux it would also count the pages of the process this one was
    forked from)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) >> 10
    except (OSError, StopIteration, ValueError, IndexError):
        scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KB on Linux
        return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale) >> 20


def record_worker_peaks(peaks_mb: list[int]) -> None:
    """Record the peaks (MB) of workers that ran at the same time."""
    WORKER_BATCHES_MB.append(int(sum(peaks_mb)))


def worker_peak_mb() -> int:
    """The largest summed peak (MB) of the batches of workers recorded in this process (0 without workers)."""
    return max(WORKER_BATCHES_MB, default=0)
