"""Opening a run (issue 24): an existing tracker shows its jobs, tiles, progress, credits and mosaics once,
offers Run only when work is left, and is shown again after a restart, with the project saved or not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsProject, QgsSettings
from qgis.PyQt.QtCore import QMimeData, QPointF, Qt, QUrl
from qgis.PyQt.QtGui import QDropEvent

from wac_extractor.core.jobs.tracker import create_tracker
from wac_extractor.definitions import settings
from wac_extractor.qgis_glue.layers import job_tiles_layer, job_tiles_uri
from wac_extractor.ui.dock import WacDock

from .conftest import notebook_jobs
from .test_dock import fresh_dock
from .test_runner import make_runner

JOBS = 4
DOCKS = []  # this module's docks: each listens to the project being read, as the one dock of QGIS does


def new_dock(iface, canvas) -> WacDock:
    DOCKS.append(fresh_dock(iface, canvas))
    return DOCKS[-1]


@pytest.fixture(autouse=True)
def docks_leave_the_project_alone():
    yield
    while DOCKS:
        DOCKS.pop().disconnect_project()


@pytest.fixture
def finished_run(backend, tmp_path):
    """A run of 4 jobs, finished and downloaded by the runner: ``(tracker path, output folder)``."""
    tracker = create_tracker(tmp_path / "jobs.gpkg", notebook_jobs().iloc[:JOBS])
    summary = make_runner(tracker, tmp_path / "out", backend.url).run()
    assert summary.downloaded == JOBS
    tracker.close()
    yield tmp_path / "jobs.gpkg", tmp_path / "out"
    QgsApplication.taskManager().cancelAll()


def layer_sources() -> list:
    return sorted(layer.source() for layer in QgsProject.instance().mapLayers().values())


def open_in(dock: WacDock, tracker: Path, output: Path, qtbot) -> None:
    dock.output.setFilePath(str(output))
    dock.tracker_file.setFilePath(str(tracker))  # as a user picks it in the field
    qtbot.waitUntil(lambda: dock.opener.state is not None, timeout=30_000)


def test_a_finished_run_opens_with_its_jobs_tiles_mosaics_once_and_without_run(
    finished_run, qgis_iface, qgis_canvas, qgis_new_project, qtbot
):
    tracker, output = finished_run
    dock = new_dock(qgis_iface, qgis_canvas)
    open_in(dock, tracker, output, qtbot)
    assert dock.model.rowCount() == JOBS and dock.model.job(0)["status"] == "finished"
    assert dock.progress.format() == f"{JOBS}/{JOBS} jobs done"
    assert dock.outcome.text() == f"Finished: {JOBS} of {JOBS}, results in {output}."
    assert not dock.open_folder.isHidden() and dock.run_controls.results_folder == str(output)
    assert not dock.run_button.isEnabled() and dock.run_button.toolTip() == "Nothing left to run"
    assert dock.summary.text() == f"Tracker jobs.gpkg: {JOBS} jobs."  # the state is said once, below
    assert dock.credits.text().startswith("Credits: ") and "credits spent (4 jobs)" in dock.credits.text()
    sources = layer_sources()
    assert sum("jobs.gpkg" in source for source in sources) == 1  # the job tiles
    assert len(sources) >= 3  # and month mosaics of S1 and S2

    dock.opener.forget()  # opened again (a second pick of the same file): nothing added twice
    dock.open_run_at_field()
    qtbot.waitUntil(lambda: dock.opener.state is not None, timeout=30_000)
    assert layer_sources() == sources and dock.model.rowCount() == JOBS


def test_a_run_with_work_left_offers_run(backend, tmp_path, qgis_iface, qgis_canvas, qgis_new_project, qtbot):
    create_tracker(tmp_path / "jobs.gpkg", notebook_jobs().iloc[:JOBS]).close()
    dock = new_dock(qgis_iface, qgis_canvas)
    open_in(dock, tmp_path / "jobs.gpkg", tmp_path / "out", qtbot)
    assert dock.outcome.text() == f"0 of {JOBS} jobs done, {JOBS} left: Run resumes them."
    assert dock.run_button.isEnabled() and dock.open_folder.isHidden()


def test_after_a_restart_the_run_is_shown_again_with_the_project_saved_or_not(
    finished_run, qgis_iface, qgis_canvas, qgis_new_project, qtbot, tmp_path
):
    tracker, output = finished_run
    dock = new_dock(qgis_iface, qgis_canvas)
    open_in(dock, tracker, output, qtbot)
    dock.save_settings()
    sources = layer_sources()
    project_file = tmp_path / "run.qgz"
    assert QgsProject.instance().write(str(project_file))
    dock.close()

    QgsProject.instance().clear()  # QGIS restarted, project not saved: the dock shows the run from its settings
    restarted = WacDock(qgis_iface)
    DOCKS.append(restarted)
    qtbot.waitUntil(lambda: restarted.opener.state is not None, timeout=30_000)
    assert layer_sources() == sources and restarted.model.rowCount() == JOBS
    assert not restarted.run_button.isEnabled() and restarted.outcome.text().startswith("Finished:")

    assert QgsProject.instance().read(str(project_file))  # the saved project: its layers, not a second set
    qtbot.waitUntil(lambda: restarted.opener.state is not None, timeout=30_000)
    assert layer_sources() == sources and restarted.model.rowCount() == JOBS


def test_a_tracker_dropped_on_the_dock_opens(finished_run, qgis_iface, qgis_canvas, qgis_new_project, qtbot):
    tracker, output = finished_run
    dock = new_dock(qgis_iface, qgis_canvas)
    dock.output.setFilePath(str(output))
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(tracker))])
    drop = QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)  # fmt: skip
    dock.dropEvent(drop)
    qtbot.waitUntil(lambda: dock.opener.state is not None, timeout=30_000)
    assert dock.tracker_file.filePath() == str(tracker) and dock.model.rowCount() == JOBS


def test_run_controls_stay_in_view_sections_and_columns_are_remembered(qgis_iface, qgis_canvas, qtbot):
    dock = new_dock(qgis_iface, qgis_canvas)
    dock.resize(300, 500)
    dock.show()
    qtbot.waitExposed(dock)
    assert dock.scroll.verticalScrollBar().maximum() > 0  # the form scrolls...
    for widget in (dock.run_button, dock.cancel_button, dock.progress, dock.credits):
        assert not dock.scroll.isAncestorOf(widget) and widget.isVisible()  # ...these do not
    assert dock.run_panel.shown_columns() == ["Status", "Sensor", "Window", "Tile", "Credits"]
    dock.run_panel.toggle_column("Message", True)
    dock.output_panel.box.setCollapsed(True)
    dock.close()
    again = WacDock(qgis_iface)
    DOCKS.append(again)
    assert again.run_panel.shown_columns() == ["Status", "Sensor", "Window", "Tile", "Credits", "Message"]
    assert again.output_panel.box.isCollapsed() and not again.time_panel.box.isCollapsed()
    QgsSettings().remove(settings.PREFIX.rstrip("/"))


def test_a_finished_jobs_log_shows_its_costs_usage_and_files(
    finished_run, qgis_iface, qgis_canvas, qgis_new_project, qtbot
):
    tracker, output = finished_run
    dock = new_dock(qgis_iface, qgis_canvas)
    open_in(dock, tracker, output, qtbot)
    job = dock.model.job(0)
    text = dock.job_log_text(job)
    assert f"costs: {job['costs']:g} credits" in text and job["costs"] > 0
    assert f"cpu: {job['cpu']}" in text and f"duration: {job['duration']}" in text  # as the backend reported
    result = output / json.loads(job["result_files"])[0]
    assert f"  {result} ({result.stat().st_size / 1e6:,.1f} MB)" in text


def test_a_project_read_shows_its_own_run_and_a_project_of_no_run_gets_nothing(
    finished_run, qgis_iface, qgis_canvas, qgis_new_project, qtbot, tmp_path
):
    tracker, output = finished_run
    dock = new_dock(qgis_iface, qgis_canvas)
    open_in(dock, tracker, output, qtbot)
    QgsProject.instance().clear()
    assert QgsProject.instance().write(str(tmp_path / "empty.qgz"))
    assert QgsProject.instance().read(str(tmp_path / "empty.qgz"))
    QgsApplication.processEvents()
    assert layer_sources() == [] and dock.opener.task is None  # the dock's run is not put into another project
    dock.update_preview()
    assert dock.summary.text() == "jobs.gpkg is not shown in this project: Open run… shows it; Run resumes it."

    other = tmp_path / "other" / "jobs.gpkg"
    other.parent.mkdir()
    create_tracker(other, notebook_jobs().iloc[:2]).close()
    QgsProject.instance().addMapLayer(job_tiles_layer(other))
    assert QgsProject.instance().write(str(tmp_path / "other.qgz"))
    QgsProject.instance().clear()
    assert QgsProject.instance().read(str(tmp_path / "other.qgz"))
    qtbot.waitUntil(lambda: dock.opener.state is not None, timeout=30_000)
    assert Path(dock.tracker_file.filePath()) == other.resolve() and dock.model.rowCount() == 2
    assert layer_sources() == [job_tiles_uri(other)]  # its own job tiles, reused: not a second layer
