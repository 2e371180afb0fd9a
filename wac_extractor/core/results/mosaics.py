"""Month mosaics that grow as tiles arrive: one VRT per sensor, period, style and UTM zone.

A run of 500 tiles x 12 months x 2 sensors as per-tile layers is 12,000 layers, which QGIS cannot
hold. The default view is instead one layer per mosaic, whose VRT gains a source as each tile's
result arrives. The mosaic's grid is fixed up front to the run's planned tiles in that zone, so a
new tile only adds sources: QGIS reloads the file, and the layer's extent and style stay put.

GDAL places each tile on the grid (``gdal.BuildVRT`` of that one composite with the grid's bounds
and resolution); we keep the ``<ComplexSource>`` elements it wrote. Tiles go into blocks of
:data:`BLOCK_TILES`, each a VRT on the full grid, and the mosaic is a VRT of its blocks. QGIS reopens
only that top file on each update (on the UI thread), so its size must not grow with the tiles:
GDAL took 15 ms to open a flat VRT of 300 tiles, 50 ms for 1,000, and QGIS's reload more. Re-running
BuildVRT over all tiles at each arrival instead opened every source again, O(n^2) for the run.

A block is rewritten under a new name each time (``..._b003_k3f9a_v12.vrt``): GDAL keeps the VRTs it
reads sources from open in its dataset pool, by name, and would not see a rewritten file. A name is
never reused (the ``k3f9a`` is this session's: a resumed run does not write over the blocks a reopened
project's layer still reads), and a superseded block is deleted only :data:`STALE_SECONDS` later:
a layer still open on the mosaic's previous file (a map render, a layer not reloaded yet) reads its
blocks until then. Deleting the version before at once gave QGIS's ``RasterIO error ... _v2.vrt: No
such file`` after a resume.

The tiles placed are the composites' display copies (COGs with overviews, :mod:`.composites`): no
NetCDF is opened while QGIS draws. Zoomed out (1:4 and coarser), a draw reads the mosaic's own
overview (:mod:`.mosaic_overviews`, an ``<Overview>`` per band of the top file), not every tile's.
"""

from __future__ import annotations

import math
import os
import secrets
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from .composites import WindowComposite, _gdal
from .mosaic_overviews import FACTOR, MosaicOverview, chunk_size, overview_element, placed_source

Bounds = Tuple[float, float, float, float]  # west, south, east, north
BLOCK_TILES = 64
SOURCE_TAGS = ("SimpleSource", "ComplexSource", "AveragedSource", "KernelFilteredSource")
_PLACEHOLDER = "WacSources"
STALE_SECONDS = 120.0  # a superseded block stays this long for the layers still reading it


@dataclass
class _Grid:
    bounds: Bounds
    x_res: float
    y_res: float

    def covers(self, other: Bounds) -> bool:
        west, south, east, north = self.bounds
        return other[0] >= west and other[1] >= south and other[2] <= east and other[3] <= north


@dataclass
class _Mosaic:
    composite: WindowComposite  # what the layer shows: sensor, period, style; ``path`` is the mosaic VRT
    epsg: int
    grid: _Grid
    parts: List[str] = field(default_factory=list)  # the template around each band's sources
    sources: Dict[Path, List[str]] = field(default_factory=dict)  # per tile composite: each band's sources
    band_types: List[str] = field(default_factory=list)
    blocks: Dict[int, int] = field(default_factory=dict)  # block number: its file's version
    stale: Dict[Path, float] = field(default_factory=dict)  # superseded block files: when they were
    bounds: Dict[Path, Bounds] = field(default_factory=dict)  # per tile composite: its bounds
    overview: Optional[MosaicOverview] = None  # the mosaic's own overview (a zoomed-out draw reads it)
    pending: List[Path] = field(default_factory=list)  # tiles placed, not yet in the overview (deferred)


@dataclass(frozen=True)
class MosaicUpdate:
    """A mosaic written anew: ``created`` the first time, ``regridded`` when its grid had to grow."""

    composite: WindowComposite
    tiles: int
    created: bool = False
    regridded: bool = False


