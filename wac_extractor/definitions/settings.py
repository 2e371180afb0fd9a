"""The dock's QgsSettings keys, each declared once (name, type, default), and generic load/save helpers.

A panel binds each of its settings to a getter and a setter of its widget (:class:`Bound`); loading
and saving walk the same list, so the two cannot drift apart. The keys are the ones earlier releases
wrote (``wac_extractor/start`` ...): users keep their settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

from qgis.core import QgsSettings

from ..core.recipes import DEFAULT_RECIPE

PREFIX = "wac_extractor/"


@dataclass(frozen=True)
class Setting:
    """One key under ``wac_extractor/``; ``default`` may be a function, for defaults known only at run time."""

    name: str
    type: type
    default: Union[Any, Callable[[], Any]]

    @property
    def key(self) -> str:
        return PREFIX + self.name

    def read(self, store: Optional[QgsSettings] = None) -> Any:
        store = store or QgsSettings()
        default = self.default() if callable(self.default) else self.default
        if self.type is bool:  # QgsSettings stores booleans as "true"/"false" in its ini file
            return store.value(self.key, default, type=bool)
        return self.type(store.value(self.key, default))

    def write(self, value: Any, store: Optional[QgsSettings] = None) -> None:
        (store or QgsSettings()).setValue(self.key, value)


# Time, recipe and sensors
START = Setting("start", str, "2023-01-01")
END = Setting("end", str, "2023-04-01")
WINDOW_MONTHS = Setting("window_months", int, 3)
RECIPE = Setting("recipe", str, DEFAULT_RECIPE)
S1 = Setting("s1", bool, True)
S2 = Setting("s2", bool, True)
CLOUD = Setting("cloud", int, 85)
TILE_KM = Setting("tile_km", int, 10)
# Output and credits
OUTPUT = Setting("output", str, lambda: str(Path.home() / "wac_extractor"))
TRACKER = Setting("tracker", str, "")
MAX_QUEUED_HOURS = Setting("max_queued_hours", int, 0)
MAX_CREDITS = Setting("max_credits", float, 0.0)
JOB_BUDGET = Setting("job_budget", float, 0.0)
JOB_OPTIONS = Setting("job_options", str, "")  # KEY=VALUE lines, sent with every job
RERUNS = Setting("reruns", int, 2)  # more attempts for a job the backend lost
CREDIT_BALANCE = Setting("credit_balance", float, 0.0)  # typed by the user where the backend reports none
# Run
CANCEL_REMOTE = Setting("cancel_remote", bool, False)
JOB_COLUMNS = Setting("job_columns", str, "Status,Sensor,Tile,Window,Credits")  # the job table's shown columns
# Backends: a JSON list of URLs, methods and auth-configuration ids (never a secret)
BACKENDS = Setting("backends", str, "[]")


def section_collapsed(section: str) -> Setting:
    """Whether a section of the dock was left collapsed (saved as it changes, read when the dock opens)."""
    return Setting(f"collapsed/{section}", bool, False)


@dataclass(frozen=True)
class Bound:
    """A setting tied to the widget that shows it."""

    setting: Setting
    get: Callable[[], Any]
    set: Callable[[Any], None]


def load(bindings: Iterable[Bound]) -> None:
    store = QgsSettings()
    for bound in bindings:
        bound.set(bound.setting.read(store))


def save(bindings: Iterable[Bound]) -> None:
    """One ``QgsSettings`` for all: each one written the whole ini file when it went (QGIS Desktop: the
    dock's 20 settings held the UI thread 100 ms on the Run click, measured in the Desktop UI bench)."""
    store = QgsSettings()
    for bound in bindings:
        bound.setting.write(bound.get(), store)
