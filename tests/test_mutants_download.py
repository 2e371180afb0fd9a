"""The download and the result check, edge by edge, without a backend (issue 26: mutation score of download.py).

``stream_to_file`` gets a fake session here (the runner tests drive it through the local backend, which
a mutation run does not start); ``check_netcdf`` gets NetCDFs written by ``test_result_check.py``'s
helper. tests/README.md lists the mutant each test was seen failing on.
"""

from __future__ import annotations

import threading
from collections import namedtuple

import numpy as np
import pytest
import requests
from osgeo import gdal, osr

from wac_extractor.core.results import download
from wac_extractor.core.results.download import (
    CHUNK_BYTES,
    FREE_SPACE_MARGIN,
    MAX_MESSAGE_CHARS,
    DownloadCancelled,
    DownloadError,
    check_netcdf,
    safe_asset_name,
    same_origin,
    stream_to_file,
)

from .test_result_check import EXTENT, NORTH, RES, SIZE, WEST, check, write_netcdf

HREF = "https://storage.example/results/openEO.nc"


class FakeResponse:
    def __init__(self, chunks, status=200, length=None, error=None):
        self.chunks, self.status_code, self.error = chunks, status, error
        self.headers = {} if length is None else {"Content-Length": str(length)}
        self.chunk_sizes = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def iter_content(self, size):
        self.chunk_sizes.append(size)
        yield from self.chunks
        if self.error:
            raise self.error


class FakeSession:
    def __init__(self, response=None, error=None):
        self.response, self.error, self.calls = response, error, []

    def get(self, href, **kwargs):
        self.calls.append((href, kwargs))
        if self.error:
            raise self.error
        return self.response


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_asset_names_are_reduced_to_a_plain_file_name():
    assert safe_asset_name("openEO.nc") == "openEO.nc"
    assert safe_asset_name("../../x/evil.nc") == "evil.nc"
    assert safe_asset_name("C:\\temp\\a b$.nc") == "a_b_.nc"
    assert safe_asset_name("  name-1_2.tif  ") == "name-1_2.tif"
    assert safe_asset_name("x" * 300) == "x" * 200
    for bad in ("", None, ".", "..", "a/..", ".hidden", "dir/"):
        with pytest.raises(DownloadError, match=r"is not a plain file name; the backend's result is refused\.$"):
            safe_asset_name(bad)
    with pytest.raises(DownloadError) as refused:
        safe_asset_name("../..")
    assert str(refused.value) == "asset name '../..' is not a plain file name; the backend's result is refused."


def test_same_origin_is_scheme_host_and_port():
    assert same_origin("https://openeo.example/jobs/1/results", "https://openeo.example")
    assert same_origin("https://OPENEO.example:443/x", "https://openeo.example:443/openeo/1.2")
    assert not same_origin("http://openeo.example/x", "https://openeo.example")
    assert not same_origin("https://storage.example/x", "https://openeo.example")
    assert not same_origin("https://openeo.example:8443/x", "https://openeo.example")


def test_a_complete_download_appears_whole_and_leaves_no_part_file(tmp_path):
    response = FakeResponse([b"abc", b"defg"], length=7)
    session = FakeSession(response)
    auth = object()
    assert stream_to_file(session, HREF, tmp_path / "openEO.nc", auth=auth) == 7
    assert (tmp_path / "openEO.nc").read_bytes() == b"abcdefg"
    assert leftovers(tmp_path) == ["openEO.nc"]
    assert session.calls == [(HREF, {"stream": True, "auth": auth, "timeout": 60})]
    assert response.chunk_sizes == [CHUNK_BYTES]
    # no Content-Length: whatever arrives, up to the cap
    assert stream_to_file(FakeSession(FakeResponse([b"xy"])), HREF, tmp_path / "b.nc", timeout=5, max_bytes=2) == 2
    assert (tmp_path / "b.nc").read_bytes() == b"xy"


def refused(session, tmp_path, **kwargs) -> str:
    with pytest.raises(DownloadError) as error:
        stream_to_file(session, HREF, tmp_path / "openEO.nc", **kwargs)
    assert leftovers(tmp_path) == [], "nothing may stay behind, not even the .part file"
    return str(error.value)


