"""Where clip bytes live: one small interface, a directory today, an S3-compatible store
(same four calls) when the centre needs one."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

_KEY = re.compile(r"^[a-z0-9][a-z0-9./-]{0,200}$")


class ClipStore(Protocol):
    """Keys are ``[a-z0-9./-]`` paths such as ``2026/12/04/clip-ab12.mp4``."""

    def put(self, key: str, source: Path) -> None:
        """Keep the file at ``source`` under ``key`` (moved or copied; replaces)."""
        ...

    def read(self, key: str) -> bytes:
        """The bytes under ``key``; FileNotFoundError when there are none."""
        ...

    def delete(self, key: str) -> None:
        """Forget ``key``; nothing happens when it is not there."""
        ...

    def exists(self, key: str) -> bool: ...


class DirectoryClipStore:
    """Clips as files under ``root``; each put lands by an atomic rename."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not _KEY.fullmatch(key) or ".." in key:
            raise ValueError(f"clip store key {key!r} must match {_KEY.pattern} without '..'")
        return self.root / key

    def put(self, key: str, source: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as out:
            out.write(source.read_bytes())
            out.flush()
            os.fsync(out.fileno())
        Path(out.name).replace(target)

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()
