"""Download an ontology release once, atomically, so a broken transfer never looks like a release.

A download is bounded (``ONTOLOGY_RETRY``: a deadline per attempt, a few attempts with backoff;
``hcebench.network``), so an unreachable or silent host ends the ``fetch_ontology`` job with one line that names
``ontology.source`` and the offline alternatives instead of holding it until the scheduler's time limit.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request

from hcebench.errors import OntologyError
from hcebench.io import atomic_path
from hcebench.network import Retry, call_with_retries

#: An OBO file of the Cell Ontology (~10-40 MB) arrives in seconds to a minute when its host answers.
ONTOLOGY_RETRY = Retry(attempts=3, timeout_s=120.0, backoff_s=5.0)

OFFLINE_FIX = (
    "Offline: download the OBO file elsewhere and set ontology.source to its local path, or use the bundled "
    "release (ontology.source: bundled:v2022-09-15)."
)


def is_transient(err: BaseException) -> bool:
    """Whether a download error may pass on another attempt: timeouts, refused, reset or unresolved connections and
    server errors may; a missing file, a 404 or a malformed URL will not."""
    if isinstance(err, urllib.error.HTTPError):
        return err.code >= 500 or err.code in (408, 429)
    if isinstance(err, urllib.error.URLError):
        if not isinstance(err.reason, BaseException):  # e.g. "unknown url type": the URL itself is wrong
            return False
        err = err.reason
    if isinstance(err, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError):
        return False
    # OSError covers timeouts, refused and reset connections, unresolved host names and TLS failures;
    # HTTPException a response cut short (IncompleteRead, RemoteDisconnected).
    return isinstance(err, OSError | http.client.HTTPException)


def fetch_obo(
    url: str, path: str | os.PathLike, retry: Retry = ONTOLOGY_RETRY, *, sha256: str | None = None
) -> str:
    """Fetch ``url`` to ``path``; return the file's SHA-256. With ``sha256`` (``ontology.sha256``) any other file is
    refused and nothing is written.

    Each attempt is bounded by ``retry.timeout_s``; transient failures are tried ``retry.attempts`` times in all.
    Fails with ``NetworkError`` (unreachable: one line naming ``ontology.source`` and the offline fix) or
    ``OntologyError`` (the URL answered, but with no OBO file, or refused the file for good).
    """

    def download() -> bytes:
        with urllib.request.urlopen(url, timeout=retry.timeout_s) as response:
            return response.read()

    try:
        body = call_with_retries(
            download,
            retry,
            what=f"ontology.source {url}",
            fix=OFFLINE_FIX,
            transient=is_transient,
        )
    except (OSError, ValueError) as err:  # not transient: a 404, a missing file, a malformed URL
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise OntologyError(f"cannot download ontology.source {url}: {reason}. {OFFLINE_FIX}") from err
    if b"[Term]" not in body[:5_000_000]:
        raise OntologyError(f"{url} did not return an OBO file (no [Term] stanza); check ontology.source")
    digest = hashlib.sha256(body).hexdigest()
    if sha256 is not None and digest != sha256:
        raise OntologyError(
            f"{url} delivered a file with SHA-256 {digest}, not the {sha256} pinned by ontology.sha256: it changed "
            "at the source or in transit; check the release, then pin its checksum"
        )
    with atomic_path(path) as tmp:
        tmp.write_bytes(body)
    return digest