def test_each_failed_download_says_why_and_leaves_nothing(tmp_path):
    assert refused(FakeSession(FakeResponse([b"x"], status=404)), tmp_path) == f"GET {HREF} answered HTTP 404"
    assert refused(FakeSession(FakeResponse([b"abc"], length=11)), tmp_path, max_bytes=10) == (
        f"{HREF} is 11 bytes, above the limit of 10; refused."
    )
    assert refused(FakeSession(FakeResponse([b"abcdef", b"ghijk"])), tmp_path, max_bytes=10) == (
        f"{HREF} exceeds the limit of 10 bytes; refused."
    )
    assert refused(FakeSession(FakeResponse([b"abc"], length=8)), tmp_path) == (
        f"{HREF}: got 3 of 8 bytes (download cut off)"
    )
    assert refused(FakeSession(FakeResponse([b"abc"], length=0)), tmp_path) == (  # announced empty, sent 3
        f"{HREF}: got 3 of 0 bytes (download cut off)"
    )
    cut = requests.exceptions.ChunkedEncodingError("IncompleteRead")
    assert refused(FakeSession(FakeResponse([b"abc"], error=cut)), tmp_path) == (
        f"{HREF}: the connection closed early (download cut off: IncompleteRead)"
    )
    lost = requests.exceptions.ConnectionError("reset by peer")
    assert refused(FakeSession(error=lost), tmp_path) == f"GET {HREF} failed: reset by peer"
    # exactly at the limits: accepted
    assert stream_to_file(FakeSession(FakeResponse([b"ab", b"c"], length=3)), HREF, tmp_path / "ok", max_bytes=3) == 3


