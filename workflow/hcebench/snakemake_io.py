"""What every rule script does first: send logging, warnings and any failure to the rule's log file (and only a
failure to the terminal).

Snakemake points a user at the rule's log when a job fails, so the log must hold the failure: an uncaught
exception is written there as its traceback, followed by one last line with the reason (``<Error>: <message>``),
which names the key, file or value and the fix wherever hcebench raised it.
"""

from __future__ import annotations

import logging
import sys
import traceback


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
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )
    logging.captureWarnings(True)
    log = logging.getLogger(f"hcebench.{snakemake.rule}")
    where = f"rule {snakemake.rule}" + (f" ({wildcards})" if (wildcards := _wildcard_text(snakemake)) else "")
    sys.excepthook = failure_logger(log, where, snakemake.log[0] if len(snakemake.log) else None)
    log.info("rule %s, wildcards %s", snakemake.rule, dict(snakemake.wildcards.items()))
    return log


def _wildcard_text(snakemake) -> str:
    return ", ".join(f"{k}={v}" for k, v in snakemake.wildcards.items())


def failure_logger(log: logging.Logger, where: str = "", log_file: str | None = None):
    """An excepthook that logs the traceback, then the one-line reason last, then exits as Python would.

    With ``log_file``, the terminal gets one more line naming the job (``where``) and its log: Snakemake's own
    job details are left out of the terminal (the workflow profile's ``quiet: rules``), so this line says where
    to look.
    """

    def log_failure(exc_type, exc, tb) -> None:
        if issubclass(exc_type, KeyboardInterrupt | SystemExit):
            sys.__excepthook__(exc_type, exc, tb)
            return
        log.error("failed:\n%s", "".join(traceback.format_exception(exc_type, exc, tb)).rstrip())
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        log.error("%s: %s", exc_type.__name__, reason)
        if log_file:
            print(f"{where or 'the job'} failed; its log: {log_file}", file=sys.stderr, flush=True)

    return log_failure
