"""The collections every recipe loads, by their CDSE ids (the local backend uses the same)."""

S1_COLLECTION = "SENTINEL1_GLOBAL_MOSAICS"
S2_COLLECTION = "SENTINEL2_L2A"
SCL_BAND = "SCL"
COLLECTIONS = {1: S1_COLLECTION, 2: S2_COLLECTION}
