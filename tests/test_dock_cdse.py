"""The dock on a CDSE-like backend: job options, re-runs, the account's job limit, a typed balance."""

from __future__ import annotations

import pytest
from qgis.core import Qgis, QgsApplication, QgsGeometry

from wac_extractor.core.backends.connect import CDSE_URL
from wac_extractor.ui.panels.backends import BackendEntry

from .test_dock import fresh_dock, use_local_backend


@pytest.fixture
def dock(qgis_iface, qgis_canvas, qgis_new_project, backend, tmp_path, qtbot):
    dock = fresh_dock(qgis_iface, qgis_canvas)
    use_local_backend(dock, backend.url, tmp_path)
    qgis_iface.messageBar().clearWidgets()
    qgis_iface.messageBar().clear_messages()
    yield dock
    QgsApplication.taskManager().cancelAll()
    # A test that failed mid-run leaves its task running: wait for it to end, so the failure is reported as
    # one (QGIS tearing down under a running task crashed the session).
    qtbot.waitUntil(lambda: dock.task is None, timeout=30_000)


def four_s2_jobs(dock) -> int:
    """Four Sentinel-2 jobs: a 20 x 20 km AOI on the 10 km grid."""
    dock.add_aoi(QgsGeometry.fromWkt("POLYGON((5.30 50.60, 5.50 50.60, 5.50 50.72, 5.30 50.72, 5.30 50.60))"))
    dock.s1.setChecked(False)
    dock.update_preview()
    return len(dock.plan)


def test_job_options_typed_in_the_dock_reach_the_backend_and_a_bad_line_is_marked(dock, backend, qtbot):
    jobs = four_s2_jobs(dock)
    dock.output_panel.job_options.setPlainText("executor-memory 4G")
    dock.run_button.click()
    assert dock.task is None and "job option 'executor-memory 4G': write KEY=VALUE" in dock.problem.text()
    assert "border" in dock.output_panel.job_options.styleSheet()  # marked at its field
    dock.output_panel.job_options.setPlainText("executor-memory=4G\npython-memory=3G")
    dock.update_preview()
    dock.run_button.click()
    qtbot.waitUntil(lambda: dock.task is None, timeout=120_000)
    sent = [job["job_options"] for job in backend.jobs()]
    assert sent == [{"executor-memory": "4G", "python-memory": "3G"}] * jobs


def test_a_run_on_an_account_that_allows_2_jobs_says_so_once_and_finishes(dock, backend, qtbot, qgis_iface):
    backend.profile("cdse", s1_error_share=0, s1_lost_share=0, queue_seconds=[0.3, 0.3], run_seconds=[1, 1])
    jobs = four_s2_jobs(dock)
    entries = dock.backends.entries
    dock.backends.set_entries([BackendEntry(CDSE_URL, enabled=False),
                               BackendEntry(backend.url, 4, True, "basic", entries[1].authcfg)])  # fmt: skip
    dock.run_button.click()
    qtbot.waitUntil(lambda: dock.task is None, timeout=180_000)
    assert list(dock.tracker.read()["status"]) == ["finished"] * jobs
    said = [m for m in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Info) if "at most 2" in m]
    assert len(said) == 1 and "runs at most 2 of your jobs at once (4 asked): running 2 at a time" in said[0]


def test_failures_are_shown_by_cause_in_the_dock(dock, backend, qtbot):
    backend.profile("cdse", memory_scale=8, resolution=100, concurrent_job_limit=0)  # every S2 job out of memory
    jobs = four_s2_jobs(dock)
    dock.output_panel.reruns.setValue(0)
    dock.run_button.click()
    qtbot.waitUntil(lambda: dock.task is None, timeout=120_000)
    assert dock.run_controls.failures.text() == f"{jobs} failed: {jobs} out of memory, re-run with more memory"
    messages = [dock.model.item(row, dock.model.columnCount() - 1).text() for row in range(jobs)]
    assert all(message.startswith("out of memory: ") for message in messages)


def test_a_typed_credit_balance_is_what_the_over_budget_warning_uses(dock, backend, qtbot, qgis_iface):
    backend.profile("cdse", s1_error_share=0, s1_lost_share=0, concurrent_job_limit=0)  # no budget in /me
    four_s2_jobs(dock)
    dock.output_panel.credit_balance.setValue(0.5)  # less than one job costs
    dock.run_button.click()
    qtbot.waitUntil(lambda: dock.task is None, timeout=120_000)
    warned = [m for m in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Warning) if "left in your budget" in m]
    assert len(warned) == 1
    assert "budget left" in dock.credits.text()
