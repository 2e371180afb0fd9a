"""Sign-in against the local backend's OIDC provider: device flow, stored refresh tokens, renewal, secrets."""

from __future__ import annotations

import http.server
import json
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from openeo.rest.auth.oidc import OidcException

from wac_extractor.core.backends.connect import check_backend
from wac_extractor.core.backends.signin import (
    BackendLogin,
    DeviceFlowUi,
    SignIn,
    SignInCancelledError,
    SignInRequiredError,
    sign_out,
    signed_in_as,
)
from wac_extractor.core.jobs.runner import BackendSpec, ExtractionRunner, SignInLostError
from wac_extractor.core.jobs.tracker import create_tracker
from wac_extractor.core.planning.job_table import PlanRequest, plan_grid

from .conftest import notebook_jobs


class Approver:
    """The person at the browser: records each prompt and approves its code (optionally after a delay)."""

    def __init__(self, backend, delay: float = 0.0, approve: bool = True):
        self.backend, self.delay, self.approve = backend, delay, approve
        self.cancel_when_shown = False
        self.prompts = []
        self.cancel = threading.Event()

    def show(self, prompt) -> None:
        self.prompts.append(prompt)
        if self.approve:
            threading.Timer(self.delay, self.backend.oidc, kwargs={"approve": prompt.user_code}).start()
        elif self.cancel_when_shown:
            self.cancel.set()

    def ui(self) -> DeviceFlowUi:
        return DeviceFlowUi(show=self.show, cancelled=self.cancel.is_set)


def never_prompt(prompt):
    raise AssertionError(f"asked for a device-code sign-in although a refresh token was stored: {prompt}")


def test_device_flow_shows_link_and_code_then_a_second_connection_reuses_the_refresh_token(
    backend, private_openeo_home
):
    approver = Approver(backend, delay=0.5)
    connection = BackendLogin(backend.url, SignIn("oidc", device_ui=approver.ui()))()

    assert signed_in_as(connection) == "Alice Analyst (alice)"
    (prompt,) = approver.prompts
    assert prompt.verification_uri == f"{backend.url}/oidc/device"
    assert prompt.user_code in prompt.link and len(prompt.user_code) == 9
    assert 0 < prompt.expires_in <= 300
    stored = json.loads(private_openeo_home.read_text())
    assert stored[f"{backend.url}/oidc"]["wac-extractor"]["refresh_token"]

    again = BackendLogin(backend.url, SignIn("oidc", device_ui=DeviceFlowUi(show=never_prompt)))()
    assert signed_in_as(again) == "Alice Analyst (alice)"
    assert backend.oidc()["grants"] == {"urn:ietf:params:oauth:grant-type:device_code": 1, "refresh_token": 1}


def test_without_a_stored_token_a_background_sign_in_asks_for_a_login_instead_of_waiting(backend):
    with pytest.raises(SignInRequiredError, match="sign in to"):
        BackendLogin(backend.url, SignIn("oidc"))()


def test_cancel_ends_a_pending_device_sign_in_within_seconds(backend):
    approver = Approver(backend, approve=False)
    threading.Timer(1.0, approver.cancel.set).start()
    started = time.monotonic()
    with pytest.raises(SignInCancelledError):
        BackendLogin(backend.url, SignIn("oidc", device_ui=approver.ui()))()
    assert len(approver.prompts) == 1
    assert time.monotonic() - started < 5


def test_sign_out_forgets_the_refresh_token(backend, private_openeo_home):
    BackendLogin(backend.url, SignIn("oidc", device_ui=Approver(backend).ui()))()
    assert sign_out(backend.url) == 1
    with pytest.raises(SignInRequiredError):
        BackendLogin(backend.url, SignIn("oidc"))()
    assert "refresh_token" not in private_openeo_home.read_text()


def test_client_credentials(backend):
    connection = BackendLogin(backend.url, SignIn("client_credentials", "wac-service", "service-secret"))()
    assert signed_in_as(connection) == "service-account-wac-service"
    with pytest.raises(OidcException, match="wrong client id or secret"):
        BackendLogin(backend.url, SignIn("client_credentials", "wac-service", "not-the-secret"))()
    assert "not-the-secret" not in repr(SignIn("client_credentials", "wac-service", "not-the-secret"))


def test_expired_access_tokens_are_renewed_by_themselves(backend):
    connection = BackendLogin(backend.url, SignIn("oidc", device_ui=Approver(backend).ui()))()
    backend.oidc(expire_access_tokens=True)
    assert connection.list_jobs() == []
    assert backend.oidc()["grants"]["refresh_token"] == 1


def test_check_backend_reports_what_the_jobs_need(backend):
    connection = BackendLogin(backend.url, SignIn("basic", "demo", "demo"))()
    report = check_backend(connection, user=signed_in_as(connection))
    assert report.ok and report.api_version == "1.2.0" and report.user == "demo"
    assert report.collections == {
        "SENTINEL1_GLOBAL_MOSAICS": ("2023-01-01", "2024-12-31"),
        "SENTINEL2_L2A": ("2015-07-06", None),
    }
    assert report.lines()[0] == f"openEO API 1.2.0 at {backend.url}, signed in as demo"


def small_plan():
    request = PlanRequest("2023-01-01", "2023-04-01", [1, 2], 85, 3, recipe="monthly")
    return plan_grid(request, west=664000, south=5611120, crs="EPSG:32631", rows=1, cols=2)


def all_files_text(*folders: Path) -> bytes:
    return b"".join(p.read_bytes() for folder in folders for p in folder.rglob("*") if p.is_file())


