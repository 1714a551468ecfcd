"""What every rule script does first: send logging, warnings and any failure to the rule's log file (and only a
failure to the terminal).

Snakemake points a user at the rule's log when a job fails, so the log must hold the failure: an uncaught
exception is written there as its traceback, followed by one last line with the reason (``<Error>: <message>``),
which names the key, file or value and the fix wherever hcebench raised it.

A job that ends well ends its log with its exact peak memory (``PEAK_LINE``): the kernel's high-water mark of the
job's process, and the summed high-water marks of the worker processes it ran at once (``hcebench.memory``).
Snakemake's benchmark files sample memory (every 0.5 s for the first seconds, then every 30 s) and can miss a short
transient; the scale rehearsal reads both.
"""

from __future__ import annotations

import atexit
import logging
import re
import sys
import traceback

from hcebench.memory import own_peak_mb, worker_peak_mb

#: The last line of a finished job's log: its peak resident memory, exact (``peak_memory_mb``).
PEAK_LINE = re.compile(
    r"peak memory of rule (?P<rule>\w+): (?P<own>[\d,]+) MB in this process, "
    r"(?P<child>[\d,]+) MB in the worker processes it ran at once"
)
_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def start(snakemake) -> logging.Logger:
    """Configure logging to ``snakemake.log[0]`` and return the rule's logger.

    Progress and warnings go to the log file alone, so the terminal shows Snakemake's job lines; errors go to the
    terminal too, so a failure is seen where the run was started. A rule without a log file logs to the terminal.
    """
    terminal = logging.StreamHandler(sys.stderr)
    handlers: list[logging.Handler] = [terminal]
    if len(snakemake.log):
        terminal.setLevel(logging.ERROR)
        handlers.append(logging.FileHandler(snakemake.log[0], mode="w"))
    logging.basicConfig(level=logging.INFO, format=_FORMAT, handlers=handlers, force=True)
    logging.captureWarnings(True)
    log = logging.getLogger(f"hcebench.{snakemake.rule}")
    where = f"rule {snakemake.rule}" + (f" ({wildcards})" if (wildcards := _wildcard_text(snakemake)) else "")
    hook = failure_logger(log, where, snakemake.log[0] if len(snakemake.log) else None)
    sys.excepthook = hook
    if len(snakemake.log):
        atexit.register(
            lambda: None if hook.failed else append_peak_memory(snakemake.log[0], log, snakemake.rule)
        )
    log.info("rule %s, wildcards %s", snakemake.rule, dict(snakemake.wildcards.items()))
    return log


def peak_memory_mb() -> tuple[int, int]:
    """This process's peak resident memory, and the largest summed peak of worker processes it ran at once, in MB
    (``hcebench.memory``)."""
    return own_peak_mb(), worker_peak_mb()


def append_peak_memory(log_file: str, log: logging.Logger, rule: str) -> None:
    """Append ``PEAK_LINE`` to ``log_file`` (at exit; written directly, as the logging handlers may be closed)."""
    own, child = peak_memory_mb()
    message = f"peak memory of rule {rule}: {own:,} MB in this process, {child:,} MB in the worker processes it ran at once"
    record = log.makeRecord(log.name, logging.INFO, __file__, 0, message, None, None)
    with open(log_file, "a") as f:
        f.write(logging.Formatter(_FORMAT).format(record) + "\n")


def _wildcard_text(snakemake) -> str:
    return ", ".join(f"{k}={v}" for k, v in snakemake.wildcards.items())


def failure_logger(log: logging.Logger, where: str = "", log_file: str | None = None):
    """An excepthook that logs the traceback, then the one-line reason last, then exits as Python would.

    With ``log_file``, the terminal gets one more line naming the job (``where``) and its log: Snakemake's own
    job details are left out of the terminal (the workflow profile's ``quiet: rules``), so this line says where
    to look.
    """

    def log_failure(exc_type, exc, tb) -> None:
        log_failure.failed = True  # the reason stays the log's last line: no peak memory after it
        if issubclass(exc_type, KeyboardInterrupt | SystemExit):
            sys.__excepthook__(exc_type, exc, tb)
            return
        log.error("failed:\n%s", "".join(traceback.format_exception(exc_type, exc, tb)).rstrip())
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        log.error("%s: %s", exc_type.__name__, reason)
        if log_file:
            print(f"{where or 'the job'} failed; its log: {log_file}", file=sys.stderr, flush=True)

    log_failure.failed = False
    return log_failure
