"""What the tools the suite builds on demand share (the Rust comparator, the latency proxy):
one build at a time per cache directory, and what a build reports."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@contextlib.contextmanager
def build_lock(directory: Path) -> Iterator[None]:
    """Hold `directory`'s build lock: two pytest processes or plan cells may ask at once; one
    builds, the other waits and then finds the binary."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass(frozen=True)
class BuildResult:
    binary: Path
    built: bool  # False when the cached binary was current
    seconds: float