def raster_bounds(path: Path) -> Tuple[Bounds, float, float, int]:
    """Bounds, pixel size (x, y) and EPSG code of a raster (0 when its CRS has no EPSG code)."""
    gdal = _gdal()
    dataset = gdal.Open(str(path))
    x0, dx, _, y0, _, dy = dataset.GetGeoTransform()
    bounds = (x0, y0 + dy * dataset.RasterYSize, x0 + dx * dataset.RasterXSize, y0)
    srs = dataset.GetSpatialRef()
    epsg = int(srs.GetAuthorityCode(None) or 0) if srs is not None else 0
    return bounds, dx, abs(dy), epsg


def _snap(bounds: Bounds, origin: Tuple[float, float], x_res: float, y_res: float) -> Bounds:
    """``bounds`` widened to whole pixels of the grid through ``origin``."""
    ox, oy = origin
    return (
        ox + math.floor(round((bounds[0] - ox) / x_res, 6)) * x_res,
        oy + math.floor(round((bounds[1] - oy) / y_res, 6)) * y_res,
        ox + math.ceil(round((bounds[2] - ox) / x_res, 6)) * x_res,
        oy + math.ceil(round((bounds[3] - oy) / y_res, 6)) * y_res,
    )


def _union(a: Bounds, b: Bounds) -> Bounds:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


