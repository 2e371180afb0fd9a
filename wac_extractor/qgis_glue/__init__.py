"""qgis_glue."""
