"""Shared fixtures: the local openEO backend (a real HTTP server in its own venv) and helpers."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
BACKEND_PYTHON = REPO / ".venv-backend" / "bin" / "python"
_PROVIDERS = []  # every provider registered by a test stays referenced: QGIS keeps using it, sip would drop it


def fresh_processing_provider():
    """The plugin's Processing provider, registered anew for the calling test module.

    A provider left by another module (its Python side possibly collected) failed its algorithms with
    "Error creating algorithm from createInstance()" when the whole suite ran in one process.
    """
    from processing.core.Processing import Processing
    from qgis.core import QgsApplication

    from wac_extractor.processing.provider import WacProcessingProvider

    Processing.initialize()
    registry = QgsApplication.processingRegistry()
    if registry.providerById("wac_extractor") is not None:
        registry.removeProvider("wac_extractor")
    provider = WacProcessingProvider()
    registry.addProvider(provider)
    _PROVIDERS.append(provider)
    return registry


class LocalBackend:
    """Handle on a running local backend: its URL and its /_control endpoints."""

    def __init__(self, url: str):
        self.url = url

    def control(self, path: str, payload=None):
        method = requests.post if payload is not None else requests.get
        response = method(f"{self.url}/_control/{path}", json=payload, timeout=10)
        response.raise_for_status()
        return response.json()

    def configure(self, **settings):
        return self.control("config", settings)

    def faults(self, *rules):
        return self.control("faults", {"rules": list(rules)})

    def jobs(self):
        return self.control("jobs")["jobs"]

    def requests(self):
        return self.control("requests")

    def reset(self):
        return self.control("reset", {})

    def storage(self):
        """The storage origin's URL and what reached it: [{"path", "authorization": bool}]."""
        return self.control("storage")

    def prefill(self, count: int, user: str = "demo", status: str = "finished", seconds=None):
        """``count`` older finished jobs in ``user``'s account (listed after the new ones, across pages).

        ``status="running"`` (or ``"queued"``): jobs another client of ``user`` runs now, for ``seconds`` (None:
        until canceled or reset); they count towards the cdse profile's concurrent job limit.
        """
        payload = {"user": user, "count": count}
        if status != "finished":
            payload.update(status=status, seconds=seconds)
        return self.control("prefill", payload)

    def profile(self, name: str, **settings):
        """Switch to profile ``name`` ("default", "cdse"), then apply ``settings``; ``reset()`` comes back."""
        return self.configure(profile=name, **settings)

    def oidc(self, **body):
        """The OIDC provider: ``approve=<user code>``, ``access_token_seconds``, ``revoke=True``..."""
        return self.control("oidc", body)


def notebook_jobs(recipe: str = "monthly"):
    """The notebook's 8 jobs (2 x 2 grid, 2023-01..03, S1 and S2).

    Tests about how jobs run plan the light ``monthly`` recipe; the LCFM recipe has tests of its own.
    """
    from wac_extractor.core.planning.job_table import PlanRequest, plan_grid

    request = PlanRequest("2023-01-01", "2023-04-01", [1, 2], 85, 3, recipe=recipe)
    return plan_grid(request, west=664000, south=5611120, crs="EPSG:32631")


def niceness() -> int:
    """The calling thread's nice value (Linux keeps one per thread)."""
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def daemon_thread(target, name: str = "wac-test-worker") -> threading.Thread:
    """Start ``target`` in a daemon thread: a test whose run never stops fails, it does not hang pytest's exit.

    Threads inherit the daemon flag, so the run's own threads (``call_in_background_thread``, the job manager's)
    started from it are daemons too.
    """
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def wait_until(condition, timeout: float = 30, what: str = "") -> None:
    """Poll ``condition`` every 0.1 s; raise AssertionError when it is still false after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"not reached within {timeout:g} s: {what or getattr(condition, '__name__', condition)}"
            )
        time.sleep(0.1)


LINGER_GRACE_S = 5


def lingering_threads():
    """Threads that would keep the process from ending cleanly: non-daemon ones (Python joins them at exit, for
    ever if they never end) and our runs' daemon threads (``wac-*``: killed mid-call at exit, GDAL's or Qt's C++
    code aborts the process with "FATAL: exception not rethrown")."""
    return [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and t.is_alive() and (not t.daemon or t.name.startswith("wac-"))
    ]


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """No hang after the session: a thread a failed test left running (a run that ignored its cancel, polling a
    backend that has stopped) would keep Python from exiting, where ``--timeout`` no longer applies. Give such
    threads a few seconds, then name them with their stacks and end the process with a failure."""
    deadline = time.monotonic() + LINGER_GRACE_S
    for thread in lingering_threads():
        thread.join(max(0.0, deadline - time.monotonic()))
    left = lingering_threads()
    if not left:
        return
    import faulthandler

    sys.stderr.write(
        f"\n{len(left)} thread(s) still running after the tests, which would hang pytest's exit: "
        f"{', '.join(t.name for t in left)}; their stacks:\n"
    )
    sys.stderr.flush()
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    sys.stderr.flush()
    sys.stdout.flush()
    status = getattr(config, "_wac_exitstatus", 1)
    os._exit(int(status) or 1)


def pytest_sessionfinish(session, exitstatus):
    session.config._wac_exitstatus = exitstatus


def start_backend(tmp_dir: Path, *extra_args: str):
    """Start ``python -m tests.local_backend`` on a free port; returns (process, url)."""
    if not BACKEND_PYTHON.exists():
        pytest.fail(f"{BACKEND_PYTHON} is missing: run 'make setup' first (it builds the local backend's venv).")
    port_file = tmp_dir / "port"
    log = open(tmp_dir / "backend.log", "w")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [str(BACKEND_PYTHON), "-m", "tests.local_backend", "--port", "0", "--port-file", str(port_file),
         "--work-dir", str(tmp_dir / "work"), *extra_args],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not port_file.exists() or not port_file.read_text().strip():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"local backend did not start:\n{(tmp_dir / 'backend.log').read_text()[-3000:]}")
        time.sleep(0.1)
    url = f"http://127.0.0.1:{port_file.read_text().strip()}"
    while True:
        try:
            requests.get(url + "/", timeout=2).raise_for_status()
            break
        except requests.RequestException:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail("local backend does not answer")
            time.sleep(0.1)
    return process, url


@contextlib.contextmanager
def running_backend(tmp_dir: Path, *extra_args: str):
    """A local backend process for the block (``start_backend``); stopped afterwards."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    process, url = start_backend(tmp_dir, *extra_args)
    try:
        yield LocalBackend(url), process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def local_backend(tmp_path_factory):
    """One local openEO backend per test session (free port); state reset before each use."""
    with running_backend(tmp_path_factory.mktemp("local-backend")) as (backend, _process):
        yield backend


@pytest.fixture
def backend(local_backend):
    """The session's local backend with default settings, no faults and no jobs."""
    local_backend.reset()
    yield local_backend
    local_backend.reset()


@pytest.fixture(autouse=True)
def private_openeo_home(tmp_path, monkeypatch):
    """openeo's refresh-token store and auth config in a temp dir: tests never touch the real home."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    return tmp_path / "xdg-data" / "openeo-python-client" / "refresh-tokens.json"


def unlock_auth_database():
    """QGIS's authentication database (pytest-qgis's profile), unlocked with a test master password."""
    from qgis.core import QgsApplication

    manager = QgsApplication.authManager()
    if not manager.masterPasswordIsSet():
        assert manager.setMasterPassword("wac-test-master-password", True), "cannot unlock the auth database"
    return manager


@pytest.fixture
def python_exe():
    return sys.executable
