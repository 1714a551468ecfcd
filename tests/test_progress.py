"""hcebench.progress: a line at most every minute with items done, rate and time left; a closing line once."""

import logging

import pytest
from hcebench.progress import Progress, format_duration

LOG = logging.getLogger("hcebench.test_progress")


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOG.name]


def test_a_line_at_most_every_minute_then_a_closing_line(caplog):
    clock = FakeClock()
    progress = Progress(1000, "train: read", LOG, clock=clock)  # started at 0 s
    with caplog.at_level("INFO", logger=LOG.name):
        clock.now = 30.0
        progress.update(100)  # under a minute since the start: quiet
        clock.now = 61.0
        progress.update(610)  # 10 cells/s, 390 left: 39 s
        clock.now = 90.0
        progress.update(900)  # under a minute since the last line: quiet
        clock.now = 100.0
        progress.update(1000)  # done: the closing line
        clock.now = 200.0
        progress.update(1000)  # already finished: nothing more
        progress.finish()
    assert _lines(caplog) == [
        "train: read: 610 of 1,000 cells (61.0 %), 10 cells/s, about 39 s left",
        "train: read: 1,000 of 1,000 cells in 100 s (10 cells/s)",
    ]


def test_rate_counts_only_items_done_since_a_resume(caplog):
    clock = FakeClock()
    progress = Progress(10_000, "epoch 3", LOG, start=4_000, unit="cells", final_line=False, clock=clock)
    with caplog.at_level("INFO", logger=LOG.name):
        clock.now = 60.0
        progress.advance(1_200)  # 1,200 cells in 60 s since the resume: 20/s; 4,800 left: 240 s
        clock.now = 120.0
        progress.update(10_000)  # done, but the caller logs its own summary
    assert _lines(caplog) == ["epoch 3: 5,200 of 10,000 cells (52.0 %), 20 cells/s, about 4 min left"]


def test_an_unknown_total_logs_the_count_and_a_closing_line_at_finish(caplog):
    clock = FakeClock()
    progress = Progress(None, "obs read", LOG, every_s=10, unit="rows", clock=clock)
    with caplog.at_level("INFO", logger=LOG.name):
        clock.now = 12.0
        progress.advance(36)
        clock.now = 15.0
        progress.advance(9)
        progress.finish()
    assert _lines(caplog) == [
        "obs read: 36 rows so far, 3.00 rows/s",
        "obs read: 45 rows in 15 s (3.00 rows/s)",
    ]


def test_nothing_done_yet_says_so_instead_of_dividing_by_zero(caplog):
    clock = FakeClock()
    progress = Progress(50, "predict", LOG, clock=clock)
    with caplog.at_level("INFO", logger=LOG.name):
        clock.now = 61.0
        progress.update(0)
    assert _lines(caplog) == [
        "predict: 0 of 50 cells (0.0 %), 0.00 cells/s, time left unknown (nothing done yet)"
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "0 s"), (42, "42 s"), (119, "119 s"), (125, "2 min"), (7_140, "119 min"), (11_100, "3 h 05 min")],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
