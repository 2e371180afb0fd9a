"""Result folders a user can find by eye (issue 24): ``<sensor>_<tile>_<window>_<job id>``; old ones stay."""

import json
import threading
from pathlib import Path

import pandas as pd

from wac_extractor.core.jobs.downloads import ResultFetcher


def fetcher(output: Path) -> ResultFetcher:
    fetch = ResultFetcher(None, output, threading.Event(), emit=lambda *a, **k: None)
    fetch.shutdown()  # no download here: only where results go
    return fetch


def row(**extra) -> pd.Series:
    values = {"sentinel": 2, "tile_id": "32631_684000_5631120", "temporal_extent": '["2023-01-01", "2023-04-01"]'}
    return pd.Series({**values, **extra}, name=3)


def test_a_new_result_folder_names_sensor_tile_window_and_job(tmp_path):
    folder = fetcher(tmp_path).job_dir("j-0042", row(result_files=float("nan")))  # a CSV tracker's empty cell
    assert folder == tmp_path / "S2_32631_684000_5631120_2023-01-01_2023-04-01_j-0042"
    listed = fetcher(tmp_path).job_dir("j-7", row(temporal_extent=["2024-05-01", "2024-06-01"], sentinel=1))
    assert listed.name == "S1_32631_684000_5631120_2024-05-01_2024-06-01_j-7"


def test_an_older_trackers_results_keep_their_job_id_folder(tmp_path):
    """A resumed tracker whose results sit in ``<job id>/`` (earlier releases) finds them where they are."""
    assert fetcher(tmp_path).job_dir("j-1", row(result_files=json.dumps(["j-1/openEO.nc"]))) == tmp_path / "j-1"
    (tmp_path / "j-2").mkdir()  # a download begun by an earlier release
    assert fetcher(tmp_path).job_dir("j-2", row()) == tmp_path / "j-2"


def test_hostile_tile_ids_never_leave_the_output_folder(tmp_path):
    folder = fetcher(tmp_path).job_dir("../../j-3", row(tile_id="../../etc"))
    assert folder.parent == tmp_path and "/" not in folder.name and not folder.name.startswith(".")
