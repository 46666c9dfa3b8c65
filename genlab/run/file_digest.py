"""A file's SHA-256, read in 1 MiB blocks: what an export's manifest lists per file and what a report's record
keeps of the files it wrote (so that it overwrites only its own)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of the bytes of `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
