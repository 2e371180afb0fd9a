"""The LCFM recipe, executed for real by the local backend: the notebook's 8 jobs.

The Sentinel-2 mask is checked against a reconstruction written here in plain numpy from the raw
SCL of the same tiles (downloaded by a second, plain load_collection job): clouds eroded with a
radius-3 disc, then dilated with a radius-13 disc, saturated pixels, non-permanent snow dilated
with a radius-3 disc, and pixels masked on more than 90 % of their dates.
"""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pytest
from osgeo import gdal

from wac_extractor.core.backends.signin import connect
from wac_extractor.core.jobs.runner import BackendSpec, ExtractionRunner
from wac_extractor.core.jobs.tracker import create_tracker
from wac_extractor.core.recipes import lcfm
from wac_extractor.core.recipes.process_graphs import decode_cell, expected_result
from wac_extractor.core.recipes.sentinel import load_bands

from .conftest import notebook_jobs

gdal.UseExceptions()
pytestmark = pytest.mark.slow


def read(path, variable: str) -> np.ndarray:
    """All bands (time steps) of one NetCDF variable as (t, y, x), or (y, x) without time."""
    dataset = gdal.Open(f'NETCDF:"{path}":{variable}')
    values = dataset.ReadAsArray().astype("float64")
    return values


def band_dates(path, variable: str):
    dataset = gdal.Open(f'NETCDF:"{path}":{variable}')
    return [
        dt.date(1990, 1, 1) + dt.timedelta(days=float(dataset.GetRasterBand(i).GetMetadata()["NETCDF_DIM_t"]))
        for i in range(1, dataset.RasterCount + 1)
    ]


def disc_count(values: np.ndarray, radius: int) -> np.ndarray:
    """For each pixel, how many pixels of its disc are set (outside the image counts as 0)."""
    values = values.astype(np.int32)
    padded = np.pad(values, [(0, 0), (radius, radius), (radius, radius)])
    count = np.zeros_like(values)
    height, width = values.shape[1:]
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dx * dx + dy * dy <= radius * radius:
                count += padded[:, radius + dy : radius + dy + height, radius + dx : radius + dx + width]
    return count


def reference_mask(scl: np.ndarray) -> dict:
    """The LCFM SCL mask, per date, from the issue's rules (not from the process graph)."""
    observed = scl != 0
    clouds = np.isin(scl, [3, 8, 9, 10])
    saturated = scl == 1
    snow = scl == 11
    with np.errstate(invalid="ignore", divide="ignore"):
        dates = observed.sum(0)
        cover = {name: flag.sum(0) / dates for name, flag in (("clouds", clouds), ("saturated", saturated))}
        permanent = (snow.sum(0) / dates) / (1 - cover["clouds"] - cover["saturated"]) > 0.9
    snow_elsewhere = snow & ~permanent
    non_permanent_snow = (disc_count(snow_elsewhere, 3) > 0) & ~(snow & permanent)
    eroded = disc_count(~clouds, 3) == 0
    dilated = disc_count(eroded, 13) > 0
    mask = dilated | saturated | non_permanent_snow
    with np.errstate(invalid="ignore", divide="ignore"):
        mostly_masked = (mask & observed).sum(0) / dates > 0.9
    return {
        "mask": mask | mostly_masked,
        "clouds": clouds,
        "dilated_clouds": dilated,
        "permanent_snow": permanent,
        "non_permanent_snow": non_permanent_snow,
        "mostly_masked": mostly_masked,
    }


def download_raw(connection, row, folder):
    """B04 and SCL of a row's tile and window as the backend loads them (with the cloud filter)."""
    extent, window = decode_cell(row["spatial_extent"]), decode_cell(row["temporal_extent"])
    raw = load_bands("SENTINEL2_L2A", ["B04", "SCL"], extent, window, max_cloud_cover=row["max_cloud_cover"])
    job = connection.create_job(raw.save_result(format="netCDF"), title="raw B04 + SCL")
    job.start_and_wait(max_poll_interval=0.5, print=lambda *a: None)
    return job.get_results().download_files(folder)[0]


@pytest.fixture(scope="module")
def lcfm_run(local_backend, tmp_path_factory):
    """The notebook's 8 jobs with the LCFM recipe, run once for the module's tests."""
    local_backend.reset()
    folder = tmp_path_factory.mktemp("lcfm")
    url = local_backend.url
    tracker = create_tracker(folder / "jobs.gpkg", notebook_jobs(recipe="lcfm"))
    spec = BackendSpec(url=url, parallel_jobs=2)
    runner = ExtractionRunner(tracker, folder / "out", [(spec, lambda: connect(url, "basic", "demo", "demo"))],
                              poll_interval=0.5)  # fmt: skip
    summary = runner.run()
    jobs = tracker.read()
    files = {index: folder / "out" / decode_cell(row["result_files"])[0] for index, row in jobs.iterrows()}
    yield summary, jobs, files, folder
    local_backend.reset()


