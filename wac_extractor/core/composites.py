"""Per-month composite rasters (GDAL VRTs) from a result NetCDF, ready to style in QGIS.

A multi-variable NetCDF opens in QGIS only per variable (``NETCDF:"file":B04``), with one band per
time step. For each month we build a small VRT next to the result:

- Sentinel-2 true colour: B04, B03, B02 of that month as bands 1-3;
- Sentinel-1: VV, VH (dB) and VV-VH (the VV/VH ratio in dB, a GDAL ``diff`` pixel function).

Building VRTs is plain GDAL (no Qt), so it runs in the background task; QGIS then only opens them.
Also builds the per-sensor, per-month mosaic across tiles (one seamless layer for a 100-tile run).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence
from xml.sax.saxutils import escape

S2_TRUE_COLOUR = ("B04", "B03", "B02")
S1_BANDS = ("VV", "VH")


@dataclass(frozen=True)
class MonthComposite:
    """One month of one result file, as a VRT."""

    sentinel: int
    month: str  # YYYY-MM
    path: Path
    source: Path
    band_index: int  # 1-based time step in the NetCDF

    @property
    def start(self) -> dt.date:
        return dt.date.fromisoformat(self.month + "-01")

    @property
    def end(self) -> dt.date:
        start = self.start
        return dt.date(start.year + start.month // 12, start.month % 12 + 1, 1)


def _gdal():
    from osgeo import gdal

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


def _band_xml(number: int, description: str, sources: str, derived: Optional[str] = None) -> str:
    kind = ' subClass="VRTDerivedRasterBand"' if derived else ""
    function = f"<PixelFunctionType>{derived}</PixelFunctionType>" if derived else ""
    return (
        f'<VRTRasterBand dataType="Float32" band="{number}"{kind}><Description>{escape(description)}</Description>'
        f"<NoDataValue>nan</NoDataValue>{function}{sources}</VRTRasterBand>"
    )


def month_composites(result: Path, sentinel: int, out_dir: Optional[Path] = None) -> List[MonthComposite]:
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
        composites.append(MonthComposite(int(sentinel), month, path, result, index))
    return composites


def mosaic(composites: Iterable[MonthComposite], path: Path) -> Path:
    """One VRT mosaic of same-sensor, same-month composites of several tiles (same UTM zone)."""
    gdal = _gdal()
    sources = [str(c.path) for c in composites]
    gdal.BuildVRT(str(path), sources, options=gdal.BuildVRTOptions(srcNodata="nan", VRTNodata="nan"))
    return path


def group_by_month(composites: Iterable[MonthComposite]) -> Dict[tuple, List[MonthComposite]]:
    grouped: Dict[tuple, List[MonthComposite]] = {}
    for composite in composites:
        grouped.setdefault((composite.sentinel, composite.month), []).append(composite)
    return grouped
