"""Per-installation secrets: a setting when the operator gives one, else a random key made once in DATA_DIR.

Every process that shares DATA_DIR (the gateway's workers, the Rasa server `make run` starts) must read the same key,
including a second worker that starts while the first is still writing it: the key is written to a temporary file
and linked into place in one step, so a reader sees either no file or the whole key, never an empty one.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def installation_secret(data_dir: Path, name: str, configured: str = "") -> str:
    """`configured` when set, else the key kept in `data_dir/name` (created atomically on first use, mode 0600)."""
    if configured:
        return configured
    path = data_dir / name
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        temporary = data_dir / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_hex(32).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)  # fails if another process linked its key first: theirs wins
        except FileExistsError:
            pass
        finally:
            temporary.unlink(missing_ok=True)
    return path.read_text(encoding="utf-8").strip()
