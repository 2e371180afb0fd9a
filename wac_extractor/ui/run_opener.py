"""Opening an existing tracker in the dock: once per tracker, in a task, shown with the run's own slots.

The dock's tracker field, its *Open run* button, a ``.gpkg`` dropped on the dock, the dock opening
with a tracker in its settings, and a project read from disk all come here. Layers already in the
project (a saved project) are reused, never added twice; a project of no run gets none of the dock's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Optional

from qgis.core import QgsApplication, QgsProject
from qgis.PyQt.QtCore import QObject, pyqtSignal

from ..core.jobs.opened_run import RunState
from ..core.jobs.tracker import TrackerError, open_tracker
from ..definitions import LOG_TAG
from ..qgis_glue.layers import project_tracker
from ..qgis_glue.open_task import OpenRunTask

TRACKER_SUFFIXES = (".gpkg", ".csv")


class RunOpener(QObject):
    """``dock``: its run map, job model and the slots that show a run (tracker ready, progress, mosaics)."""

    opened = pyqtSignal(object)  # RunState
    failed = pyqtSignal(str)

    def __init__(self, dock, folders: Callable[[], List[Path]], parent=None):
        super().__init__(parent)
        self.dock = dock
        self.folders = folders
        self.path: Optional[str] = None  # the tracker shown (opened or run), if any
        self.state: Optional[RunState] = None
        self.task: Optional[OpenRunTask] = None

    def is_open(self, path: str) -> bool:
        return bool(path) and self.path == str(Path(path).resolve())

    def forget(self) -> None:
        """The shown run is gone (a new project, another tracker chosen): the next open shows it again."""
        if self.task is not None:
            self.task.cancel()
        for band_task in list(self.dock.run_map.band_tasks):  # its bands belong to the run gone
            band_task.cancel()
        self.path, self.state, self.task = None, None, None

    def shown_by_run(self, path: str, state: Optional[RunState] = None) -> None:
        """A run of this tracker shows it (its table, tiles and mosaics): opening it again adds nothing."""
        self.path, self.state = str(Path(path).resolve()), state

    def waiting_text(self, path: str) -> str:
        """The dock's summary for a tracker in the field that is not shown (yet)."""
        name = Path(path).name
        if self.task is not None:
            return f"Opening {name}…"
        return f"{name} is not shown in this project: Open run… shows it; Run resumes it."

    def open_at_start(self) -> None:
        """The dock opens: the run of the project, else the tracker in its settings (after a restart; not
        into a saved project of no run)."""
        if not self.open_project_run() and not QgsProject.instance().fileName():
            self.dock.open_run_at_field()

    def open_project_run(self, *_signal_args: object) -> bool:
        """A project was read (or the dock opened on one): the run whose job tiles it holds is shown, its
        tracker put in the dock's field. A project of no run is left alone: the field's run is not added to it.
        """
        tracker = project_tracker(QgsProject.instance(), self.dock.tracker_file.filePath())
        if tracker is None:
            return False
        if self.dock.task is not None:  # the field names the running tracker until the run ends
            self.dock.iface.messageBar().pushMessage(
                LOG_TAG, f"This project's run ({Path(tracker).name}) opens with Open run… once this run ends."
            )
            return True
        if str(Path(self.dock.tracker_file.filePath() or ".").resolve()) != tracker:
            self.dock.tracker_file.setFilePath(tracker)  # the field's fileChanged opens it
        else:
            self.dock.open_run_at_field()
        return True

    def open(self, path: str) -> bool:
        """Show an existing tracker; False (and nothing changed) when it is shown already or cannot be read."""
        if not path or not Path(path).is_file() or self.is_open(path) or self.dock.task is not None:
            return False
        try:
            tracker = open_tracker(path)
        except (TrackerError, OSError, ValueError) as exc:
            self.failed.emit(str(exc))
            return False
        self.forget()
        self.path = str(Path(path).resolve())
        self.dock.tracker = tracker
        self.dock.model.set_tracker(tracker, refresh=False)  # the task sends the jobs
        self.dock.run_map.start(tracker, path)
        task = OpenRunTask(tracker, self.folders())
        # A task cancelled for another tracker may still deliver what it sent before: only this one's is shown.
        task.tracker_ready.connect(lambda *shown: self.task is task and self.dock.on_tracker_ready(*shown))
        task.progress_changed.connect(lambda *shown: self.task is task and self.dock.on_progress(*shown))
        task.mosaics_changed.connect(lambda *shown: self.task is task and self.dock.on_mosaics_changed(*shown))
        task.opened.connect(lambda state: self.task is task and self._opened(state))
        task.open_failed.connect(lambda message: self.task is task and self._failed(message))
        self.task = task
        QgsApplication.taskManager().addTask(task)
        return True

    def _opened(self, state: RunState) -> None:
        self.state, self.task = state, None
        self.opened.emit(state)

    def _failed(self, message: str) -> None:
        self.forget()
        self.failed.emit(message)
