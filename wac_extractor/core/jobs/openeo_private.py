"""Every use of a private name of the openeo client, in one place.

openeo documents ``MultiBackendJobManager`` (``add_backend``, ``run_jobs``, ``start_job``, the
``on_job_*`` hooks, ``get_job_dir``) and ``JobDatabaseInterface``; the runner drives it through those
alone. What follows has no public way yet. Each reliance has a test in ``tests/test_openeo_reliances.py``
that fails when an openeo release changes it, and ``requirements.txt`` declares the releases tested.
"""

from __future__ import annotations

import logging
import threading

import pandas as pd
import requests
from openeo import Connection
from openeo.extra.job_management import CsvJobDatabase, MultiBackendJobManager

# 1. The columns the job manager needs in a job table, with their defaults and dtypes (a tracker made
#    by the plugin or the notebook's CSV must have them): MultiBackendJobManager._column_requirements.


def normalize_job_table(df: pd.DataFrame) -> pd.DataFrame:
    """Adds the columns ``MultiBackendJobManager`` needs (``status``, ``id``, ``backend_name``...) when missing."""
    return MultiBackendJobManager._column_requirements.normalize_df(df)


def job_table_dtypes() -> dict:
    """The dtypes of those columns, for reading a CSV job table."""
    return MultiBackendJobManager._column_requirements.dtype_mapping()


# 2. Merging updated rows into a CSV job database's frame (what its own persist() does before writing).


def merge_into_csv_frame(database: CsvJobDatabase, df: pd.DataFrame) -> None:
    database._merge_into_df(df)


# 3. The OIDC token renewer's own HTTP session (``Connection._oidc_auth_renewer._requests``): closed with
#    the connection, or its socket is left to the garbage collector (a ResourceWarning per run).


def close_oidc_renewer_session(connection: Connection) -> None:
    renewer_session = getattr(getattr(connection, "_oidc_auth_renewer", None), "_requests", None)
    if isinstance(renewer_session, requests.Session):
        renewer_session.close()


# 4. Log records that repeat, with a traceback, what the runner reports itself: openeo's job manager
#    and connection log under their private module names.
MANAGER_LOGGER = "openeo.extra.job_management._manager"
CONNECTION_LOGGER = "openeo.rest._connection"


class RunnerThreadNoise(logging.Filter):
    """Drops openeo's "Failed to start job for <whole row>" (with a traceback) and "Failed to parse API
    error response" on a runner's own thread: the runner records the reason in the tracker and says
    what it does next ("created again in 2 s"). Anywhere else in QGIS (another plugin) they pass."""

    NOISE = ("Failed to start job for", "Failed to parse API error response")
    active = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not (getattr(self.active, "run", False) and record.getMessage().startswith(self.NOISE))


NOISE_FILTER = RunnerThreadNoise()
for _name in (MANAGER_LOGGER, CONNECTION_LOGGER):
    logging.getLogger(_name).addFilter(NOISE_FILTER)
