"""The monthly-composites recipe, for quick looks: S2 monthly median (SCL class mask), S1 monthly mean in dB."""

from __future__ import annotations

from typing import Dict, List, Sequence

from openeo.rest.datacube import DataCube

from .sentinel import S1_COLLECTION, S2_COLLECTION, SCL_BAND, load_bands

S2_BANDS = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
S1_BANDS = ["VV", "VH"]
# SCL classes masked out: no data, saturated/defective, cloud shadow, cloud medium/high, cirrus, snow.
S2_MASKED_SCL_CLASSES = [0, 1, 3, 8, 9, 10, 11]
# CDSE's recommended parameters for its dilated SCL mask: clouds/shadows (mask2) dilated widely.
SCL_DILATION_PROCESS = "to_scl_dilation_mask"
SCL_DILATION_ARGS = {
    "kernel1_size": 17,
    "kernel2_size": 77,
    "mask1_values": [2, 4, 5, 6, 7],
    "mask2_values": [3, 8, 9, 10, 11],
    "erosion_kernel_size": 3,
}


def variables(sentinel: int) -> List[str]:
    """The band variables a monthly result holds (one time step per month)."""
    return list(S2_BANDS) if int(sentinel) == 2 else list(S1_BANDS)


def _scl_class_mask(cube: DataCube, classes: Sequence[int]) -> DataCube:
    scl = cube.band(SCL_BAND)
    mask = scl == classes[0]
    for value in classes[1:]:
        mask = mask | (scl == value)
    return mask


def sentinel2_cube(
    spatial_extent: Dict, temporal_extent: Sequence[str], max_cloud_cover: float, has_scl_dilation: bool
) -> DataCube:
    """Monthly median composite of cloud-masked Sentinel-2 L2A reflectances."""
    bands = S2_BANDS + [SCL_BAND]
    cube = load_bands(S2_COLLECTION, bands, spatial_extent, temporal_extent, False, max_cloud_cover=max_cloud_cover)
    if has_scl_dilation:
        scl = cube.filter_bands([SCL_BAND])
        dilated = scl.process(SCL_DILATION_PROCESS, data=scl, scl_band_name=SCL_BAND, **SCL_DILATION_ARGS)
        masked = cube.filter_bands(S2_BANDS).mask(dilated).mask(_scl_class_mask(cube, [0, 1]))
    else:
        masked = cube.filter_bands(S2_BANDS).mask(_scl_class_mask(cube, S2_MASKED_SCL_CLASSES))
    return masked.aggregate_temporal_period("month", reducer="median")


def sentinel1_cube(spatial_extent: Dict, temporal_extent: Sequence[str]) -> DataCube:
    """Monthly Sentinel-1 backscatter (VV, VH) from CDSE's global mosaics, in dB."""
    cube = load_bands(S1_COLLECTION, S1_BANDS, spatial_extent, temporal_extent, band_metadata=False)
    monthly = cube.aggregate_temporal_period("month", reducer="mean")
    return monthly.apply(lambda x: 10 * x.log(10))
