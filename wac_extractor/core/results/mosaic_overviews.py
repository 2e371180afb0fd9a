"""A month mosaic's own overview: the mosaic at 1/:data:`FACTOR` of its resolution, in chunk files.

Zoomed out on a run, QGIS asks GDAL for the mosaic at a fraction of its resolution. A VRT without
overviews of its own reads that from each source (each tile's display copy has overviews), so a draw
of 1,000 tiles opened 1,000 files: 7.2 s, most of it opening them. GDAL's VRT takes an explicit
``<Overview>`` per band (any dataset of the right size, here a VRT over the chunk files), and uses it
for a request at ``FACTOR`` or coarser; each chunk is a COG whose own overviews serve the coarser
zooms, so a draw of the whole run opens the few dozen chunks the view touches.

When a tile arrives, the overview pixels under it (widened to whole overview pixels, so a pixel
shared with a neighbour is averaged over both) are read through GDAL (an in-memory VRT of the tiles
there at the overview's resolution, average resampling: the tiles' own overviews) and pasted into the
chunks they fall in. As the mosaic's blocks, a chunk and the overview VRT are written under a new name
each time (``..._c2_-1_k3f9a_v4.tif``), never over a file a reader may hold; the caller deletes the
superseded ones later. The chunks' lattice is fixed to the mosaic's first grid corner, so a grid that
grows only moves them in the overview VRT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

import numpy as np

from .composites import _gdal, overview_count

Bounds = Tuple[float, float, float, float]  # west, south, east, north
FACTOR = 4  # an overview pixel is FACTOR x FACTOR mosaic pixels (a draw at 1:4 and coarser reads it)
CHUNK_PX = 512  # about a chunk's side in overview pixels (2,048 mosaic pixels, 4 x 4 tiles of 10 km at 20 m)
_EPS = 1e-6  # GDAL's geotransforms carry float noise: 1.9999996 pixels is 2


@dataclass
class MosaicOverview:
    """The overview of one mosaic: chunk files in ``folder``, named after ``stem`` and the writing ``session``."""

    folder: Path
    stem: str
    session: str
    anchor: Tuple[float, float]  # the chunk lattice's corner (west, north): the mosaic's first grid corner
    x_res: float  # the overview's pixel size
    y_res: float
    bands: int
    chunk_px: int = CHUNK_PX  # a chunk's side in overview pixels (:func:`chunk_size`)
    chunks: Dict[Tuple[int, int], int] = field(default_factory=dict)  # chunk (column, row): its file's version
    version: int = 0  # of the overview VRT

    def _window(self, bounds: Bounds) -> Tuple[int, int, int, int]:
        """The overview pixels (columns, rows from the anchor; end excluded) that ``bounds`` touches."""
        ax, ay = self.anchor
        return (
            math.floor((bounds[0] - ax) / self.x_res + _EPS),
            math.floor((ay - bounds[3]) / self.y_res + _EPS),
            math.ceil((bounds[2] - ax) / self.x_res - _EPS),
            math.ceil((ay - bounds[1]) / self.y_res - _EPS),
        )

    def _world(self, col0: int, row0: int, col1: int, row1: int) -> Bounds:
        ax, ay = self.anchor
        return (ax + col0 * self.x_res, ay - row1 * self.y_res, ax + col1 * self.x_res, ay - row0 * self.y_res)

    def chunk_path(self, chunk: Tuple[int, int]) -> Path:
        version = self.chunks.get(chunk, 0)
        return self.folder / f"{self.stem}_c{chunk[0]}_{chunk[1]}_k{self.session}_v{version}.tif"

    def vrt_path(self) -> Path:
        return self.folder / f"{self.stem}_overview_k{self.session}_v{self.version}.vrt"

    def _read(self, tiles: Dict[Path, Bounds], window: Tuple[int, int, int, int]):
        """The overview's pixels in ``window``: the tiles there (in mosaic order) averaged down by GDAL."""
        gdal = _gdal()
        bounds = self._world(*window)
        under = [
            str(p)
            for p, b in tiles.items()
            if b[0] < bounds[2] and b[2] > bounds[0] and b[1] < bounds[3] and b[3] > bounds[1]
        ]
        options = gdal.BuildVRTOptions(
            outputBounds=bounds, xRes=self.x_res, yRes=self.y_res, srcNodata="nan", VRTNodata="nan",
            resampleAlg="average",
        )  # fmt: skip
        dataset = gdal.BuildVRT("", under, options=options)
        pixels = dataset.ReadAsArray(buf_type=gdal.GDT_Float32)
        return pixels.reshape((self.bands, *pixels.shape[-2:])).astype(np.float32, copy=False)

    def update(self, tiles: Dict[Path, Bounds], fresh: Iterable[Path], stale: List[Path]) -> None:
        """Paste the pixels under the ``fresh`` tiles into their chunks, each written under a new name;
        the names replaced go to ``stale``."""
        gdal = _gdal()
        self.folder.mkdir(parents=True, exist_ok=True)
        pending: Dict[Tuple[int, int], np.ndarray] = {}
        for path in fresh:
            col0, row0, col1, row1 = window = self._window(tiles[path])
            pixels = self._read(tiles, window)
            for cx in range(col0 // self.chunk_px, (col1 - 1) // self.chunk_px + 1):
                for cy in range(row0 // self.chunk_px, (row1 - 1) // self.chunk_px + 1):
                    chunk = pending.get((cx, cy))
                    if chunk is None:
                        chunk = pending[(cx, cy)] = self._chunk_pixels((cx, cy))
                    x0, y0 = max(col0, cx * self.chunk_px), max(row0, cy * self.chunk_px)
                    x1, y1 = min(col1, (cx + 1) * self.chunk_px), min(row1, (cy + 1) * self.chunk_px)
                    left, top = cx * self.chunk_px, cy * self.chunk_px
                    chunk[:, y0 - top : y1 - top, x0 - left : x1 - left] = pixels[
                        :, y0 - row0 : y1 - row0, x0 - col0 : x1 - col0
                    ]
        for key, chunk in pending.items():
            if key in self.chunks:
                stale.append(self.chunk_path(key))
            self.chunks[key] = self.chunks.get(key, 0) + 1
            memory = gdal.GetDriverByName("MEM").Create("", self.chunk_px, self.chunk_px, self.bands, gdal.GDT_Float32)
            west, _, _, north = self._world(key[0] * self.chunk_px, key[1] * self.chunk_px, 0, 0)
            memory.SetGeoTransform((west, self.x_res, 0, north, 0, -self.y_res))
            for band in range(self.bands):
                memory.GetRasterBand(band + 1).SetNoDataValue(float("nan"))
                memory.GetRasterBand(band + 1).WriteArray(chunk[band])
            _write_chunk(memory, self.chunk_path(key), self.chunk_px)

    def _chunk_pixels(self, chunk: Tuple[int, int]):
        """A chunk's pixels as last written (NaN: no tile there yet)."""
        if chunk not in self.chunks:
            return np.full((self.bands, self.chunk_px, self.chunk_px), np.nan, dtype=np.float32)
        dataset = _gdal().Open(str(self.chunk_path(chunk)))
        return dataset.ReadAsArray().reshape((self.bands, self.chunk_px, self.chunk_px))

    def write_vrt(self, grid_bounds: Bounds, width: int, height: int, stale: List[Path]) -> Path:
        """The overview of a mosaic of ``width`` x ``height`` pixels over ``grid_bounds``: a VRT over the chunks,
        under a new name (the one before goes to ``stale``)."""
        if self.version:
            stale.append(self.vrt_path())
        self.version += 1
        west, _, _, north = grid_bounds
        ax, ay = self.anchor
        x_shift, y_shift = (ax - west) / self.x_res, (north - ay) / self.y_res
        header = (
            f'<VRTDataset rasterXSize="{max(1, round(width / FACTOR))}" rasterYSize="{max(1, round(height / FACTOR))}">'
            f"<GeoTransform>{west!r}, {self.x_res!r}, 0, {north!r}, 0, {-self.y_res!r}</GeoTransform>"
        )
        bands = []
        for band in range(1, self.bands + 1):
            sources = "".join(
                placed_source(
                    self.chunk_path(key).name,
                    band,
                    "Float32",
                    self.chunk_px,
                    self.chunk_px,
                    float(x_shift + key[0] * self.chunk_px),
                    float(y_shift + key[1] * self.chunk_px),
                )
                for key in sorted(self.chunks)
            )
            band_head = f'<VRTRasterBand dataType="Float32" band="{band}"><NoDataValue>nan</NoDataValue>'
            bands.append(f"{band_head}{sources}</VRTRasterBand>")
        path = self.vrt_path()
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(header + "".join(bands) + "</VRTDataset>")
        temporary.replace(path)
        return path


def _write_chunk(memory, path: Path, size: int) -> None:
    """A chunk as a tiled GeoTIFF with its own overviews (NaN-aware average), whole or not at all.

    Overviews built in memory and copied: 27 ms for a chunk where the COG driver (``write_cog``) took
    116 ms (it writes the overviews to a temporary file first), at the same size (ZSTD level 1).
    """
    gdal = _gdal()
    memory.BuildOverviews("AVERAGE", [2**k for k in range(1, overview_count(size, size) + 1)])
    options = [
        "TILED=YES",
        "BLOCKXSIZE=128",
        "BLOCKYSIZE=128",
        "COMPRESS=ZSTD",
        "ZSTD_LEVEL=1",
        "COPY_SRC_OVERVIEWS=YES",
    ]
    temporary = path.with_name(f".{path.name}.part")
    try:
        gdal.Translate(str(temporary), memory, format="GTiff", creationOptions=options)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def chunk_size(tile_px: int) -> int:
    """A chunk's side in overview pixels: whole tiles of ``tile_px`` mosaic pixels near :data:`CHUNK_PX`, so a
    tile of a planned grid falls in one chunk (and one chunk is written per tile), else :data:`CHUNK_PX`."""
    tiles = max(1, round(CHUNK_PX * FACTOR / max(1, tile_px)))
    return tile_px * tiles // FACTOR if tile_px * tiles % FACTOR == 0 else CHUNK_PX


def placed_source(
    name: str, band: int, data_type: str, width: int, height: int, x_off: float = 0, y_off: float = 0
) -> str:
    """A file's band on a VRT's grid at ``(x_off, y_off)``, pixel for pixel (a mosaic's block, an overview's
    chunk); NaN (nothing there) lets what is under it show."""
    return (
        f'<ComplexSource><SourceFilename relativeToVRT="1">{name}</SourceFilename><SourceBand>{band}</SourceBand>'
        f'<SourceProperties RasterXSize="{width}" RasterYSize="{height}" DataType="{data_type}" BlockXSize="128" '
        f'BlockYSize="128"/><SrcRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>'
        f'<DstRect xOff="{x_off!r}" yOff="{y_off!r}" xSize="{width}" ySize="{height}"/>'
        "<NODATA>nan</NODATA></ComplexSource>"
    )


def overview_element(relative: str, band: int) -> str:
    """The ``<Overview>`` of a mosaic band: band ``band`` of the overview VRT at ``relative``."""
    return (
        f'<Overview><SourceFilename relativeToVRT="1">{relative}</SourceFilename>'
        f"<SourceBand>{band}</SourceBand></Overview>"
    )
