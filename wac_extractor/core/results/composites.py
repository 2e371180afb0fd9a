"""Display copies of a result NetCDF: the composites QGIS styles, as Cloud-Optimized GeoTIFFs.

A multi-variable NetCDF opens in QGIS only per variable (``NETCDF:"file":B04``), with one band per
time step, and every open goes through netCDF-C and HDF5: in QGIS's render threads that printed
~150,000 ``HDF5-DIAG`` lines per Desktop run, and a zoomed-out mosaic of 300 NetCDF tiles took 6.5 s
to draw (GDAL reopened them beyond its dataset pool). So each composite is written once, when the
result is checked, as a COG with overviews next to the result (GDAL's COG driver, from an in-memory
VRT over the NetCDF); the mosaics and tile layers read those. The NetCDF stays the deliverable.

- ``monthly`` recipe, per month: Sentinel-2 true colour (B04, B03, B02 of that month);
  Sentinel-1 VV, VH (dB) and VV-VH (the VV/VH ratio in dB, a GDAL ``diff`` pixel function).
- ``lcfm`` recipe: Sentinel-2 true colour per month from the ``_Mk`` bands, and for the job's
  whole window true colour from the P50 bands and NDVI P50; Sentinel-1 VV, VH and VH/VV P50,
  converted to dB by GDAL's ``dB`` pixel function (the files hold linear power).

- NDVI P50 is written in NDVI units (the int16 file holds NDVI x 10000): the legend reads -0.2..0.9.
- S1 is written in dB, so its legend reads dB.

Writing is plain GDAL (no Qt): the download thread or the background task; QGIS then only opens them.
The month mosaics across tiles are built from these composites by :mod:`.mosaics`.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import threading
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


NDVI_SCALE = 1e-4  # the LCFM files hold NDVI x 10000 (openeo's compute_and_rescale_indices)
DISPLAY_SUFFIX = ".tif"
SMALLEST_OVERVIEW_PX = 16  # overviews halve the tile until its smaller side is about this


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


def _source_xml(path: Path, variable: str, band: int, scale: Optional[float] = None) -> str:
    scaled = f"<ScaleOffset>0</ScaleOffset><ScaleRatio>{scale!r}</ScaleRatio>" if scale is not None else ""
    kind = "ComplexSource" if scaled else "SimpleSource"
    return (
        f'<{kind}><SourceFilename relativeToVRT="0">{escape(subdataset(path, variable))}</SourceFilename>'
        f"<SourceBand>{band}</SourceBand>{scaled}</{kind}>"
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
    """One display copy per month of a result NetCDF (S2 true colour or S1 VV/VH/ratio)."""
    out_dir = out_dir or result.parent
    variables = S2_TRUE_COLOUR if int(sentinel) == 2 else S1_BANDS
    composites = []
    for index, month in enumerate(time_steps(result, variables[0]), start=1):
        if int(sentinel) == 2:
            bands = [_band_xml(i + 1, v, _source_xml(result, v, index)) for i, v in enumerate(S2_TRUE_COLOUR)]
            name = f"S2_true_colour_{month}"
        else:
            vv, vh = (_source_xml(result, v, index) for v in S1_BANDS)
            bands = [_band_xml(1, "VV", vv), _band_xml(2, "VH", vh), _band_xml(3, "VV/VH (dB)", vv + vh, "diff")]
            name = f"S1_VV_VH_{month}"
        path = _write(result, out_dir / (name + DISPLAY_SUFFIX), variables[0], bands)
        composites.append(WindowComposite(int(sentinel), month, path, result, index))
    return composites


def overview_count(width: int, height: int) -> int:
    """Halvings until the smaller side is about :data:`SMALLEST_OVERVIEW_PX` (at least one)."""
    return max(1, int(math.log2(max(1, min(width, height)) / SMALLEST_OVERVIEW_PX)) + 1)


def write_cog(source, path: Path) -> Path:
    """``source`` (a dataset or a VRT's XML) as a COG with overviews at ``path``, written whole or not at all.

    A copy already there is kept (written once); a reader never sees half a file (a temporary name, then
    a rename), and two threads writing the same copy each use their own temporary name.
    """
    if path.exists():
        return path
    gdal = _gdal()
    dataset = gdal.Open(source) if isinstance(source, str) else source
    # ZSTD without predictor, 128 px blocks: a zoomed-out draw decompresses one small block per tile and
    # band (DEFLATE with the float predictor in 256 px blocks cost 10 ms a tile, this 1-2 ms).
    options = [
        "COMPRESS=ZSTD",
        "BLOCKSIZE=128",
        "RESAMPLING=AVERAGE",  # NaN-aware: masked pixels do not darken the overviews
        f"OVERVIEW_COUNT={overview_count(dataset.RasterXSize, dataset.RasterYSize)}",
    ]
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.part{DISPLAY_SUFFIX}")
    try:
        if gdal.Translate(str(temporary), dataset, format="COG", creationOptions=options) is None:
            raise ValueError(f"{path.name}: GDAL could not write the display copy")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _write(result: Path, path: Path, variable: str, bands: List[str]) -> Path:
    """A display copy on the grid of ``variable`` (every variable of a result shares it), once."""
    if path.exists():
        return path
    return write_cog(_vrt_xml(result, variable, bands), path)


def band_copy(result: Path, variable: str, band: int = 1, out_dir: Optional[Path] = None) -> Path:
    """One variable (its ``band``-th time step) as a display copy: what *Add band* shows (NDVI in NDVI units)."""
    out_dir = out_dir or result.parent
    suffix = f"_t{band}" if band != 1 else ""
    path = out_dir / "bands" / f"{variable}{suffix}{DISPLAY_SUFFIX}"
    if path.exists():
        return path
    path.parent.mkdir(exist_ok=True)
    scale = NDVI_SCALE if variable.startswith("NDVI_") else None
    return _write(result, path, variable, [_band_xml(1, variable, _source_xml(result, variable, band, scale))])


def _scaled_band(number: int, result: Path, variable: str, scale: float) -> str:
    """A band of ``variable`` times ``scale`` (NDVI x 10000 back to NDVI); NaN stays NaN."""
    return _band_xml(number, variable, _source_xml(result, variable, 1, scale))


def _db_band(number: int, result: Path, variable: str) -> str:
    """A band in dB of a linear power variable (GDAL's ``dB`` pixel function, 10 * log10)."""
    return _band_xml(
        number, f"{variable} (dB)", _source_xml(result, variable, 1), "dB", '<PixelFunctionArguments fact="10"/>'
    )


def lcfm_composites(
    result: Path, sentinel: int, temporal_extent: Sequence[str], out_dir: Optional[Path] = None
) -> List[WindowComposite]:
    """Display copies of an ``lcfm`` result: S2 true colour per month and P50 true colour and NDVI (in NDVI
    units) for the window; S1 VV/VH/VH_VV P50 in dB for the window."""
    from ..planning.timewindows import months_in

    out_dir = out_dir or result.parent
    months = months_in(tuple(temporal_extent))
    first, count = months[0], len(months)

    def copy(name: str, variables: Sequence[str]) -> Path:
        bands = [_band_xml(i + 1, v, _source_xml(result, v, 1)) for i, v in enumerate(variables)]
        return _write(result, out_dir / (name + DISPLAY_SUFFIX), variables[0], bands)

    if int(sentinel) == 1:
        bands = [_db_band(i + 1, result, f"{band}_P50") for i, band in enumerate(("VV", "VH", "VH_VV"))]
        path = _write(result, out_dir / f"S1_P50_dB_{first}_{count}m{DISPLAY_SUFFIX}", "VV_P50", bands)
        return [WindowComposite(1, first, path, result, 1, S1_P50_DB, count)]
    composites = [
        WindowComposite(2, month, copy(f"S2_true_colour_{month}", [f"{b}_M{k}" for b in S2_TRUE_COLOUR]), result, 1)
        for k, month in enumerate(months, start=1)
    ]
    window = f"{first}_{count}m"
    path = copy(f"S2_true_colour_P50_{window}", [f"{b}_P50" for b in S2_TRUE_COLOUR])
    composites.append(WindowComposite(2, first, path, result, 1, TRUE_COLOUR_P50, count))
    ndvi = out_dir / f"S2_NDVI_P50_{window}{DISPLAY_SUFFIX}"
    path = _write(result, ndvi, "NDVI_P50", [_scaled_band(1, result, "NDVI_P50", NDVI_SCALE)])
    composites.append(WindowComposite(2, first, path, result, 1, NDVI_P50, count))
    return composites


def result_composites(result: Path, row) -> List[WindowComposite]:
    """The display copies of a job's result, by the row's recipe: written the first time, then only listed."""
    from ..recipes import row_recipe
    from ..recipes.process_graphs import decode_cell

    if row_recipe(row) == "lcfm":
        return lcfm_composites(result, int(row["sentinel"]), decode_cell(row["temporal_extent"]))
    return month_composites(result, int(row["sentinel"]))
