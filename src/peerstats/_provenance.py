"""The SHA-256 of the bytes peerstats actually read, per input file (issue 24.8).

``manifest.json`` used to hash the input files when the run ended; a file replaced while
``peerstats run`` was running was recorded with the new file's hash although the results came
from the original bytes. Readers now :func:`remember` the digest of the bytes they parsed, and
the manifest asks :func:`digest` first. The table is small and bounded (the most recent
``_LIMIT`` files), so repeated runs in one process do not grow memory.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

__all__ = ["remember", "remember_file", "digest", "file_sha256"]

_LIMIT = 256
_DIGESTS: OrderedDict[str, str] = OrderedDict()


def _key(path: str | Path) -> str:
    return str(Path(path).resolve())


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's current bytes (streamed)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def remember(path: str | Path, data: bytes) -> str:
    """Record (and return) the digest of ``data``, the bytes read from ``path``."""
    return _store(path, hashlib.sha256(data).hexdigest())


def remember_file(path: str | Path, before: str) -> str | None:
    """For a file a library read by path: its digest now, compared with ``before`` (taken
    just before reading). Returns the digest, or None when the file changed while read."""
    after = file_sha256(path)
    if after != before:
        return None
    return _store(path, after)


def _store(path: str | Path, value: str) -> str:
    """Keep ``value`` as the digest of ``path`` (the newest of at most ``_LIMIT``)."""
    key = _key(path)
    _DIGESTS[key] = value
    _DIGESTS.move_to_end(key)
    while len(_DIGESTS) > _LIMIT:
        _DIGESTS.popitem(last=False)
    return value


def digest(path: str | Path) -> str | None:
    """The digest of the bytes last read from ``path`` in this process, if any."""
    return _DIGESTS.get(_key(path))
