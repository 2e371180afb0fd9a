"""The LCFM feature recipe: what the notebook's ``eo_fetcher`` computes per job, as openEO graphs.

Sentinel-1: VV, VH and the VH/VV power ratio, percentiles over the window (15 bands).
Sentinel-2: six bands + NDVI, masked with an SCL mask (clouds eroded then dilated with disc kernels,
non-permanent snow, saturated pixels, pixels mostly invalid), then dekad-interpolated percentiles
(35 bands) and monthly medians (7 x months bands), clipped to the int16 range.

Every step is a standard openEO process, so any backend runs it; the graphs are built without a
connection, as in :mod:`process_graphs`.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

from openeo.extra.spectral_indices import append_and_rescale_indices
from openeo.processes import ProcessBuilder, and_, array_create, not_, or_
from openeo.processes import any as any_
from openeo.rest.datacube import DataCube

from .sentinel import S1_COLLECTION, S2_COLLECTION, SCL_BAND, load_bands

S1_INPUT_BANDS = ["VV", "VH"]
# "VH/VV" in the notebook: a slash is not allowed in a NetCDF variable name.
S1_BANDS = ["VV", "VH", "VH_VV"]
S2_INPUT_BANDS = ["B02", "B03", "B04", "B08", "B11", "B12"]
S2_BANDS = S2_INPUT_BANDS + ["NDVI"]

PERCENTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
PERCENTILE_NAMES = ("P10", "P25", "P50", "P75", "P90")

# SCL classes (Sentinel-2 L2A scene classification) and the per-observation flags built from them.
SCL_CLOUD_CLASSES = (3, 8, 9, 10)  # cloud shadow, cloud medium / high probability, thin cirrus
SCL_FLAGS: Dict[str, int] = {"saturated": 1, "dark": 2, "snow": 11, "water": 6, "veg": 4, "notveg": 5}
SCL_NO_DATA = 0
FLAG_NAMES = ["clouds", "saturated", "dark", "snow", "water", "veg", "notveg", "observed"]
COVER_NAMES = [f"cover_{name}" for name in FLAG_NAMES[:-1]]

CLOUD_ERODE_RADIUS = 3
CLOUD_DILATE_RADIUS = 13
SNOW_DILATE_RADIUS = 3
PERMANENT_SNOW_COVER = 0.9  # snow on more than 90 % of the valid (cloud-free, unsaturated) dates
MAX_INVALID_RATIO = 0.9  # a pixel masked on more than 90 % of its observed dates is masked on all
INT16_LIMIT = 32766

NDVI_RESCALE = {
    "collection": {"input_range": None, "output_range": None},  # reflectances keep their range
    "indices": {"NDVI": {"input_range": [-1, 1], "output_range": [-10000, 10000]}},
}


def disc_kernel(radius: int) -> List[List[int]]:
    """A (2r+1) x (2r+1) kernel of 1 where x^2 + y^2 <= r^2, else 0."""
    span = range(-radius, radius + 1)
    return [[1 if x * x + y * y <= radius * radius else 0 for x in span] for y in span]


def percentile_names(bands: Sequence[str]) -> List[str]:
    return [f"{band}_{name}" for band in bands for name in PERCENTILE_NAMES]


def month_names(bands: Sequence[str], months: int) -> List[str]:
    return [f"{band}_M{k}" for band in bands for k in range(1, months + 1)]


def s1_variables() -> List[str]:
    return percentile_names(S1_BANDS)


def s2_variables(months: int) -> List[str]:
    return percentile_names(S2_BANDS) + month_names(S2_BANDS, months)


def _percentiles_as_bands(cube: DataCube, bands: Sequence[str]) -> DataCube:
    """Percentiles over ``t`` become bands ``<band>_P10`` ... (``t`` is gone)."""
    stats = cube.apply_dimension(
        dimension="t", target_dimension="bands", process=lambda x: x.quantiles(probabilities=list(PERCENTILES))
    )
    return stats.rename_labels("bands", target=percentile_names(bands))


def sentinel1_cube(spatial_extent: Dict, temporal_extent: Sequence[str]) -> DataCube:
    """VV, VH and VH/VV (linear power ratio) P10..P90 over the window."""
    cube = load_bands(S1_COLLECTION, S1_INPUT_BANDS, spatial_extent, temporal_extent)
    with_ratio = cube.apply_dimension(
        dimension="bands", process=lambda x: x.array_append(x.array_element(1) / x.array_element(0))
    ).rename_labels("bands", target=S1_BANDS)
    return _percentiles_as_bands(with_ratio, S1_BANDS)


def _scl_flags(bands: ProcessBuilder) -> ProcessBuilder:
    scl = bands.array_element(0)
    clouds = any_(array_create([scl == value for value in SCL_CLOUD_CLASSES]))
    flags = [clouds] + [scl == SCL_FLAGS[name] for name in FLAG_NAMES[1:-1]] + [scl != SCL_NO_DATA]
    return array_create(flags)


def _covers(counts: ProcessBuilder) -> ProcessBuilder:
    observed = counts.array_element(len(FLAG_NAMES) - 1)
    return array_create([counts.array_element(i) / observed for i in range(len(COVER_NAMES))])


def _is_permanent_snow(covers: ProcessBuilder) -> ProcessBuilder:
    valid = (
        1
        - covers.array_element(COVER_NAMES.index("cover_clouds"))
        - covers.array_element(COVER_NAMES.index("cover_saturated"))
    )
    return covers.array_element(COVER_NAMES.index("cover_snow")) / valid > PERMANENT_SNOW_COVER


def scl_mask(scl: DataCube) -> DataCube:
    """True where an observation is not used: clouds (eroded, dilated), saturated, non-permanent snow.

    Pixels masked on more than 90 % of their observed dates are masked on every date.
    """
    flags = scl.apply_dimension(dimension="bands", process=_scl_flags).rename_labels("bands", target=FLAG_NAMES)
    covers = (
        flags.reduce_dimension(dimension="t", reducer="sum")
        .apply_dimension(dimension="bands", process=_covers)
        .rename_labels("bands", target=COVER_NAMES)
    )
    permanent_snow = covers.reduce_dimension(dimension="bands", reducer=_is_permanent_snow)
    snow = flags.band("snow")
    snow_on_permanent = snow.merge_cubes(permanent_snow, overlap_resolver=and_)
    snow_elsewhere = snow.merge_cubes(permanent_snow.apply(not_), overlap_resolver=and_)
    dilated_snow = snow_elsewhere.apply_kernel(disc_kernel(SNOW_DILATE_RADIUS)) > 0
    non_permanent_snow = dilated_snow.merge_cubes(snow_on_permanent.apply(not_), overlap_resolver=and_)

    # Erosion: a pixel stays cloud only if no pixel of its disc is clear; then dilation: any cloud in the disc.
    clouds = flags.band("clouds")
    eroded = clouds.apply(not_).apply_kernel(disc_kernel(CLOUD_ERODE_RADIUS)) == 0
    dilated = eroded.apply_kernel(disc_kernel(CLOUD_DILATE_RADIUS)) > 0

    mask = dilated.merge_cubes(flags.band("saturated"), overlap_resolver=or_).merge_cubes(
        non_permanent_snow, overlap_resolver=or_
    )
    observed = flags.band("observed")
    masked_ratio = (
        mask.merge_cubes(observed, overlap_resolver=and_)
        .reduce_dimension(dimension="t", reducer="sum")
        .merge_cubes(observed.reduce_dimension(dimension="t", reducer="sum"), overlap_resolver="divide")
    )
    return mask.merge_cubes(masked_ratio > MAX_INVALID_RATIO, overlap_resolver=or_)


def sentinel2_cube(spatial_extent: Dict, temporal_extent: Sequence[str], max_cloud_cover: float, months: int):
    """Masked six bands + NDVI: dekad-interpolated P10..P90 and monthly medians, in the int16 range."""

    cloud_filter = {"max_cloud_cover": max_cloud_cover}
    scl = load_bands(S2_COLLECTION, [SCL_BAND], spatial_extent, temporal_extent, **cloud_filter)
    reflectances = load_bands(S2_COLLECTION, S2_INPUT_BANDS, spatial_extent, temporal_extent, **cloud_filter)
    reflectances = reflectances.mask(scl_mask(scl))
    with_ndvi = append_and_rescale_indices(reflectances, NDVI_RESCALE, platform="Sentinel-2")

    dekads = with_ndvi.aggregate_temporal_period("dekad", reducer="median").apply_dimension(
        dimension="t", process=lambda x: x.array_interpolate_linear()
    )
    yearly = _percentiles_as_bands(dekads, S2_BANDS)
    monthly = (
        with_ndvi.aggregate_temporal_period("month", reducer="median")
        .apply_dimension(dimension="t", target_dimension="bands", process=lambda x: array_create(data=x))
        .rename_labels("bands", target=month_names(S2_BANDS, months))
    )
    return yearly.merge_cubes(monthly).linear_scale_range(-INT16_LIMIT, INT16_LIMIT, -INT16_LIMIT, INT16_LIMIT)
