"""Bounded waits on remote sources: each attempt has a deadline, a few attempts with backoff, then one clear line.

The code that reaches the network (a Census release through ``cellxgene_census``, an ontology URL) does not all
take a timeout: ``cellxgene_census.open_soma`` reads the release directory with ``requests`` and no timeout, so a
host that accepts a connection and never answers would hold a job until the scheduler kills it. Each attempt here
runs in a daemon thread that is abandoned at its deadline; an abandoned thread keeps its socket until the peer or
the OS closes it and never blocks the interpreter's exit. Transient failures (deadlines, refused or reset
connections, server errors) are tried again after a doubling wait; anything else is the caller's to report. When
the attempts run out, ``NetworkError`` says in one line what did not answer and how to run without it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from hcebench.errors import NetworkError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Retry:
    """How long to wait on a remote source: ``attempts`` tries of at most ``timeout_s`` each, the ``k``-th retry
    after ``backoff_s · 2^(k-1)`` seconds. The whole wait is bounded by ``longest_s``."""

    attempts: int = (
        3  # a flaky link gets a second and third chance; a dead one fails within minutes, not hours
    )
    timeout_s: float = (
        60.0  # one attempt: a release directory or an OBO file arrives in seconds when reachable
    )
    backoff_s: float = 2.0  # first wait; doubles, so a briefly overloaded server gets room to recover

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.timeout_s <= 0 or self.backoff_s < 0:
            raise ValueError(f"Retry needs attempts >= 1, timeout_s > 0 and backoff_s >= 0, got {self}")

    def waits(self) -> list[float]:
        """The pause before each retry."""
        return [self.backoff_s * 2**k for k in range(self.attempts - 1)]

    @property
    def longest_s(self) -> float:
        """The longest the attempts and pauses can take together."""
        return self.attempts * self.timeout_s + sum(self.waits())


class AttemptTimeout(TimeoutError):
    """One attempt passed its deadline (the source accepted or swallowed the request and did not answer)."""


def call_with_deadline(fn: Callable[[], T], timeout_s: float, name: str = "remote call") -> T:
    """``fn()``'s value or exception, or ``AttemptTimeout`` once ``timeout_s`` seconds pass without either."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as err:  # handed to the caller's thread below
            outcome["error"] = err

    worker = threading.Thread(target=run, name=f"hcebench {name}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise AttemptTimeout(f"no answer within {timeout_s:g} s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def one_line(err: BaseException, limit: int = 240) -> str:
    """An error as one short line: its type and the first line of its message."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if isinstance(err, AttemptTimeout):
        return text
    text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def call_with_retries(
    fn: Callable[[], T],
    retry: Retry,
    *,
    what: str,
    fix: str,
    transient: Callable[[BaseException], bool],
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``fn()``'s value, each attempt bounded by ``retry.timeout_s``, retried on transient errors.

    ``transient(err)`` says whether an error is worth another attempt (a deadline always is). Any other error is
    raised as it is, for the caller to translate. After ``retry.attempts`` transient failures, raises
    ``NetworkError``: "``what`` did not answer: <last error> (<n> attempts in <s> s, at most <t> s each). ``fix``",
    one line that names the source (``what``, with its config key) and the way to run offline (``fix``).
    """
    started = time.monotonic()
    waits = retry.waits()
    for attempt in range(1, retry.attempts + 1):
        try:
            return call_with_deadline(fn, retry.timeout_s, what)
        except BaseException as err:
            if not isinstance(err, AttemptTimeout) and not (isinstance(err, Exception) and transient(err)):
                raise
            # The call's own socket timeout (set to the same seconds) may fire before the deadline does: the same
            # silence, named the same way whichever came first.
            timed_out = isinstance(err, TimeoutError) or isinstance(
                getattr(err, "reason", None), TimeoutError
            )
            reason = f"no answer within {retry.timeout_s:g} s" if timed_out else one_line(err)
            if attempt == retry.attempts:
                elapsed = time.monotonic() - started
                raise NetworkError(
                    f"{what} did not answer: {reason} ({retry.attempts} attempt(s) in {elapsed:.0f} s, at most "
                    f"{retry.timeout_s:g} s each). {fix}"
                ) from err
            wait = waits[attempt - 1]
            log.warning(
                "%s: attempt %d of %d failed (%s); trying again in %g s",
                what,
                attempt,
                retry.attempts,
                reason,
                wait,
            )
            sleep(wait)
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover
