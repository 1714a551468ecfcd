"""hcebench.network: a deadline per attempt, bounded retries with doubling waits, one line at the end."""

import threading
import time
import urllib.error

import pytest
from hcebench.errors import NetworkError
from hcebench.network import AttemptTimeout, Retry, call_with_deadline, call_with_retries


def test_retry_waits_double_and_bound_the_whole_wait():
    retry = Retry(attempts=4, timeout_s=10, backoff_s=1.5)
    assert retry.waits() == [1.5, 3.0, 6.0]
    assert retry.longest_s == 4 * 10 + 10.5
    with pytest.raises(ValueError, match="attempts >= 1"):
        Retry(attempts=0)


def test_a_call_past_its_deadline_is_abandoned():
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(AttemptTimeout, match="no answer within 0.2 s"):
        call_with_deadline(release.wait, 0.2)  # would block until released
    assert time.monotonic() - started < 1.5
    release.set()
    assert call_with_deadline(lambda: 42, 1.0) == 42
    with pytest.raises(KeyError, match="inner"):
        call_with_deadline(lambda: {}["inner"], 1.0)  # the call's own error, in the caller's thread


def test_transient_errors_are_retried_with_backoff_then_named_in_one_line():
    calls, pauses = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("reset by peer\nsecond line")
        return "ok"

    retry = Retry(attempts=3, timeout_s=1, backoff_s=0.5)
    transient = lambda err: isinstance(err, ConnectionError)  # noqa: E731
    assert (
        call_with_retries(flaky, retry, what="x", fix="y", transient=transient, sleep=pauses.append) == "ok"
    )
    assert pauses == [0.5, 1.0]

    calls.clear()
    with pytest.raises(NetworkError) as err:
        call_with_retries(
            flaky,
            Retry(attempts=2, timeout_s=1, backoff_s=0.5),
            what="Census release 2023-05-15 (census.train_release)",
            fix="Run offline with census.source: local.",
            transient=transient,
            sleep=pauses.append,
        )
    assert str(err.value) == (
        "Census release 2023-05-15 (census.train_release) did not answer: ConnectionResetError: reset by peer "
        "(2 attempt(s) in 0 s, at most 1 s each). Run offline with census.source: local."
    )


def test_a_socket_timeout_reads_as_the_deadline_it_raced():
    # urlopen's own timeout is the attempt's: under load it may fire first, as a TimeoutError, or wrapped in a
    # URLError during the connect; either is the source's silence and is named as the deadline is.
    errors = iter([TimeoutError("timed out"), urllib.error.URLError(TimeoutError("timed out"))])

    def silent():
        raise next(errors)

    transient = lambda err: isinstance(err, OSError)  # noqa: E731
    with pytest.raises(NetworkError) as err:
        call_with_retries(
            silent,
            Retry(attempts=2, timeout_s=0.5),
            what="x",
            fix="y",
            transient=transient,
            sleep=lambda s: None,
        )
    assert str(err.value).startswith("x did not answer: no answer within 0.5 s (2 attempt(s)")


def test_other_errors_are_raised_at_once():
    calls = []

    def wrong():
        calls.append(1)
        raise ValueError("no such release")

    with pytest.raises(ValueError, match="no such release"):
        call_with_retries(wrong, Retry(), what="x", fix="y", transient=lambda e: False, sleep=lambda s: None)
    assert calls == [1]


def test_a_silent_source_costs_at_most_the_retry_bound():
    pauses = []
    retry = Retry(attempts=2, timeout_s=0.2, backoff_s=0.0)
    started = time.monotonic()
    with pytest.raises(NetworkError, match=r"^slow did not answer: no answer within 0.2 s \(2 attempt"):
        call_with_retries(
            lambda: time.sleep(30), retry, what="slow", fix="", transient=lambda e: True, sleep=pauses.append
        )
    assert time.monotonic() - started < retry.longest_s + 1.5
    assert pauses == [0.0]
