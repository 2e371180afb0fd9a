"""Deterministic, Sentinel-like synthetic data for the local openEO backend.

Values depend only on the absolute UTM coordinates, the date and the band, never on the job, so
neighbouring tiles are seamless (a mosaic shows no seams) and a rerun gives identical files.

- Sentinel-2 L2A: a scene every 5 days; reflectances (DN, 0..10000) mix a soil and a
  vegetation spectrum through a smooth "vegetation fraction" field that greens up in spring;
  each scene has an ``eo:cloud_cover`` and matching cloud (SCL 8/9), shadow (3) and snow (11)
  pixels; clear pixels are SCL 4 (vegetation) or 5 (bare soil). So that every branch of an
  SCL mask shows in a result, on a 5 km pattern there are also: isolated one-pixel clouds
  (which an erosion removes), patches snowed on every date (permanent snow) and on the first
  scene of each month only, saturated pixels (SCL 1) on every date and scattered on single dates,
  and a no-data strip (SCL 0, reflectances missing) on some dates.
- Sentinel-1 global mosaics: one time step per month, VV and VH linear backscatter.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import List, Sequence, Tuple

import numpy as np
import pandas as pd
import xarray as xr

S2_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12", "SCL"]
S2_WAVELENGTHS = {
    "B01": 0.443, "B02": 0.490, "B03": 0.560, "B04": 0.665, "B05": 0.705, "B06": 0.740, "B07": 0.783,
    "B08": 0.842, "B8A": 0.865, "B09": 0.945, "B11": 1.610, "B12": 2.190,
}  # fmt: skip
# Typical surface reflectance (DN) of bare soil and of green vegetation per band.
SOIL = {"B01": 1100, "B02": 1200, "B03": 1500, "B04": 1800, "B05": 2000, "B06": 2100, "B07": 2200,
        "B08": 2400, "B8A": 2500, "B09": 2500, "B11": 3200, "B12": 2800}  # fmt: skip
VEGETATION = {"B01": 400, "B02": 300, "B03": 650, "B04": 300, "B05": 1100, "B06": 3000, "B07": 3800,
              "B08": 4200, "B8A": 4300, "B09": 4300, "B11": 2000, "B12": 900}  # fmt: skip
S1_BANDS = ["VV", "VH"]
S2_REVISIT_DAYS = 5
S2_FIRST_DATE = dt.date(2015, 6, 28)
S1_MOSAIC_EXTENT = (dt.date(2023, 1, 1), dt.date(2024, 12, 31))
PATTERN_M = 5000.0  # the special SCL cases repeat every 5 km in x and y


def _unit_hash(*parts) -> float:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2**64


def pixel_grid(west: float, south: float, east: float, north: float, resolution: float) -> Tuple[np.ndarray, ...]:
    """Pixel-centre coordinates snapped to the ``resolution`` grid (y descending, north up)."""
    x0 = np.floor(west / resolution) * resolution
    y1 = np.ceil(north / resolution) * resolution
    nx = max(1, int(np.ceil((east - x0) / resolution)))
    ny = max(1, int(np.ceil((y1 - south) / resolution)))
    xs = x0 + resolution * (np.arange(nx) + 0.5)
    ys = y1 - resolution * (np.arange(ny) + 0.5)
    return xs, ys


def vegetation_fraction(xs: np.ndarray, ys: np.ndarray, day: dt.date) -> np.ndarray:
    """Smooth field of fields: 0 (bare) .. 1 (green), greener from April to August."""
    x, y = np.meshgrid(xs, ys)
    pattern = (
        0.5
        + 0.25 * np.sin(x / 1900.0) * np.cos(y / 2300.0)
        + 0.15 * np.sin((x + y) / 730.0)
        + 0.1 * np.cos((x - 2 * y) / 5100.0)
    )
    fields = np.floor(x / 400.0) + 7 * np.floor(y / 400.0)
    parcel_offset = (np.sin(fields * 12.9898) * 43758.5453) % 1.0 - 0.5
    season = 0.35 * np.sin(2 * np.pi * (day.timetuple().tm_yday - 100) / 365.0)
    return np.clip(pattern + 0.3 * parcel_offset + season, 0.0, 1.0)


def s2_scene_dates(start: dt.date, end: dt.date) -> List[dt.date]:
    """Acquisition dates in ``[start, end)``, every 5 days."""
    offset = (start - S2_FIRST_DATE).days % S2_REVISIT_DAYS
    first = start + dt.timedelta(days=(S2_REVISIT_DAYS - offset) % S2_REVISIT_DAYS)
    return [first + dt.timedelta(days=d) for d in range(0, max(0, (end - first).days), S2_REVISIT_DAYS)]


def scene_cloud_cover(day: dt.date, epsg: int) -> float:
    """``eo:cloud_cover`` (%) of the synthetic scene of that day in that UTM zone."""
    return round(100 * _unit_hash("cloud", day.isoformat(), epsg) ** 1.5, 1)


def _pixel_noise(x: np.ndarray, y: np.ndarray, phase: float) -> np.ndarray:
    """A repeatable 0..1 value per pixel (of its absolute coordinates) and per date (``phase``)."""
    return (np.sin(x * 0.12989 + y * 0.78233 + phase * 1000.0) * 43758.5453) % 1.0


def _patch(x: np.ndarray, y: np.ndarray, centre: Tuple[float, float], radius: float) -> np.ndarray:
    """Discs of ``radius`` metres around ``centre`` in every 5 km x 5 km cell."""
    dx = np.mod(x, PATTERN_M) - centre[0]
    dy = np.mod(y, PATTERN_M) - centre[1]
    return dx * dx + dy * dy <= radius * radius


def special_scl(x: np.ndarray, y: np.ndarray, day: dt.date) -> dict:
    """Where the cases an SCL mask must handle are on ``day`` (boolean arrays)."""
    phase = _unit_hash("pixels", day.isoformat())
    return {
        "permanent_snow": _patch(x, y, (1250.0, 1250.0), 300.0),
        "snow_once": _patch(x, y, (3750.0, 3750.0), 300.0) & (day.day <= S2_REVISIT_DAYS),  # first scene of a month
        "saturated": _patch(x, y, (3750.0, 1250.0), 100.0) | (_pixel_noise(x, y, phase + 0.5) < 0.0005),
        "isolated_cloud": _pixel_noise(x, y, phase) < 0.002,
        "no_data": (np.mod(x, PATTERN_M) < 200.0) & (_unit_hash("nodata", day.isoformat()) < 0.3),
    }


def sentinel2_cube(
    bbox: Tuple[float, float, float, float],
    epsg: int,
    dates: Sequence[dt.date],
    bands: Sequence[str],
    resolution: float,
) -> xr.DataArray:
    xs, ys = pixel_grid(*bbox, resolution)
    x, y = np.meshgrid(xs, ys)
    data = np.zeros((len(dates), len(bands), len(ys), len(xs)), dtype=np.float32)
    for t, day in enumerate(dates):
        veg = vegetation_fraction(xs, ys, day)
        cover = scene_cloud_cover(day, epsg) / 100.0
        phase = 2 * np.pi * _unit_hash("phase", day.isoformat())
        cloud_field = 0.5 + 0.5 * np.sin(x / 3100.0 + phase) * np.cos(y / 2700.0 - phase)
        cloud = cloud_field > np.quantile(cloud_field, 1 - cover) if cover > 0 else np.zeros_like(veg, bool)
        shadow_field = 0.5 + 0.5 * np.sin((x + 600) / 3100.0 + phase) * np.cos((y + 600) / 2700.0 - phase)
        shadow = ~cloud & (shadow_field > np.quantile(shadow_field, 1 - cover * 0.3)) if cover > 0 else cloud
        special = special_scl(x, y, day)
        snow = ((day.month in (12, 1, 2)) & (veg < 0.08)) | special["permanent_snow"] | special["snow_once"]
        cloud = cloud | (special["isolated_cloud"] & ~shadow)
        scl = np.where(veg > 0.45, 4, 5)
        scl = np.where(snow, 11, scl)
        scl = np.where(shadow, 3, scl)
        scl = np.where(cloud, np.where(cloud_field > 0.9, 9, 8), scl)
        scl = np.where(special["saturated"], 1, scl)
        scl = np.where(special["no_data"], 0, scl)
        for b, band in enumerate(bands):
            if band == "SCL":
                data[t, b] = scl
                continue
            value = SOIL[band] * (1 - veg) + VEGETATION[band] * veg
            value = np.where(snow, 8500 - 2000 * S2_WAVELENGTHS[band], value)
            value = np.where(shadow, value * 0.35, value)
            value = np.where(cloud, 7000 + 1500 * cloud_field, value)
            value = np.where(special["saturated"], 20000.0, value)
            value = np.where(special["no_data"], np.nan, value)
            data[t, b] = np.round(value)
    return _cube(data, dates, bands, xs, ys)


def sentinel1_cube(
    bbox: Tuple[float, float, float, float], dates: Sequence[dt.date], bands: Sequence[str], resolution: float
) -> xr.DataArray:
    xs, ys = pixel_grid(*bbox, resolution)
    data = np.zeros((len(dates), len(bands), len(ys), len(xs)), dtype=np.float32)
    for t, day in enumerate(dates):
        veg = vegetation_fraction(xs, ys, day)
        vv = 10 ** ((-14.0 + 6.0 * veg - 1.5 * np.cos(xs / 900.0)[None, :]) / 10)
        for b, band in enumerate(bands):
            data[t, b] = vv if band == "VV" else vv * 10 ** ((-6.5 - 2.0 * veg) / 10)
    return _cube(data, dates, bands, xs, ys)


def s1_mosaic_dates(start: dt.date, end: dt.date) -> List[dt.date]:
    """One mosaic per month (dated the 1st) for months that overlap ``[start, end)``."""
    first, last = S1_MOSAIC_EXTENT
    months = pd.date_range(dt.date(start.year, start.month, 1), end - dt.timedelta(days=1), freq="MS")
    return [m.date() for m in months if first <= m.date() <= last]


def _cube(data, dates, bands, xs, ys) -> xr.DataArray:
    return xr.DataArray(
        data,
        dims=("t", "bands", "y", "x"),
        coords={"t": pd.to_datetime(list(dates)), "bands": list(bands), "y": ys, "x": xs},
    )
