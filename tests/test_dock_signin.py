"""The dock's sign-in panel against the local OIDC provider: device code, refresh tokens, secrets, test."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsGeometry, QgsProject, QgsRectangle, QgsSettings
from qgis.PyQt.QtCore import QDate

from wac_extractor.qgis_glue.credentials import save_credentials

from .conftest import unlock_auth_database
from .test_dock import fresh_dock, use_backend

ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture
def dock(qgis_iface, qgis_canvas, qgis_new_project, backend, tmp_path):
    dock = fresh_dock(qgis_iface, qgis_canvas)
    dock.resize(420, 1000)
    dock.show()
    dock.output.setFilePath(str(tmp_path / "out"))
    dock.tracker_file.setFilePath(str(tmp_path / "jobs.gpkg"))
    yield dock
    QgsApplication.taskManager().cancelAll()


def test_device_code_sign_in_then_a_run_needs_no_prompt_and_writes_no_secret(
    dock, backend, qtbot, tmp_path, private_openeo_home
):
    panel = dock.backends
    use_backend(dock, backend.url)
    panel.sign_in_button.click()
    qtbot.waitUntil(panel.device_box.isVisible, timeout=20_000)
    code = panel.code_label.text()
    assert re.fullmatch(r"[0-9A-F]{4}-[0-9A-F]{4}", code)
    assert f"{backend.url}/oidc/device" in panel.link_label.text() and code in panel.link_label.toolTip()
    assert re.search(r"\d:\d\d left", panel.countdown_label.text())
    assert not panel.sign_in_button.isEnabled()
    ARTIFACTS.mkdir(exist_ok=True)
    panel.grab().save(str(ARTIFACTS / "login_panel.png"))

    backend.oidc(approve=code)  # the user approves in the browser
    qtbot.waitUntil(lambda: panel.task is None, timeout=20_000)
    assert not panel.device_box.isVisible()
    assert f"Signed in to {backend.url} as Alice Analyst (alice)" in panel.status.text()

    # A run afterwards uses the stored refresh token: no second code.
    dock.add_aoi(QgsGeometry.fromRect(QgsRectangle(5.36, 50.66, 5.42, 50.70)))
    dock.update_preview()
    assert dock.run_button.isEnabled(), dock.problem.text()
    dock.run_button.click()
    qtbot.waitUntil(lambda: dock.task is None, timeout=120_000)
    assert set(dock.tracker.count_by_status()) == {"finished"}
    assert not panel.device_box.isVisible()
    assert backend.oidc()["grants"]["urn:ietf:params:oauth:grant-type:device_code"] == 1

    # Secrets: the refresh token (openeo's store) appears in no file the run or the dock wrote.
    refresh = json.loads(private_openeo_home.read_text())[f"{backend.url}/oidc"]["wac-extractor"]["refresh_token"]
    access = backend.oidc()["access_tokens"]  # every access token the provider handed out
    secrets = [refresh.encode()] + [token.encode() for token in access]
    assert len(secrets) >= 2
    QgsProject.instance().write(str(tmp_path / "project.qgz"))
    QgsSettings().sync()
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "xdg-data" not in p.parts]
    written.append(Path(QgsSettings().fileName()))
    assert len(written) > 5 and any(p.suffix == ".qgz" for p in written)
    for path in written:
        contents = path.read_bytes()
        if zipfile.is_zipfile(path):  # a .qgz is a zip: grep what is inside, not the compressed bytes
            with zipfile.ZipFile(path) as archive:
                contents = b"".join(archive.read(name) for name in archive.namelist())
        assert not any(secret in contents for secret in secrets), path


def test_cancel_ends_a_pending_sign_in(dock, backend, qtbot):
    panel = dock.backends
    use_backend(dock, backend.url)
    panel.sign_in_button.click()
    qtbot.waitUntil(panel.device_box.isVisible, timeout=20_000)
    panel.cancel_button.click()
    assert not panel.device_box.isVisible() and "cancelled" in panel.status.text()
    qtbot.waitUntil(lambda: panel.task is None, timeout=10_000)  # the polling task ends on its own
    assert panel.sign_in_button.isEnabled() and panel.status.text() == "Sign-in cancelled."
    assert panel.signed_in == {}


def test_client_credentials_from_the_auth_database_and_no_secret_in_settings_or_tracker(dock, backend, qtbot, tmp_path):
    unlock_auth_database()
    authcfg = save_credentials("WAC service account", "wac-service", "service-secret", backend.url)
    use_backend(dock, backend.url, "client_credentials", authcfg)
    panel = dock.backends
    assert panel.authcfg.isVisible() and panel.authcfg.configId() == authcfg
    panel.sign_in_button.click()
    qtbot.waitUntil(lambda: panel.task is None, timeout=20_000)
    assert "as service-account-wac-service" in panel.status.text()
    dock.add_aoi(QgsGeometry.fromRect(QgsRectangle(5.36, 50.66, 5.42, 50.70)))
    dock.update_preview()
    dock.run_button.click()
    qtbot.waitUntil(lambda: dock.task is None, timeout=120_000)
    assert set(dock.tracker.count_by_status()) == {"finished"}
    QgsSettings().sync()
    saved = Path(QgsSettings().fileName()).read_text()
    assert authcfg in saved and "service-secret" not in saved
    for path in [p for p in tmp_path.rglob("*") if p.is_file()]:
        assert b"service-secret" not in path.read_bytes(), path


def test_test_connection_reports_and_its_dates_validate_the_form(dock, backend, qtbot):
    panel = dock.backends
    use_backend(dock, backend.url, "none")
    panel.test_button.click()
    qtbot.waitUntil(lambda: panel.task is None, timeout=20_000)
    assert "openEO API 1.2.0" in panel.status.text()
    assert "SENTINEL1_GLOBAL_MOSAICS: 2023-01-01 to 2024-12-31" in panel.status.text()
    dock.add_aoi(QgsGeometry.fromRect(QgsRectangle(5.36, 50.66, 5.42, 50.70)))
    dock.s1.setChecked(True)
    dock.start_date.setDate(QDate(2022, 6, 1))
    dock.end_date.setDate(QDate(2022, 7, 1))
    dock.update_preview()
    assert not dock.run_button.isEnabled()
    assert "SENTINEL1_GLOBAL_MOSAICS covers 2023-01-01 to 2024-12-31" in dock.problem.text()
    assert "c62828" in dock.start_date.styleSheet()


def test_a_plain_http_backend_on_another_host_is_warned_about(dock):
    dock.backends.add_backend("http://openeo.example.org")
    assert "is not HTTPS" in dock.backends.status.text()
    dock.backends.add_backend("http://127.0.0.1:1")
    assert "HTTPS" not in dock.backends.status.text()


def test_a_run_that_loses_its_sign_in_shows_a_new_code_and_carries_on(dock, backend, qtbot):
    panel = dock.backends
    use_backend(dock, backend.url)
    panel.sign_in_button.click()
    qtbot.waitUntil(panel.device_box.isVisible, timeout=20_000)
    backend.oidc(approve=panel.code_label.text())
    qtbot.waitUntil(lambda: panel.task is None, timeout=20_000)
    backend.configure(run_seconds=[2, 2])
    dock.add_aoi(QgsGeometry.fromRect(QgsRectangle(5.36, 50.66, 5.42, 50.70)))
    dock.update_preview()
    dock.run_button.click()
    qtbot.waitUntil(lambda: any(j["status"] == "running" for j in backend.jobs()), timeout=60_000)
    backend.oidc(revoke=True)  # e.g. the refresh token expired or was revoked by the provider

    qtbot.waitUntil(panel.device_box.isVisible, timeout=60_000)
    assert "run is paused until you sign in" in panel.device_title.text()
    backend.oidc(approve=panel.code_label.text())
    qtbot.waitUntil(lambda: dock.task is None, timeout=120_000)
    assert set(dock.tracker.count_by_status()) == {"finished"}
    assert len(backend.jobs()) == len(dock.tracker.read())  # nothing created twice
    assert not panel.device_box.isVisible()

    panel.sign_out_button.click()
    qtbot.waitUntil(lambda: panel.task is None, timeout=20_000)
    assert "Signed out: 1 stored sign-in(s) forgotten." in panel.status.text()
