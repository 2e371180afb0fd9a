"""Composite rasters (GDAL VRTs) from a result NetCDF, ready to style in QGIS.

A multi-variable NetCDF opens in QGIS only per variable (``NETCDF:"file":B04``), with one band per
time step. We build small VRTs next to the result:

- ``monthly`` recipe, per month: Sentinel-2 true colour (B04, B03, B02 of that month);
  Sentinel-1 VV, VH (dB) and VV-VH (the VV/VH ratio in dB, a GDAL ``diff`` pixel function).
- ``lcfm`` recipe: Sentinel-2 true colour per month from the ``_Mk`` bands, and for the job's
  whole window true colour from the P50 bands and NDVI P50; Sentinel-1 VV, VH and VH/VV P50,
  converted to dB by GDAL's ``dB`` pixel function (the files hold linear power).

Building VRTs is plain GDAL (no Qt), so it runs in the background task; QGIS then only opens them.
The month mosaics across tiles are built from these composites by :mod:`.mosaics`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence
from xml.sax.saxutils import escape

from ..platform.hdf5_quiet import quiet_hdf5

S2_TRUE_COLOUR = ("B04", "B03", "B02")
S1_BANDS = ("VV", "VH")


# Styles: how a composite is drawn (layers.py) and named.
TRUE_COLOUR, TRUE_COLOUR_P50, NDVI_P50, S1_DB, S1_P50_DB = (
    "true_colour",
    "true_colour_p50",
    "ndvi_p50",
    "vv_vh",
    "s1_p50",
)
STYLE_LABELS = {
    TRUE_COLOUR: "true colour",
    TRUE_COLOUR_P50: "true colour P50",
    NDVI_P50: "NDVI P50",
    S1_DB: "VV, VH, VV/VH dB",
    S1_P50_DB: "VV, VH, VH/VV P50 dB",
}


@dataclass(frozen=True)
class WindowComposite:
    """One time window of one result file as a VRT: a month, or a job's whole window of ``months``."""

    sentinel: int
    month: str  # YYYY-MM, the first month of the period
    path: Path
    source: Path
    band_index: int  # 1-based time step in the NetCDF (1 for results without time)
    style: str = ""  # "" = the sensor's monthly colour composite
    months: int = 1

    @property
    def kind(self) -> str:
        return self.style or (TRUE_COLOUR if int(self.sentinel) == 2 else S1_DB)

    @property
    def start(self) -> dt.date:
        return dt.date.fromisoformat(self.month + "-01")

    @property
    def end(self) -> dt.date:
        start = self.start
        index = start.month - 1 + self.months
        return dt.date(start.year + index // 12, index % 12 + 1, 1)

    @property
    def period(self) -> str:
        """The group and layer label: the month, or the window's first..last month."""
        if self.months == 1:
            return self.month
        return f"{self.month}..{self.end - dt.timedelta(days=1):%Y-%m}"

    @property
    def mosaic_key(self) -> tuple:
        """Composites with the same key mosaic together: sensor, period and style."""
        return (self.sentinel, self.month, self.kind, self.months)

    @property
    def label(self) -> str:
        return STYLE_LABELS[self.kind]


def _gdal():
    from osgeo import gdal

    quiet_hdf5()
    gdal.UseExceptions()
    return gdal


def subdataset(path: Path, variable: str) -> str:
    return f'NETCDF:"{path}":{variable}'


def time_steps(path: Path, variable: str) -> List[str]:
    """The month (YYYY-MM) of each band of a NetCDF variable, from its CF time metadata."""
    gdal = _gdal()
    dataset = gdal.Open(subdataset(path, variable))
    metadata = dataset.GetMetadata()
    units = next((v for k, v in metadata.items() if re.fullmatch(r"t(ime)?#units", k)), "days since 1990-01-01")
    match = re.match(r"(\w+) since (\d{4}-\d{2}-\d{2})", units)
    unit, origin = (match.group(1), dt.date.fromisoformat(match.group(2))) if match else ("days", dt.date(1990, 1, 1))
    seconds_per_unit = {"days": 86400, "day": 86400, "hours": 3600, "seconds": 1, "minutes": 60}.get(unit, 86400)
    months = []
    for index in range(1, dataset.RasterCount + 1):
        band_metadata = dataset.GetRasterBand(index).GetMetadata()
        value = next((v for k, v in band_metadata.items() if k in ("NETCDF_DIM_t", "NETCDF_DIM_time")), None)
        if value is None:
            months.append(f"step{index}")
            continue
        day = origin + dt.timedelta(seconds=float(value) * seconds_per_unit)
        months.append(f"{day.year:04d}-{day.month:02d}")
    return months


def _source_xml(path: Path, variable: str, band: int) -> str:
    return (
        f'<SimpleSource><SourceFilename relativeToVRT="0">{escape(subdataset(path, variable))}</SourceFilename>'
        f"<SourceBand>{band}</SourceBand></SimpleSource>"
    )


def _vrt_xml(path: Path, variable: str, bands: Sequence[str]) -> str:
    gdal = _gdal()
    first = gdal.Open(subdataset(path, variable))
    geotransform = ", ".join(repr(v) for v in first.GetGeoTransform())
    header = (
        f'<VRTDataset rasterXSize="{first.RasterXSize}" rasterYSize="{first.RasterYSize}">'
        f"<SRS>{escape(first.GetProjection())}</SRS><GeoTransform>{geotransform}</GeoTransform>"
    )
    return header + "".join(bands) + "</VRTDataset>"


def _band_xml(number: int, description: str, sources: str, derived: Optional[str] = None, arguments: str = "") -> str:
    kind = ' subClass="VRTDerivedRasterBand"' if derived else ""
    function = f"<PixelFunctionType>{derived}</PixelFunctionType>{arguments}" if derived else ""
    return (
        f'<VRTRasterBand dataType="Float32" band="{number}"{kind}><Description>{escape(description)}</Description>'
        f"<NoDataValue>nan</NoDataValue>{function}{sources}</VRTRasterBand>"
    )


def month_composites(result: Path, sentinel: int, out_dir: Optional[Path] = None) -> List[WindowComposite]:
    """Build one VRT per month of a result NetCDF (S2 true colour or S1 VV/VH/ratio)."""
    out_dir = out_dir or result.parent
    variables = S2_TRUE_COLOUR if int(sentinel) == 2 else S1_BANDS
    composites = []
    for index, month in enumerate(time_steps(result, variables[0]), start=1):
        if int(sentinel) == 2:
            bands = [_band_xml(i + 1, v, _source_xml(result, v, index)) for i, v in enumerate(S2_TRUE_COLOUR)]
            name = f"S2_true_colour_{month}.vrt"
        else:
            vv, vh = (_source_xml(result, v, index) for v in S1_BANDS)
            bands = [_band_xml(1, "VV", vv), _band_xml(2, "VH", vh), _band_xml(3, "VV/VH (dB)", vv + vh, "diff")]
            name = f"S1_VV_VH_{month}.vrt"
        path = out_dir / name
        path.write_text(_vrt_xml(result, variables[0], bands))
        composites.append(WindowComposite(int(sentinel), month, path, result, index))
    return composites


def _write(result: Path, path: Path, variable: str, bands: List[str]) -> Path:
    """A VRT on the grid of ``variable`` (every variable of a result shares it)."""
    path.write_text(_vrt_xml(result, variable, bands))
    return path


def _db_band(number: int, result: Path, variable: str) -> str:
    """A band in dB of a linear power variable (GDAL's ``dB`` pixel function, 10 * log10)."""
    return _band_xml(
        number, f"{variable} (dB)", _source_xml(result, variable, 1), "dB", '<PixelFunctionArguments fact="10"/>'
    )


def lcfm_composites(
    result: Path, sentinel: int, temporal_extent: Sequence[str], out_dir: Optional[Path] = None
) -> List[WindowComposite]:
    """VRTs of an ``lcfm`` result: S2 true colour per month and P50 true colour and NDVI for the window;
    S1 VV/VH/VH_VV P50 in dB for the window."""
    from ..planning.timewindows import months_in

    out_dir = out_dir or result.parent
    months = months_in(tuple(temporal_extent))
    first, count = months[0], len(months)

    def vrt(name: str, variables: Sequence[str]) -> Path:
        bands = [_band_xml(i + 1, v, _source_xml(result, v, 1)) for i, v in enumerate(variables)]
        return _write(result, out_dir / name, variables[0], bands)

    if int(sentinel) == 1:
        bands = [_db_band(i + 1, result, f"{band}_P50") for i, band in enumerate(("VV", "VH", "VH_VV"))]
        path = _write(result, out_dir / f"S1_P50_dB_{first}_{count}m.vrt", "VV_P50", bands)
        return [WindowComposite(1, first, path, result, 1, S1_P50_DB, count)]
    composites = [
        WindowComposite(2, month, vrt(f"S2_true_colour_{month}.vrt", [f"{b}_M{k}" for b in S2_TRUE_COLOUR]), result, 1)
        for k, month in enumerate(months, start=1)
    ]
    window = f"{first}_{count}m"
    path = vrt(f"S2_true_colour_P50_{window}.vrt", [f"{b}_P50" for b in S2_TRUE_COLOUR])
    composites.append(WindowComposite(2, first, path, result, 1, TRUE_COLOUR_P50, count))
    path = vrt(f"S2_NDVI_P50_{window}.vrt", ["NDVI_P50"])
    composites.append(WindowComposite(2, first, path, result, 1, NDVI_P50, count))
    return composites


def result_composites(result: Path, row) -> List[WindowComposite]:
    """The composites of a job's result, by the row's recipe."""
    from ..recipes import row_recipe
    from ..recipes.process_graphs import decode_cell

    if row_recipe(row) == "lcfm":
        return lcfm_composites(result, int(row["sentinel"]), decode_cell(row["temporal_extent"]))
    return month_composites(result, int(row["sentinel"]))
