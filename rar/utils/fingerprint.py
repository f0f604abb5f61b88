"""A content fingerprint of a file or folder (a model folder, a folder of saved outputs).

An evaluation resumed after an interruption must score the same model it started with; its
config names only the folder, whose contents can change in between (a new export written to the
same place). :func:`fingerprint` digests every file's relative path, size and bytes; files over
:data:`FULL_HASH_LIMIT` contribute their size and three 4 MiB samples (start, middle, end), so a
multi-GB real model folder is fingerprinted in well under a second per file instead of a full read.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

FULL_HASH_LIMIT = 64 * 2**20
SAMPLE = 4 * 2**20


def _file_digest(path: Path) -> str:
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        if size <= FULL_HASH_LIMIT:
            for chunk in iter(lambda: f.read(2**20), b""):
                h.update(chunk)
        else:
            for offset in (0, size // 2 - SAMPLE // 2, size - SAMPLE):
                f.seek(offset)
                h.update(f.read(SAMPLE))
    return h.hexdigest()


def fingerprint(path: str | Path) -> str:
    """Hex digest of ``path`` (a file, or every file under a folder, by relative path)."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for file in files:
        name = file.name if file == path else file.relative_to(path).as_posix()
        h.update(f"{name}\0{_file_digest(file)}\n".encode())
    return h.hexdigest()
