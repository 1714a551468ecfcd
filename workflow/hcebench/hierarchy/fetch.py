"""Download an ontology release once, atomically, so a broken transfer never looks like a release."""

from __future__ import annotations

import os
import urllib.request

from hcebench.io import atomic_path


def fetch_obo(url: str, path: str | os.PathLike, timeout: float = 120.0) -> None:
    """Fetch ``url`` to ``path``; fail with the URL named if it is unreachable or not an OBO file."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
    except OSError as err:
        raise RuntimeError(
            f"cannot download ontology.source {url}: {err}. Without network, download it elsewhere and set "
            "ontology.source to the local path (or use the bundled release)"
        ) from err
    if b"[Term]" not in body[:5_000_000]:
        raise RuntimeError(f"{url} did not return an OBO file (no [Term] stanza); check ontology.source")
    with atomic_path(path) as tmp:
        tmp.write_bytes(body)