def test_the_notebook_grid_with_lcfm_finishes_with_checked_results(lcfm_run):
    summary, jobs, files, _ = lcfm_run
    assert summary.counts == {"finished": 8} and summary.downloaded == 8
    assert len(jobs) == 8 and jobs["recipe"].eq("lcfm").all() and jobs["result_status"].eq("ok").all()
    assert sorted(jobs["sentinel"]) == [1, 1, 1, 1, 2, 2, 2, 2]  # the loops below see both sensors
    for index, row in jobs.iterrows():
        subdatasets = [name.rsplit(":", 1)[-1] for name, _ in gdal.Open(str(files[index])).GetSubDatasets()]
        wanted = list(expected_result(row).variables)
        assert sorted(subdatasets) == sorted(wanted)
        assert len(wanted) == (15 if row["sentinel"] == 1 else 56)
        for variable in wanted:
            assert gdal.Open(f'NETCDF:"{files[index]}":{variable}').RasterCount == 1  # no time dimension


def test_sentinel1_percentiles_are_ordered_everywhere(lcfm_run):
    _, jobs, files, _ = lcfm_run
    assert len(jobs.index[jobs["sentinel"] == 1]) == 4  # not a loop over nothing
    for index in jobs.index[jobs["sentinel"] == 1]:
        for band in lcfm.S1_BANDS:
            p10, p25, p50, p75, p90 = (read(files[index], f"{band}_{p}") for p in lcfm.PERCENTILE_NAMES)
            assert np.isfinite(p50).all()
            assert (p10 <= p25).all() and (p25 <= p50).all() and (p50 <= p75).all() and (p75 <= p90).all()
        # The ratio is VH / VV in linear power: about -6.5 to -8.5 dB on the synthetic data, never dB values.
        ratio_db = 10 * np.log10(read(files[index], "VH_VV_P50"))
        assert -9.0 < ratio_db.min() and ratio_db.max() < -6.0


def test_sentinel2_is_masked_exactly_where_the_scl_says(local_backend, lcfm_run):
    _, jobs, files, folder = lcfm_run
    connection = connect(local_backend.url, "basic", "demo", "demo")
    branches = {"isolated clouds eroded": 0, "permanent snow kept": 0, "snow once masked": 0, "mostly masked": 0}
    assert len(jobs[jobs["sentinel"] == 2]) == 4  # not a loop over nothing
    for index, row in jobs[jobs["sentinel"] == 2].iterrows():
        raw = download_raw(connection, row, folder / f"raw{index}")
        scl, red = read(raw, "SCL"), read(raw, "B04")
        reference = reference_mask(scl)
        valid = ~reference["mask"] & np.isfinite(red)
        months = [(day.year, day.month) for day in band_dates(raw, "B04")]
        assert sorted(set(months)) == [(2023, 1), (2023, 2), (2023, 3)]
        for k, month in enumerate(sorted(set(months)), start=1):
            in_month = np.array([m == month for m in months])
            kept = valid[in_month].any(0)
            result = read(files[index], f"B04_M{k}")
            assert np.array_equal(np.isfinite(result), kept), f"job {index} month {k}: masked pixels differ"
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels: masked on every date of the month
                expected = np.nanmedian(np.where(valid[in_month], red[in_month], np.nan), axis=0)
            assert np.allclose(result[kept], expected[kept], atol=0.5)
        # Percentiles exist where any date is kept, and are ordered.
        anywhere = valid.any(0)
        p10, p50, p90 = (read(files[index], f"NDVI_{p}") for p in ("P10", "P50", "P90"))
        assert np.array_equal(np.isfinite(p50), anywhere)
        assert (p10[anywhere] <= p50[anywhere]).all() and (p50[anywhere] <= p90[anywhere]).all()
        assert -10000 <= np.nanmin(p10) and np.nanmax(p90) <= 10000
        branches["isolated clouds eroded"] += int((reference["clouds"] & ~reference["dilated_clouds"] & valid).sum())
        branches["permanent snow kept"] += int((reference["permanent_snow"] & (scl == 11) & valid).sum())
        branches["snow once masked"] += int((reference["non_permanent_snow"] & (scl == 11)).sum())
        branches["mostly masked"] += int(reference["mostly_masked"].sum())
    assert all(branches.values()), f"a branch of the mask never showed in the results: {branches}"
