"""The collections every recipe loads, by their CDSE ids (the local backend uses the same)."""

from __future__ import annotations

from typing import Dict, List, Sequence

from openeo.metadata import Band, BandDimension, CubeMetadata, SpatialDimension, TemporalDimension
from openeo.rest.datacube import DataCube

S1_COLLECTION = "SENTINEL1_GLOBAL_MOSAICS"
S2_COLLECTION = "SENTINEL2_L2A"
SCL_BAND = "SCL"
COLLECTIONS = {1: S1_COLLECTION, 2: S2_COLLECTION}


def load_bands(
    collection_id: str,
    bands: List[str],
    spatial_extent: Dict,
    temporal_extent: Sequence[str],
    band_metadata: bool = True,
    **filters,
) -> DataCube:
    """``load_collection`` without a connection, with the band metadata the client's helpers read.

    ``band_metadata=False``: none, so ``cube.band(name)`` refers to bands by label, not index (the
    monthly recipe's graphs, unchanged since 0.1: a resumed run builds the same graph).
    """
    cube = DataCube.load_collection(
        collection_id,
        connection=None,
        spatial_extent=spatial_extent,
        temporal_extent=list(temporal_extent),
        bands=bands,
        fetch_metadata=False,
        **filters,
    )
    if not band_metadata:
        return cube
    cube.metadata = CubeMetadata(
        dimensions=[
            SpatialDimension(name="x", extent=[None, None]),
            SpatialDimension(name="y", extent=[None, None]),
            TemporalDimension(name="t", extent=[None, None]),
            BandDimension(name="bands", bands=[Band(name) for name in bands]),
        ]
    )
    return cube