def test_a_run_whose_sign_in_is_revoked_waits_for_a_new_sign_in_and_finishes(backend, tmp_path, private_openeo_home):
    backend.configure(run_seconds=[1.5, 1.5])
    approver = Approver(backend, delay=0.3)
    login = BackendLogin(backend.url, SignIn("oidc", device_ui=approver.ui()))
    login()  # signed in before the run, as in the dock
    tracker = create_tracker(tmp_path / "jobs.gpkg", small_plan())
    runner = ExtractionRunner(tracker, tmp_path / "out", [(BackendSpec(backend.url, 2), login)], poll_interval=0.3)
    revoked = threading.Event()

    def revoke_once_running():
        while not any(j["status"] == "running" for j in backend.jobs()):
            time.sleep(0.1)
        backend.oidc(revoke=True)
        revoked.set()

    threading.Thread(target=revoke_once_running, daemon=True).start()
    summary = runner.run()

    assert revoked.is_set()
    assert len(approver.prompts) == 2  # the first sign-in, then the one the run waited for
    assert summary.counts == {"finished": 4} and summary.downloaded == 4
    assert len(backend.jobs()) == 4  # nothing created twice
    secrets = [json.loads(private_openeo_home.read_text())[f"{backend.url}/oidc"]["wac-extractor"]["refresh_token"]]
    secrets.append(runner._connections[next(iter(runner._connections))].auth.bearer.split("/")[-1])
    written = all_files_text(tmp_path / "out", tmp_path / "jobs_logs") + (tmp_path / "jobs.gpkg").read_bytes()
    for secret in secrets:
        assert secret.encode() not in written


def test_a_run_stops_cleanly_when_signing_in_again_fails(backend, tmp_path):
    backend.configure(run_seconds=[1.5, 1.5])
    approver = Approver(backend, delay=0.3)
    login = BackendLogin(backend.url, SignIn("oidc", device_ui=approver.ui()))
    login()
    approver.approve, approver.cancel_when_shown = False, True  # the second code is cancelled, not approved
    tracker = create_tracker(tmp_path / "jobs.gpkg", small_plan())
    runner = ExtractionRunner(tracker, tmp_path / "out", [(BackendSpec(backend.url, 2), login)], poll_interval=0.3)

    def revoke_once_running():
        while not any(j["status"] == "running" for j in backend.jobs()):
            time.sleep(0.1)
        backend.oidc(revoke=True)

    threading.Thread(target=revoke_once_running, daemon=True).start()
    with pytest.raises(SignInLostError, match="every job is kept"):
        runner.run()
    kept = tracker.read()
    assert len(kept) == 4 and kept["id"].notna().sum() >= 1
    assert set(kept["status"]) - {"not_started"} <= {"queued", "running", "queued_for_start", "created", "finished"}


def test_one_run_on_two_backends_each_with_its_own_sign_in_and_parallel_jobs(backend, tmp_path):
    """The local backend under two names: OIDC (device code) on one, a service account on the other."""
    other_url = backend.url.replace("127.0.0.1", "localhost")
    oidc = BackendLogin(backend.url, SignIn("oidc", device_ui=Approver(backend).ui()))
    service = BackendLogin(other_url, SignIn("client_credentials", "wac-service", "service-secret"))
    specs = [(BackendSpec(backend.url, parallel_jobs=1), oidc), (BackendSpec(other_url, parallel_jobs=3), service)]
    backend.configure(queue_seconds=[0.5, 0.5], run_seconds=[2, 2])  # long enough to see jobs side by side
    tracker = create_tracker(tmp_path / "jobs.gpkg", notebook_jobs())
    busiest = {}  # backend name -> most jobs active on it at once, sampled from the tracker
    done = threading.Event()

    def sample():
        while not done.is_set():
            jobs = tracker.snapshot()
            active = jobs[jobs["status"].isin(["created", "queued_for_start", "queued", "running"])]
            for name, count in active["backend_name"].value_counts().items():
                busiest[name] = max(busiest.get(name, 0), int(count))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        summary = ExtractionRunner(tracker, tmp_path / "out", specs, poll_interval=0.3).run()
    finally:
        done.set()
        sampler.join()
    assert summary.counts == {"finished": 8} and summary.downloaded == 8
    one, three = backend.url.split("//")[1], other_url.split("//")[1]
    assert set(tracker.read()["backend_name"]) == {one, three}
    assert busiest[one] == 1 and 1 < busiest[three] <= 3  # each backend's own parallel limit
    assert len(backend.jobs()) == 8


def test_tls_verification_is_on(tmp_path):
    """A backend with a self-signed certificate is refused, not silently trusted."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)  # fmt: skip
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(requests.exceptions.SSLError):
            BackendLogin(f"https://127.0.0.1:{server.server_address[1]}", SignIn("none"), retry=False)()
    finally:
        server.shutdown()


def test_check_backend_reports_missing_collections_and_processes(backend):
    """A backend that lacks what the jobs need (hidden here) is reported before anything runs."""
    backend.configure(hidden_collections=["SENTINEL1_GLOBAL_MOSAICS"], hidden_processes=["apply_kernel", "quantiles"])
    connection = BackendLogin(backend.url, SignIn("basic", "demo", "demo"))()
    report = check_backend(connection, user=signed_in_as(connection))
    assert not report.ok
    assert report.missing_collections == ["SENTINEL1_GLOBAL_MOSAICS"]
    assert report.missing_processes == ["apply_kernel", "quantiles"]  # the LCFM recipe's, read from its graphs
    lines = report.lines()
    assert "missing collections: SENTINEL1_GLOBAL_MOSAICS" in lines
    assert "missing processes: apply_kernel, quantiles" in lines
