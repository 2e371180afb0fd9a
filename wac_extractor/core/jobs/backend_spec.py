"""A run's backends and where it writes: checked before anything starts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

from .tracker import TrackerError


@dataclass
class BackendSpec:
    """One backend of a run: where, under what name and how many jobs at once."""

    url: str
    parallel_jobs: int = 2
    name: Optional[str] = None

    def __post_init__(self):
        if not self.name:
            parsed = urlparse(self.url if "://" in self.url else f"https://{self.url}")
            self.name = parsed.netloc or self.url
        if int(self.parallel_jobs) < 1:
            raise ValueError(f"parallel_jobs: {self.parallel_jobs} for {self.url}; use 1 or more.")


def check_writable(folder: Path, what: str) -> None:
    """Fail early, with the fix, when results could not be written (read-only folder, full disk)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".wac-write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise TrackerError(f"{what} {folder} is not writable ({exc.strerror or exc}); choose another folder.") from None