def test_a_download_larger_than_the_free_space_is_refused_before_writing(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    free = FREE_SPACE_MARGIN + 3_000_000
    monkeypatch.setattr(download.shutil, "disk_usage", lambda path: usage(free, 0, free))
    assert refused(FakeSession(FakeResponse([b"x"], length=3_000_001)), tmp_path) == (
        f"{HREF} needs 3 MB but {tmp_path} has {free / 1e6:,.0f} MB free; "
        "free some space or choose another output folder, then retry."
    )
    # what fits exactly is taken; so is a download of unknown or zero length on a nearly full disk
    fits = FakeSession(FakeResponse([b"x"] * 3, length=3_000_000))
    with pytest.raises(DownloadError, match="got 3 of 3000000 bytes"):  # it fit: the check came later
        stream_to_file(fits, HREF, tmp_path / "a.nc")
    free = 10
    assert stream_to_file(FakeSession(FakeResponse([b"xy"])), HREF, tmp_path / "b.nc") == 2
    assert stream_to_file(FakeSession(FakeResponse([], length=0)), HREF, tmp_path / "c.nc") == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    free = 6_000_000_000_000  # MB figures of terabytes: exact, not off by a few MB
    assert refused(FakeSession(FakeResponse([b"x"], length=7_000_000_000_000)), empty, max_bytes=10**13) == (
        f"{HREF} needs 7,000,000 MB but {empty} has 6,000,000 MB free; "
        "free some space or choose another output folder, then retry."
    )
    free = FREE_SPACE_MARGIN  # nothing left above the margin: even a 1-byte result is refused
    assert refused(FakeSession(FakeResponse([b"x"], length=1)), empty).startswith(f"{HREF} needs 0 MB")


def test_a_stop_between_chunks_cancels_and_leaves_nothing(tmp_path):
    stop = threading.Event()
    stop.set()
    with pytest.raises(DownloadCancelled) as cancelled:
        stream_to_file(FakeSession(FakeResponse([b"abc"], length=3)), HREF, tmp_path / "openEO.nc", stop=stop)
    assert str(cancelled.value) == HREF  # the runner logs which download the cancel stopped
    assert leftovers(tmp_path) == []
    assert stream_to_file(FakeSession(FakeResponse([b"abc"])), HREF, tmp_path / "x.nc", stop=threading.Event()) == 3


def test_a_result_holding_no_variable_says_it_holds_nothing(tmp_path):
    """A backend that sends a GeoTIFF with an .nc name: one band, no NetCDF variable name."""
    path = tmp_path / "openEO.nc"
    gdal.GetDriverByName("GTiff").Create(str(path), 4, 4, 1, gdal.GDT_Float32).FlushCache()
    assert check(path, ["VV", "VH"]) == ["openEO.nc lacks 2 of 2 expected variables (VV, VH); it holds nothing"]


def test_int16_is_checked_only_when_asked_and_its_bounds_are_allowed(tmp_path):
    loud = write_netcdf(tmp_path / "loud.nc", ["VV"], value=40_000)
    assert check_netcdf(loud, ["VV"]) == []  # int16 is off by default
    for value in (32767, -32768):
        assert check(write_netcdf(tmp_path / f"{value}.nc", ["VV"], value=value), ["VV"], int16=True) == [], value
    three = write_netcdf(tmp_path / "three.nc", ["A", "B", "C"], value=-40_000)
    assert check(three, ["A", "B", "C"], int16=True) == [
        "three.nc: 3 variables outside the int16 range (A -40000..-40000, B -40000..-40000 and 1 more)"
    ]


def test_a_missing_variable_does_not_stop_the_checks_of_the_others(tmp_path):
    path = write_netcdf(tmp_path / "openEO.nc", ["VV"], value=40_000)
    assert check(path, ["VH", "VV"], int16=True) == [
        "openEO.nc lacks 1 of 2 expected variables (VH); it holds VV",
        "openEO.nc: 1 variable outside the int16 range (VV 40000..40000)",
    ]


def test_a_variable_gdal_cannot_open_is_named_and_the_others_are_still_checked(tmp_path, monkeypatch):
    path = write_netcdf(tmp_path / "openEO.nc", ["A", "B", "C"], value=40_000)
    real_open = gdal.Open

    def open_but_not(name, *args):
        if str(name).endswith((":A", ":B")):
            raise RuntimeError("HDF error")
        return real_open(name, *args)

    monkeypatch.setattr(gdal, "Open", open_but_not)
    assert check(path, ["A", "B", "C"], int16=True) == [
        "openEO.nc: 2 variables GDAL cannot open (A, B)",
        "openEO.nc: 1 variable outside the int16 range (C 40000..40000)",
    ]


def write_without_crs(path, georeferenced, plain):
    """Variables with a CRS (a grid mapping) and variables without one, on the same 4 x 4 grid."""
    dataset = gdal.GetDriverByName("netCDF").CreateMultiDimensional(str(path), [], ["FORMAT=NC4"])
    root = dataset.GetRootGroup()
    f64, f32 = (gdal.ExtendedDataType.Create(t) for t in (gdal.GDT_Float64, gdal.GDT_Float32))
    y = root.CreateDimension("y", "HORIZONTAL_Y", None, SIZE)
    x = root.CreateDimension("x", "HORIZONTAL_X", None, SIZE)
    root.CreateMDArray("y", [y], f64).Write(NORTH - RES / 2 - RES * np.arange(SIZE, dtype="float64"))
    root.CreateMDArray("x", [x], f64).Write(WEST + RES / 2 + RES * np.arange(SIZE, dtype="float64"))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    for name in [*georeferenced, *plain]:
        array = root.CreateMDArray(name, [y, x], f32)
        if name in georeferenced:
            array.SetSpatialRef(srs)
        array.Write(np.full((SIZE, SIZE), 40_000, dtype="float32"))
    dataset = None
    return path


def test_a_variable_without_crs_is_named_and_the_others_are_still_checked(tmp_path):
    path = write_without_crs(tmp_path / "openEO.nc", ["C"], ["A", "B"])
    assert check(path, ["A", "B", "C"], int16=True) == [
        "openEO.nc: 2 variables without time steps or CRS (A, B)",
        "openEO.nc: 1 variable outside the int16 range (C 40000..40000)",
    ]


def test_one_variable_gdal_cannot_open_or_without_crs_is_counted_in_the_singular(tmp_path, monkeypatch):
    path = write_without_crs(tmp_path / "openEO.nc", ["B", "C"], ["A"])
    assert check(path, ["A", "B"]) == ["openEO.nc has 1 variable the job does not make (C)",
                                       "openEO.nc: 1 variable without time steps or CRS (A)"]  # fmt: skip
    real_open = gdal.Open
    monkeypatch.setattr(gdal, "Open", lambda name, *a: (_ for _ in ()).throw(RuntimeError()) if str(name).endswith(
        ":B") else real_open(name, *a))  # fmt: skip
    assert check(path, ["A", "B", "C"]) == ["openEO.nc: 1 variable GDAL cannot open (B)",
                                            "openEO.nc: 1 variable without time steps or CRS (A)"]  # fmt: skip


def test_messages_of_300_characters_are_kept_and_longer_ones_cut_to_300(tmp_path):
    name = "n" * 252 + ".nc"  # 255 characters, the longest file name
    exact = write_netcdf(tmp_path / name, ["VV", "EXTRA"])
    (kept,) = check(exact, ["VV"])
    assert kept == f"{name} has 1 variable the job does not make (EXTRA)" and len(kept) == MAX_MESSAGE_CHARS
    (tmp_path / "longer").mkdir()
    longer = write_netcdf(tmp_path / "longer" / name, ["VV", "EXTRA1"])
    (cut,) = check(longer, ["VV"])
    assert cut == f"{name} has 1 variable the job does not make (EXTRA"[: MAX_MESSAGE_CHARS - 3] + "..."
    assert len(cut) == MAX_MESSAGE_CHARS


def test_the_grid_is_compared_for_a_crs_given_as_text_and_skipped_without_crs(tmp_path):
    off = write_netcdf(tmp_path / "openEO.nc", ["VV"], west=WEST + 2 * RES)
    as_text = {**EXTENT, "crs": "EPSG:32631"}
    assert check_netcdf(off, ["VV"], spatial_extent=as_text) == [
        "openEO.nc covers (600040, 5599920, 600120, 5600000), not the job's extent (600000, 5599920, 600080, 5600000)"
    ]
    no_crs = {k: v for k, v in EXTENT.items() if k != "crs"}  # EPSG:4326 then: degrees, not compared
    assert check_netcdf(off, ["VV"], spatial_extent=no_crs) == []
