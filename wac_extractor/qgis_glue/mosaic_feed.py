"""Downloaded results into month-mosaic updates, off the UI thread (the task's worker, the bench)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pandas as pd
from qgis.core import QgsRasterLayer

from ..core.results.composites import WindowComposite, result_composites
from ..core.results.mosaics import MonthMosaics, MosaicUpdate, planned_bounds
from .layers import composite_layer, mosaic_layer_name, to_ui_thread

_log = logging.getLogger(__name__)

OVERVIEW_EVERY = 32  # results of before re-added between two writes of the mosaics' overviews

# A mosaic update and, for a new mosaic, its layer opened in the worker thread (QGIS reads the data to
# set up a default stretch: 17 s for a 300-tile mosaic, a few ms for the one tile it has when new).
Shown = Tuple[MosaicUpdate, Optional[QgsRasterLayer]]


def row_composites(row: pd.Series, output_dir: Path) -> List[WindowComposite]:
    """The composite VRTs of a finished job's results (written next to them)."""
    composites = []
    for relative in json.loads(row.get("result_files") or "[]"):
        path = Path(output_dir) / relative
        if path.suffix == ".nc" and path.exists():
            composites.extend(result_composites(path, row))
    return composites


def finished_rows(jobs: pd.DataFrame) -> pd.DataFrame:
    """The jobs whose results were downloaded and checked."""
    if "result_status" not in jobs.columns:
        return jobs.iloc[0:0]
    return jobs[jobs["status"].eq("finished") & jobs["result_status"].eq("ok")]


class MosaicFeed:
    """The run's month mosaics under ``<output>/mosaics``, on a grid of all the tracker's planned tiles."""

    def __init__(self, output_dir: Path, jobs: pd.DataFrame, to_ui: bool = True):
        """``to_ui``: hand new layers to the UI thread (the task); False keeps them in the calling thread
        (Processing moves its context's layers itself)."""
        self.output_dir = Path(output_dir)
        self.to_ui = to_ui
        extents = jobs["spatial_extent"] if "spatial_extent" in jobs.columns else []
        self.mosaics = MonthMosaics(self.output_dir / "mosaics", planned_bounds(extents))

    def add_row(self, row: pd.Series, defer_overview: bool = False) -> List[Shown]:
        """Place one finished job's composites in their mosaics; new mosaics come with their layer."""
        updates = self.mosaics.add(row_composites(row, self.output_dir), defer_overview)
        return [(update, self._layer(update) if update.created else None) for update in updates]

    def add_rows(self, jobs: pd.DataFrame) -> Iterator[List[Shown]]:
        """The mosaics of jobs finished before (a resumed run, a reopened tracker), a batch per job.

        One job at a time, so a new mosaic's layer is opened while it holds one tile; the mosaics' overviews
        (a zoomed-out draw) are written every :data:`OVERVIEW_EVERY` jobs and at the end.
        """
        for number, (_, row) in enumerate(finished_rows(jobs).iterrows(), start=1):
            try:
                shown = self.add_row(row, defer_overview=True)
            except (OSError, RuntimeError, ValueError) as exc:  # a result moved or damaged: the others still show
                _log.warning("%s: not added to the month mosaics: %s", row.get("title"), exc)
                shown = []
            if number % OVERVIEW_EVERY == 0:
                shown = shown + self._flush()
            if shown:
                yield shown
        flushed = self._flush()
        if flushed:
            yield flushed

    def _flush(self) -> List[Shown]:
        try:
            return [(update, None) for update in self.mosaics.flush_overviews()]
        except (OSError, RuntimeError, ValueError) as exc:  # a result gone meanwhile: the mosaics still show
            _log.warning("The month mosaics' overviews were not written: %s", exc)
            return []

    def _layer(self, update: MosaicUpdate) -> QgsRasterLayer:
        layer = composite_layer(update.composite, mosaic_layer_name(update.composite), read_only=True)
        return to_ui_thread(layer) if self.to_ui else layer
