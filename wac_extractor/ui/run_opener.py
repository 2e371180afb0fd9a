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
        self.path, self.state, self.task = None, None, None

    def shown_by_run(self, path: str, state: Optional[RunState] = None) -> None:
        """A run of this tracker shows it (its table, tiles and mosaics): opening it again adds nothing."""
        self.path, self.state = str(Path(path).resolve()), state

    def open_at_start(self) -> None:
        """The dock opens: the run of the project, else the tracker in its settings (after a restart)."""
        if not self.open_project_run():
            self.dock.open_run_at_field()

    def open_project_run(self, *args) -> bool:
        """A project was read (or the dock opened on one): the run whose job tiles it holds is shown, its
        tracker put in the dock's field. A project of no run is left alone: the field's run is not added to it.
        """
        tracker = project_tracker(QgsProject.instance())
        if tracker is None:
            return False
        if self.dock.tracker_file.filePath() != tracker:
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
        task.tracker_ready.connect(self.dock.on_tracker_ready)
        task.progress_changed.connect(self.dock.on_progress)
        task.mosaics_changed.connect(self.dock.on_mosaics_changed)
        task.opened.connect(self._opened)
        task.open_failed.connect(self._failed)
        self.task = task
        QgsApplication.taskManager().addTask(task)
        return True

    def _opened(self, state: RunState) -> None:
        self.state, self.task = state, None
        self.opened.emit(state)

    def _failed(self, message: str) -> None:
        self.forget()
        self.failed.emit(message)
