"""What the runner relies on in openeo beyond its documented API, one test per reliance.

``make test`` runs this file with the newest and the oldest supported openeo (requirements.txt): a
release that changes one of these fails here, by name, before a user's run does.
"""

from __future__ import annotations

import logging

import pandas as pd
import requests
from openeo.extra.job_management import CsvJobDatabase, JobDatabaseInterface, MultiBackendJobManager

from wac_extractor.core.backends.signin import BackendLogin, SignIn, close_connection, connect
from wac_extractor.core.jobs import openeo_private
from wac_extractor.core.jobs.retry import mount_resilient
from wac_extractor.qgis_glue import dependencies


def test_requirements_declare_the_range_the_plugin_checks():
    lines = (dependencies.requirements_file()).read_text().splitlines()
    assert f"openeo{dependencies.OPENEO_RANGE}" in [line.strip() for line in lines]


def test_the_job_table_columns_come_from_the_manager():
    table = openeo_private.normalize_job_table(pd.DataFrame({"title": ["a", "b"]}))
    assert {"status", "id", "backend_name", "start_time", "costs"} <= set(table.columns)
    assert table["status"].tolist() == ["not_started", "not_started"]
    assert {"status", "id", "backend_name"} <= set(openeo_private.job_table_dtypes())


def test_a_csv_job_database_merges_updated_rows(tmp_path):
    database = CsvJobDatabase(tmp_path / "jobs.csv").initialize_from_df(pd.DataFrame({"title": ["a", "b"]}))
    database.df  # noqa: B018 (reads the file into the frame the merge updates)
    openeo_private.merge_into_csv_frame(database, pd.DataFrame([{"status": "queued", "id": "j-1"}], index=[1]))
    assert database.df.loc[1, "status"] == "queued" and database.df.loc[1, "id"] == "j-1"
    assert database.df.loc[0, "status"] == "not_started"


def test_an_oidc_connection_has_its_renewer_session_closed(backend, monkeypatch):
    connection = BackendLogin(backend.url, SignIn("client_credentials", "wac-service", "service-secret"))()
    renewer = connection._oidc_auth_renewer._requests  # the private name openeo_private reaches
    assert isinstance(renewer, requests.Session)
    closed = []
    monkeypatch.setattr(renewer, "close", lambda: closed.append(True))
    close_connection(connection)
    assert closed == [True]


class _Recording(JobDatabaseInterface):
    """A one-row job database that records what the manager asks, and can answer 'nothing left'."""

    def __init__(self, stop_after: int = 10):
        self.df = openeo_private.normalize_job_table(pd.DataFrame({"title": ["a"]}))
        self.calls = []
        self.stop_after = stop_after

    def exists(self):
        return True

    def count_by_status(self, statuses=()):
        self.calls.append(("count", tuple(statuses)))
        if statuses and sum(1 for c in self.calls if c[0] == "count" and c[1]) > self.stop_after:
            return {}
        counts = self.df["status"].value_counts().to_dict()
        return {s: n for s, n in counts.items() if not statuses or s in statuses}

    def get_by_status(self, statuses, max=None):  # noqa: A002
        self.calls.append(("get", tuple(statuses)))
        return self.df[self.df["status"].isin(statuses)]

    def get_by_indices(self, indices):
        return self.df.loc[list(indices)]

    def persist(self, df):
        self.df.update(df)


def _manager(backend):
    manager = MultiBackendJobManager(poll_sleep=0, root_dir=None)
    connection = connect(backend.url, "basic", "demo", "demo")
    mount_resilient(connection.session, connection.root_url)
    manager.add_backend("local", connection=connection, parallel_jobs=1)
    return manager, connection


def test_run_jobs_asks_the_job_database_before_each_poll_and_ends_when_it_says_nothing_is_left(backend):
    """The runner paces the polls in count_by_status and ends the manager's loop by answering {} there."""
    manager, connection = _manager(backend)
    database = _Recording(stop_after=2)
    started = []
    manager.run_jobs(start_job=lambda row, **kwargs: started.append(row.name), job_db=database)
    asks = [i for i, call in enumerate(database.calls) if call[0] == "count" and "not_started" in call[1]]
    launches = [i for i, call in enumerate(database.calls) if call == ("get", ("not_started",))]
    assert len(asks) == 2 and launches and asks[0] < launches[0] < asks[1]  # asked, launched, asked: none left
    assert started == [0]  # start_job returned None: the row was skipped, no further launch
    close_connection(connection)

    stopped = _Recording(stop_after=0)  # "nothing left" at once: the row is never started
    manager.run_jobs(start_job=lambda row, **kwargs: started.append("again"), job_db=stopped)
    assert started == [0] and stopped.df.loc[0, "status"] == "not_started"


def test_our_retry_adapter_stays_in_charge_after_the_manager_mounts_its_own(backend):
    """The manager mounts an adapter that retries POST on http(s)://; ours, under the root URL, wins."""
    manager, connection = _manager(backend)
    manager.run_jobs(start_job=lambda row, **kwargs: None, job_db=_Recording(stop_after=1))
    assert "POST" in connection.session.adapters["http://"].max_retries.allowed_methods  # the manager's own
    ours = connection.session.get_adapter(connection.root_url + "/jobs").max_retries
    assert "POST" not in ours.allowed_methods and ours.respect_retry_after_header
    close_connection(connection)


def test_failed_starts_are_logged_on_the_manager_logger_the_runner_filters(backend, caplog):
    manager, connection = _manager(backend)

    def refuse(row, **kwargs):
        raise requests.exceptions.ConnectionError("no answer")

    with caplog.at_level(logging.WARNING):
        manager.run_jobs(start_job=refuse, job_db=_Recording(stop_after=1))
    assert any(r.name == openeo_private.MANAGER_LOGGER and r.getMessage().startswith("Failed to start job for")
               for r in caplog.records)  # fmt: skip
    close_connection(connection)


def test_unparsable_error_answers_are_logged_on_the_connection_logger_the_runner_filters(backend, caplog):
    connection = connect(backend.url, "basic", "demo", "demo")
    backend.faults({"status": 502, "method": "GET", "path": "^/jobs$", "times": 1, "body": "empty"})
    try:
        with caplog.at_level(logging.WARNING):
            try:
                connection.get("/jobs", expected_status=200)
            except Exception:  # noqa: BLE001 (the error itself is not what this test is about)
                pass
    finally:
        backend.faults()
        close_connection(connection)
    assert any(r.name == openeo_private.CONNECTION_LOGGER and r.getMessage().startswith(
        "Failed to parse API error response") for r in caplog.records)  # fmt: skip
