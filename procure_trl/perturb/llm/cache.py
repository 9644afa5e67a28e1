"""A persistent on-disk cache of chat-completion responses.

The key is a SHA-256 of the canonical JSON of everything that determines the answer: the model name, the
messages and the sampling parameters. A rerun with the same inputs therefore sends no request. The base
URL is deliberately not part of the key: the same model served by vLLM locally or by a hosted endpoint is
the same model (pass another ``cache_dir`` to keep them apart).

Each entry is one small JSON file, written to a temporary file in the same directory and moved into place
with :func:`os.replace`, which is atomic on POSIX and Windows: a run killed mid-write leaves either the old
state or the complete new file, never a truncated entry. An unreadable entry (say, from a disk that filled)
is treated as a miss and overwritten, never as an answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: Bump when the stored entry format changes: old entries then miss instead of being misread.
CACHE_FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """``$PROCURE_LLM_CACHE``, else ``$XDG_CACHE_HOME/procure_trl/llm``, else ``~/.cache/procure_trl/llm``."""
    env = os.environ.get("PROCURE_LLM_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "procure_trl" / "llm"


def cache_key(model: str, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> str:
    """The hex SHA-256 of the canonical JSON of (format version, model, messages, parameters)."""
    payload = {"v": CACHE_FORMAT_VERSION, "model": model, "messages": list(messages), "params": dict(params)}
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """A directory of JSON entries, one per key, sharded by the key's first two hex digits."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored entry for ``key``, or ``None`` when absent or unreadable."""
        try:
            with open(self._path(key), encoding="utf-8") as handle:
                entry = json.load(handle)
        except (OSError, ValueError):
            return None
        return entry if isinstance(entry, dict) and entry.get("key") == key else None

    def put(self, key: str, entry: Mapping[str, Any]) -> None:
        """Store ``entry`` under ``key`` atomically (temporary file + ``os.replace``)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({**entry, "key": key}, ensure_ascii=False, sort_keys=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:8]}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            # Leave no temporary file behind on failure; a kill -9 can still leave one, which is harmless:
            # readers only ever open ``<key>.json``.
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("*/*.json")) if self.directory.exists() else 0
