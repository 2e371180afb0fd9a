"""QGIS-free core of WAC Extractor: planning, process graphs, job tracker and runner.

Nothing in this package may import ``qgis`` or ``PyQt5``: it runs headless, in tests and in
the command line tool, and is what the QGIS glue drives.
"""
