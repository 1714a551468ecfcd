"""Progress lines for long steps, so a rule log shows a job is alive and when it will finish.

A store build, an OOD build, a census read, a training epoch or a prediction can run for hours on a real atlas;
Snakemake shows nothing of a running job but its log. ``Progress`` writes one line at most every ``every_s``
seconds (a minute by default): the items done, the rate since the step started, and the time left at that rate::

    train: read from the census: 1,200,000 of 9,500,000 cells (12.6 %), 2,310 cells/s, about 1 h 00 min left

and, when the step ends, one closing line with its total time. A step shorter than ``every_s`` logs the closing
line only. The clock is a parameter so that tests drive it by hand.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

#: Seconds between two progress lines of one step.
EVERY_S = 60.0


def format_duration(seconds: float) -> str:
    """``"42 s"``, ``"17 min"``, ``"3 h 05 min"``: whole units a reader takes in at a glance."""
    seconds = max(float(seconds), 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class Progress:
    """Log ``what``'s progress through ``total`` items (``None``: unknown) on ``logger``, at most every ``every_s``.

    ``update(done)`` sets the items done so far (a count from the start of the whole step, so a resumed step can
    begin at ``start``); ``advance(n)`` adds ``n``. The rate is measured over the items done since this object
    was made, so items done before a resume do not inflate it. With ``final_line`` a closing line is logged once:
    when ``done`` reaches ``total``, or at ``finish()`` (steps whose total is unknown). A caller that logs its own
    summary at the end (a training epoch) passes ``final_line=False``.
    """

    def __init__(
        self,
        total: int | None,
        what: str,
        logger: logging.Logger,
        every_s: float = EVERY_S,
        *,
        unit: str = "cells",
        start: int = 0,
        final_line: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total, self.what, self.logger, self.every_s = total, what, logger, every_s
        self.unit, self.start, self.final_line, self.clock = unit, start, final_line, clock
        self.done = start
        self.started = self.last_line = clock()
        self.finished = False

    def advance(self, n: int) -> None:
        """``n`` more items done."""
        self.update(self.done + n)

    def update(self, done: int) -> None:
        """``done`` items done in all; logs a line if ``every_s`` passed since the last one, or the step ended."""
        if self.finished:
            return
        self.done = done
        if self.total is not None and done >= self.total:
            self.finish()
            return
        now = self.clock()
        if now - self.last_line >= self.every_s:
            self.last_line = now
            self.logger.info("%s", self.line(now))

    def finish(self) -> None:
        """End the step: the closing line (total items, time taken, rate), once."""
        if self.finished:
            return
        self.finished = True
        if self.final_line:
            now = self.clock()
            elapsed = now - self.started
            of = f" of {self.total:,}" if self.total is not None else ""
            self.logger.info(
                "%s: %s%s %s in %s (%s)",
                self.what,
                f"{self.done:,}",
                of,
                self.unit,
                format_duration(elapsed),
                self._rate_text(self._rate(now)),
            )

    def line(self, now: float) -> str:
        """The progress line at time ``now``."""
        rate = self._rate(now)
        if self.total is None:
            return f"{self.what}: {self.done:,} {self.unit} so far, {self._rate_text(rate)}"
        share = 100.0 * self.done / self.total if self.total else 100.0
        if rate > 0:
            left = f"about {format_duration((self.total - self.done) / rate)} left"
        else:
            left = "time left unknown (nothing done yet)"
        return (
            f"{self.what}: {self.done:,} of {self.total:,} {self.unit} ({share:.1f} %), "
            f"{self._rate_text(rate)}, {left}"
        )

    def _rate(self, now: float) -> float:
        return (self.done - self.start) / max(now - self.started, 1e-9)

    def _rate_text(self, rate: float) -> str:
        return f"{rate:,.0f} {self.unit}/s" if rate >= 10 else f"{rate:.2f} {self.unit}/s"