class MonthMosaics:
    """The run's month mosaics in ``folder``; :meth:`add` takes each tile's composites as it arrives.

    ``planned`` gives, per EPSG code, the bounds of all the run's tiles in that zone: the mosaics' grid.
    A tile outside it (a tracker without planned extents) grows the grid, and the mosaic is rewritten.
    Thread-safe: the task adds from its worker thread while the UI may read :meth:`mosaics`.
    """

    def __init__(self, folder: Path, planned: Optional[Dict[int, Bounds]] = None, overviews: bool = True):
        """``overviews``: False writes the mosaics without their own overview (the bench's *before*)."""
        self.folder = Path(folder)
        self.planned = dict(planned or {})
        self.overviews = overviews
        self._mosaics: Dict[tuple, _Mosaic] = {}
        self._lock = threading.Lock()
        self.session = secrets.token_hex(3)  # in every block name this object writes: never one reused

    def mosaics(self) -> List[WindowComposite]:
        with self._lock:
            return [m.composite for m in self._mosaics.values()]

    def add(self, composites: Iterable[WindowComposite], defer_overview: bool = False) -> List[MosaicUpdate]:
        """Place each composite in its mosaic (made on first use) and rewrite the mosaics that changed.

        ``defer_overview``: the new tiles go into the mosaics' overviews at :meth:`flush_overviews` (results
        of before re-added by the hundred: a chunk rewritten per tile would leave hundreds of superseded
        copies of it on disk for :data:`STALE_SECONDS`).
        """
        with self._lock:
            changed: Dict[tuple, MosaicUpdate] = {}
            dirty: Dict[tuple, set] = {}
            fresh: Dict[tuple, List[Path]] = {}
            for composite in composites:
                bounds, x_res, y_res, epsg = raster_bounds(composite.path)
                key = (*composite.mosaic_key, epsg)
                mosaic = self._mosaics.get(key)
                created = regridded = False
                if mosaic is None:
                    mosaic = self._mosaics[key] = self._new_mosaic(composite, key, bounds, x_res, y_res, epsg)
                    created = True
                elif not mosaic.grid.covers(bounds):
                    self._regrid(mosaic, bounds)
                    regridded = True
                if composite.path in mosaic.sources and not regridded:
                    continue  # the same tile again (a resumed run): nothing new
                mosaic.sources[composite.path] = self._placed_sources(composite.path, mosaic)
                mosaic.bounds[composite.path] = bounds
                fresh.setdefault(key, []).append(composite.path)
                count = len(mosaic.sources)
                blocks = range(math.ceil(count / BLOCK_TILES)) if regridded else [(count - 1) // BLOCK_TILES]
                dirty.setdefault(key, set()).update(blocks)
                before = changed.get(key)
                changed[key] = MosaicUpdate(
                    mosaic.composite,
                    len(mosaic.sources),
                    created or bool(before and before.created),
                    regridded or bool(before and before.regridded),
                )
            for key, update in changed.items():
                defer = defer_overview and not update.regridded  # a new grid needs the overview's new size
                self._write(self._mosaics[key], dirty.get(key, set()), fresh.get(key, []), defer)
            return list(changed.values())

    def flush_overviews(self) -> List[MosaicUpdate]:
        """Put the tiles :meth:`add` deferred into their mosaics' overviews; the mosaics rewritten."""
        with self._lock:
            waiting = [mosaic for mosaic in self._mosaics.values() if mosaic.pending]
            for mosaic in waiting:
                self._write(mosaic, ())
            return [MosaicUpdate(mosaic.composite, len(mosaic.sources)) for mosaic in waiting]

    def _new_mosaic(self, composite: WindowComposite, key: tuple, bounds: Bounds, x_res, y_res, epsg) -> _Mosaic:
        sentinel, month, kind, months, _ = key
        path = self.folder / f"S{sentinel}_{kind}_{month}_{months}m_{epsg}.vrt"
        grid_bounds = _union(self.planned.get(epsg, bounds), bounds)
        grid = _Grid(_snap(grid_bounds, (bounds[0], bounds[3]), x_res, y_res), x_res, y_res)
        shown = WindowComposite(int(sentinel), month, path, path, 0, kind, months)
        mosaic = _Mosaic(shown, epsg, grid)
        self._template(mosaic, composite.path)
        if self.overviews:
            corner = (grid.bounds[0], grid.bounds[3])  # the chunks' lattice: kept when the grid grows
            mosaic.overview = MosaicOverview(
                path.with_suffix(".overview"), path.stem, self.session, corner, x_res * FACTOR, y_res * FACTOR,
                len(mosaic.band_types), chunk_size(round((bounds[2] - bounds[0]) / x_res)),
            )  # fmt: skip
        return mosaic

    def _regrid(self, mosaic: _Mosaic, bounds: Bounds) -> None:
        grid = mosaic.grid
        grid.bounds = _snap(_union(grid.bounds, bounds), (grid.bounds[0], grid.bounds[3]), grid.x_res, grid.y_res)
        first = next(iter(mosaic.sources), None)
        if first is not None:
            self._template(mosaic, first)
        for path in mosaic.sources:
            mosaic.sources[path] = self._placed_sources(path, mosaic)

    def _single(self, path: Path, mosaic: _Mosaic) -> ET.Element:
        """GDAL's VRT of one composite placed on the mosaic's grid (NaN is no data: tiles may overlap)."""
        gdal = _gdal()
        options = gdal.BuildVRTOptions(
            outputBounds=mosaic.grid.bounds,
            xRes=mosaic.grid.x_res,
            yRes=mosaic.grid.y_res,
            srcNodata="nan",
            VRTNodata="nan",
        )
        dataset = gdal.BuildVRT("", [str(path)], options=options)
        if dataset is None:
            raise ValueError(f"{path} could not be placed in the mosaic {mosaic.composite.path.name}")
        return ET.fromstring(dataset.GetMetadata("xml:VRT")[0])

    def _template(self, mosaic: _Mosaic, path: Path) -> None:
        """The mosaic file's text around each band's sources, from one tile's placed VRT."""
        root = self._single(path, mosaic)
        mosaic.band_types = [band.get("dataType", "Float32") for band in root.iter("VRTRasterBand")]
        tile = _gdal().Open(str(path))
        for number, band in enumerate(root.iter("VRTRasterBand"), start=1):
            description = tile.GetRasterBand(number).GetDescription()  # BuildVRT drops them: "B04", "VV (dB)"
            if description and band.find("Description") is None:
                ET.SubElement(band, "Description").text = description
            for source in [child for child in band if child.tag in SOURCE_TAGS]:
                band.remove(source)
            ET.SubElement(band, _PLACEHOLDER)
        for virtual in root.findall("OverviewList"):  # BuildVRT's virtual overviews: they read every tile
            root.remove(virtual)
        text = ET.tostring(root, encoding="unicode")
        mosaic.parts = text.split(f"<{_PLACEHOLDER} />")

    def _placed_sources(self, path: Path, mosaic: _Mosaic) -> List[str]:
        root = self._single(path, mosaic)
        return [
            "".join(ET.tostring(child, encoding="unicode") for child in band if child.tag in SOURCE_TAGS)
            for band in root.iter("VRTRasterBand")
        ]

    def _write(self, mosaic: _Mosaic, blocks: Iterable[int], fresh: Iterable[Path] = (), defer: bool = False) -> None:
        """Rewrite the changed blocks under new names, the overview under the ``fresh`` tiles (and those deferred
        before; unless ``defer``), then the mosaic over all blocks."""
        tiles = list(mosaic.sources.values())
        folder = mosaic.composite.path.with_suffix(".blocks")
        folder.mkdir(parents=True, exist_ok=True)
        now = time.monotonic()
        if not mosaic.blocks:  # a session's first write: an earlier session's files may still be read
            mosaic.stale.update((path, now) for path in folder.glob("*.vrt"))
            overview_folder = mosaic.composite.path.with_suffix(".overview")
            mosaic.stale.update((path, now) for path in overview_folder.glob("*") if overview_folder.is_dir())
        for block in sorted(blocks):
            if block in mosaic.blocks:
                mosaic.stale[self._block_path(mosaic, block)] = now
            mosaic.blocks[block] = mosaic.blocks.get(block, 0) + 1
            mine = tiles[block * BLOCK_TILES : (block + 1) * BLOCK_TILES]
            text = _fill(mosaic.parts, lambda band, mine=mine: (t[band] for t in mine))
            _write_atomic(self._block_path(mosaic, block), text)
        width, height = _grid_size(mosaic.grid)
        overview = None
        if mosaic.overview is not None:
            mosaic.pending.extend(fresh)
            if not defer or not mosaic.overview.version:
                replaced: List[Path] = []
                mosaic.overview.update(mosaic.bounds, mosaic.pending, replaced)
                mosaic.overview.write_vrt(mosaic.grid.bounds, width, height, replaced)
                mosaic.pending.clear()
                mosaic.stale.update((path, now) for path in replaced)
            written = mosaic.overview.vrt_path()
            overview = f"{written.parent.name}/{written.name}"

        def block_sources(band: int):
            for block in sorted(mosaic.blocks):
                relative = f"{folder.name}/{self._block_path(mosaic, block).name}"
                yield placed_source(relative, band + 1, mosaic.band_types[band], width, height)
            if overview:
                yield overview_element(overview, band + 1)

        _write_atomic(mosaic.composite.path, _fill(mosaic.parts, block_sources))
        self._forget_stale(mosaic, now)

    @staticmethod
    def _forget_stale(mosaic: _Mosaic, now: float) -> None:
        """Delete the superseded blocks no layer can still be reading (older than :data:`STALE_SECONDS`)."""
        for path, since in list(mosaic.stale.items()):
            if now - since >= STALE_SECONDS:
                path.unlink(missing_ok=True)
                del mosaic.stale[path]

    def _block_path(self, mosaic: _Mosaic, block: int) -> Path:
        version = mosaic.blocks.get(block, 0)
        folder = mosaic.composite.path.with_suffix(".blocks")
        return folder / f"{mosaic.composite.path.stem}_b{block:03d}_k{self.session}_v{version}.vrt"


def _grid_size(grid: _Grid) -> Tuple[int, int]:
    west, south, east, north = grid.bounds
    return round((east - west) / grid.x_res), round((north - south) / grid.y_res)


def _fill(parts: List[str], band_sources) -> str:
    """The template's text with each band's sources (``band_sources(band)``: strings) in place."""
    pieces = [parts[0]]
    for band, tail in enumerate(parts[1:]):
        pieces.extend(band_sources(band))
        pieces.append(tail)
    return "".join(pieces)


def _write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file, then rename it: a reader never sees half a file."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def planned_bounds(extents: Iterable[object]) -> Dict[int, Bounds]:
    """Per EPSG code, the union of a tracker's ``spatial_extent`` cells (dicts or JSON) with a ``crs``."""
    from ..recipes.process_graphs import decode_cell

    planned: Dict[int, Bounds] = {}
    for cell in extents:
        try:  # a damaged cell (hand-edited tracker) leaves that tile out of the grid, not the run's mosaics
            extent = decode_cell(cell) if isinstance(cell, str) else cell
            if not isinstance(extent, dict):
                continue
            epsg = int(str(extent.get("crs", 4326)).split(":")[-1])
            bounds = (float(extent["west"]), float(extent["south"]), float(extent["east"]), float(extent["north"]))
        except (KeyError, TypeError, ValueError, SyntaxError):
            continue
        if epsg == 4326:
            continue  # a lat/lon extent says nothing of the UTM grid
        planned[epsg] = _union(planned[epsg], bounds) if epsg in planned else bounds
    return planned
