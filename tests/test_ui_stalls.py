"""What the Desktop UI bench (bench/ui_desktop.py) found holding QGIS's UI thread, each fixed and kept fixed."""

from __future__ import annotations

from qgis.core import QgsSettings

from wac_extractor.definitions import settings


def test_saving_settings_goes_through_one_qgssettings_and_reads_back(qgis_app, monkeypatch):
    """Each ``QgsSettings`` writes QGIS's whole ini file when it goes: the dock's settings saved one object
    each held the UI thread 100 ms on the Run click in QGIS Desktop (bench stall profile)."""
    made = []

    class Counted(QgsSettings):
        def __init__(self, *args):
            super().__init__(*args)
            made.append(1)

    monkeypatch.setattr(settings, "QgsSettings", Counted)
    keys = [settings.Setting(f"stall_test/key{i}", int, 0) for i in range(20)]
    settings.save([settings.Bound(key, lambda i=i: 100 + i, lambda value: None) for i, key in enumerate(keys)])
    assert len(made) == 1
    read: dict = {}
    settings.load([settings.Bound(key, lambda: None, lambda v, k=key.name: read.update({k: v})) for key in keys])
    assert len(made) == 2
    assert read == {f"stall_test/key{i}": 100 + i for i in range(20)}
    QgsSettings().remove("wac_extractor/stall_test")


def test_a_new_projects_run_is_framed_once_after_the_layer_trees_turn(qgis_iface, qgis_new_project, tmp_path, qtbot):
    """An empty project is framed on the run (its UTM zone, its extent) in an event-loop pass of its own,
    once: framing it also at once, in the pass that adds the layer (QGIS Desktop's layer tree then gives
    the project the layer's EPSG:4326 anyway), held Desktop's UI thread 94 ms (bench stall profile)."""
    from qgis.core import QgsProject

    from wac_extractor.core.jobs.tracker import create_tracker
    from wac_extractor.core.planning.job_table import PlanRequest, plan_grid
    from wac_extractor.qgis_glue.layers import job_tiles_layer
    from wac_extractor.ui.job_model import JobTableModel
    from wac_extractor.ui.run_map import FRAME_AFTER_MS, RunMap

    plan = plan_grid(PlanRequest("2023-01-01", "2023-02-01", ["s1"], 85, 1), 664000, 5611120, "EPSG:32631",
                     window=200, gap=0, rows=2, cols=3)  # fmt: skip
    tracker = create_tracker(tmp_path / "jobs.gpkg", plan)
    run_map = RunMap(qgis_iface, JobTableModel(), lambda: str(tmp_path))
    run_map.start(tracker, str(tracker.path))
    project = QgsProject.instance()
    framed: list = []
    project.crsChanged.connect(lambda: framed.append(project.crs().authid()))
    run_map.show_jobs_layer(job_tiles_layer(tracker.path))
    assert framed == []  # not in the pass that adds the layer
    qtbot.waitUntil(lambda: bool(framed), timeout=5000)
    qtbot.wait(5 * FRAME_AFTER_MS)
    assert framed == ["EPSG:32631"]
    view = project.viewSettings().defaultViewExtent()
    assert view.crs() == project.crs() and 600 < view.width() < 1000  # 3 tiles of 200 m, with a margin
