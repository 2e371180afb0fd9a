"""The dock's job table: cells in C++ items, built off the UI thread, updated cell by cell."""

from __future__ import annotations

import threading

import pandas as pd
from qgis.PyQt.QtGui import QStandardItemModel

from wac_extractor.core.jobs.progress import progress_of
from wac_extractor.ui.job_model import COLUMNS, STATUS_COLOURS, JobTableModel, display_rows, item_columns
from wac_extractor.ui.panels.run_controls import RunControls


def snapshot(statuses, messages=None) -> pd.DataFrame:
    return pd.DataFrame({
        "status": statuses,
        "sentinel": [2] * len(statuses),
        "temporal_extent": [["2023-01-01", "2023-02-01"]] * len(statuses),
        "tile_id": [f"32631_{i}" for i in range(len(statuses))],
        "id": [f"j-{i}" for i in range(len(statuses))],
        "error_message": messages or [None] * len(statuses),
    })  # fmt: skip


def cell(model, row, column_name) -> str:
    return model.index(row, COLUMNS.index(column_name)).data()


def test_a_new_job_list_is_built_in_a_worker_and_shown_with_status_colours(qgis_app):
    jobs = snapshot(["not_started", "running", "error"], [None, None, "synthetic processing error"])
    built = []
    worker = threading.Thread(target=lambda: built.append(item_columns(display_rows(jobs))))
    worker.start()
    worker.join()
    model = JobTableModel()
    resets = []
    model.modelReset.connect(lambda: resets.append(True))
    assert model.set_jobs(jobs, display_rows(jobs), built[0])
    assert (model.rowCount(), model.columnCount(), len(resets)) == (3, len(COLUMNS), 1)
    assert [cell(model, r, "Status") for r in range(3)] == ["not_started", "running", "error"]
    assert cell(model, 1, "Window") == "2023-01-01 .. 2023-02-01" and cell(model, 2, "Sensor") == "S2"
    assert model.item(2, COLUMNS.index("Status")).background().color() == STATUS_COLOURS["error"]
    assert model.item(2, COLUMNS.index("Message")).toolTip() == "synthetic processing error"
    assert model.headerData(0, 1) == "Status"  # Qt.Horizontal
    assert model.job(1)["id"] == "j-1" and model.job(3) is None
    assert isinstance(model, QStandardItemModel)
    assert not {"data", "rowCount", "columnCount", "headerData"} & set(vars(JobTableModel))  # painting stays in C++


def test_a_snapshot_of_the_same_jobs_changes_only_the_cells_that_differ(qgis_app):
    model = JobTableModel()
    model.set_jobs(snapshot(["queued", "queued", "queued"]))
    changes, resets = [], []
    model.dataChanged.connect(lambda first, last: changes.append((first.row(), first.column(), last.row())))
    model.modelReset.connect(lambda: resets.append(True))

    assert model.set_jobs(snapshot(["queued", "finished", "queued"]))
    assert resets == [] and changes == [(1, COLUMNS.index("Status"), 1)] * len(changes) and changes
    assert cell(model, 1, "Status") == "finished"
    assert model.item(1, 0).background().color() == STATUS_COLOURS["finished"]
    assert not model.set_jobs(snapshot(["queued", "finished", "queued"]))  # nothing new: nothing signalled

    model.set_jobs(snapshot(["queued"] * 5))  # another job list: one reset
    assert resets == [True] and model.rowCount() == 5
    model.set_jobs(pd.DataFrame())
    assert model.rowCount() == 0 and model.columnCount() == len(COLUMNS)


def test_the_progress_counts_finished_jobs_still_downloading_apart(qgis_app):
    jobs = snapshot(["finished"] * 4 + ["running", "error"])
    jobs["result_status"] = ["ok", "failed", None, "downloading", None, None]
    progress = progress_of(jobs)
    assert (progress.done, progress.downloading) == (3, 2)  # 2 checked (ok, failed) + the error; 2 on their way
    controls = RunControls(dict)
    controls.show_progress(progress)
    assert controls.progress.format() == "3/6 jobs done, 2 downloading"
    jobs["result_status"] = ["ok"] * 4 + [None, None]
    controls.show_progress(progress_of(jobs))
    assert controls.progress.format() == "5/6 jobs done"
