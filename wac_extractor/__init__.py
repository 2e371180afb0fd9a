"""WAC Extractor: Sentinel-1/2 LCFM features or monthly composites for many AOIs through openEO, from QGIS.

``core`` is plain Python (usable headless); everything else is QGIS glue, imported only when
QGIS loads the plugin through :func:`classFactory`.
"""

__version__ = "0.1.0"


def classFactory(iface):  # noqa: N802  (QGIS's name)
    from .plugin import WacExtractorPlugin

    return WacExtractorPlugin(iface)
