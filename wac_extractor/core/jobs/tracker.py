"""Job trackers: the file that remembers every job, so closing QGIS loses nothing.

Two implementations of openeo's ``JobDatabaseInterface``:

- :class:`GeoPackageTracker` (default): one ``jobs`` table with the job footprints, so QGIS
  draws the tracker itself as the job-tile layer. GDAL/OGR creates the file (metadata tables,
  SRS, spatial index); status changes are row-level SQL ``UPDATE`` statements in transactions, so
  an update costs the same for 100 or 100,000 jobs and a crash mid-write never corrupts the file.
- :class:`CsvTracker`: the notebook's CSV, read leniently (missing manager columns get their
  defaults) and written atomically (temporary file + rename).
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import sqlite3
import struct
import tempfile
import threading
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
import pandas as pd
import shapely
from openeo.extra.job_management import CsvJobDatabase, JobDatabaseInterface

from .openeo_private import job_table_dtypes, merge_into_csv_frame, normalize_job_table

_log = logging.getLogger(__name__)

TABLE = "jobs"
GEOMETRY_COLUMN = "geom"
FID_COLUMN = "fid"
JSON_COLUMNS = ("spatial_extent", "temporal_extent")
ACTIVE_STATUSES = ("created", "queued", "queued_for_start", "running")
PENDING_STATUSES = ("not_started",) + ACTIVE_STATUSES
SRS_ID = 4326
# What "retry" writes: the job is planned again, its old remote job and results forgotten.
RESET_VALUES = {
    "status": "not_started",
    "id": None,
    "backend_name": None,
    "start_time": None,
    "running_start_time": None,
    "job_key": None,
    "create_requested_at": None,
    "result_status": None,
    "result_files": None,
    "error_message": None,
}


class TrackerError(Exception):
    """A tracker file that cannot be used; the message says what to do."""


class TrackerLock:
    """An exclusive lock on ``<tracker>.lock`` while a run uses the tracker.

    Two runs on one tracker (a second QGIS, a terminal) would both start its jobs: the second run
    is refused. The OS releases the lock when the process dies, so a killed run can be resumed.
    """

    def __init__(self, tracker_path: Union[str, Path]):
        self.path = Path(str(tracker_path) + ".lock")
        self._handle = None

    def acquire(self) -> TrackerLock:
        handle = open(self.path, "a+")
        try:
            _lock_file(handle)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise TrackerError(
                f"{self.path.with_suffix('')} is in use by another run ({holder}); wait for it to finish "
                "or cancel it (e.g. close the other QGIS), then run again."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
            self._handle.close()  # closing the file releases the lock
            self._handle = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _lock_file(handle) -> None:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def normalize_jobs(df: pd.DataFrame) -> pd.DataFrame:
    """Add the columns MultiBackendJobManager needs (``status`` = ``not_started`` etc.) when missing."""
    df = normalize_job_table(df)
    df["status"] = df["status"].fillna("not_started")
    return df


def _to_sql_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _sql_type(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_integer_dtype(series):
        return "INTEGER"
    if pd.api.types.is_float_dtype(series):
        return "REAL"
    return "TEXT"


def _quote(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _insert_sql(attributes: Sequence[str]) -> str:
    """INSERT of one job row: fid, footprint, then ``attributes``."""
    names = ", ".join([FID_COLUMN, GEOMETRY_COLUMN] + [_quote(c) for c in attributes])
    return f"INSERT INTO {_quote(TABLE)} ({names}) VALUES ({', '.join('?' * (len(attributes) + 2))})"


# --- GeoPackage geometry blobs (GPKG spec 2.1.3: "GP" header, optional envelope, then WKB) ---


def encode_gpkg_geometry(wkt: Optional[str]) -> Optional[bytes]:
    if not isinstance(wkt, str) or not wkt:
        return None
    geometry = shapely.from_wkt(wkt)
    minx, miny, maxx, maxy = geometry.bounds
    flags = 0b0000_0011  # little endian, envelope [minx, maxx, miny, maxy]
    header = b"GP" + bytes([0, flags]) + struct.pack("<i", SRS_ID) + struct.pack("<4d", minx, maxx, miny, maxy)
    return header + shapely.to_wkb(geometry, byte_order=1)


def decode_gpkg_geometry(blob: Optional[bytes]) -> Optional[shapely.Geometry]:
    if not blob:
        return None
    flags = blob[3]
    envelope_size = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}[(flags >> 1) & 0b111]
    return shapely.from_wkb(bytes(blob[8 + envelope_size :]))


def register_gpkg_functions(con: sqlite3.Connection) -> None:
    """The ST_* functions GeoPackage's R-tree triggers call, which only GDAL's SQLite defines."""

    def bound(index):
        def fn(blob):
            geometry = decode_gpkg_geometry(blob)
            return None if geometry is None or geometry.is_empty else geometry.bounds[index]

        return fn

    def is_empty(blob):
        geometry = decode_gpkg_geometry(blob)
        return int(geometry is None or geometry.is_empty)

    con.create_function("ST_IsEmpty", 1, is_empty)
    for name, index in (("ST_MinX", 0), ("ST_MinY", 1), ("ST_MaxX", 2), ("ST_MaxY", 3)):
        con.create_function(name, 1, bound(index))


class GeoPackageTracker(JobDatabaseInterface):
    """Job tracker in a GeoPackage; the DataFrame index is the feature id (``fid``)."""

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        self._lock = threading.RLock()
        self._con: Optional[sqlite3.Connection] = None
        self._columns: Optional[List[str]] = None

    def __repr__(self) -> str:
        return f"GeoPackageTracker({str(self.path)!r})"

    # --- connection -------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._con is None:
            try:
                con = sqlite3.connect(self.path, timeout=10, check_same_thread=False, isolation_level=None)
                tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            except sqlite3.DatabaseError as exc:
                raise TrackerError(
                    f"{self.path} is not a readable GeoPackage ({exc}); choose another tracker file or a new name."
                ) from None
            if TABLE not in tables:
                con.close()
                raise TrackerError(
                    f"{self.path} has no '{TABLE}' table, so it is not a WAC Extractor tracker; "
                    "choose another tracker file or a new name."
                )
            # Only on a tracker: WAL changes the file's header, and a file that is not ours stays as it was.
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            register_gpkg_functions(con)
            self._con = con
            self._ensure_manager_columns()
        return self._con

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    def columns(self) -> List[str]:
        if self._columns is None:
            self._columns = [r[1] for r in self._connection().execute(f"PRAGMA table_info({_quote(TABLE)})")]
        return self._columns

    def _add_column(self, name: str, sql_type: str) -> None:
        self._connection().execute(f"ALTER TABLE {_quote(TABLE)} ADD COLUMN {_quote(name)} {sql_type}")
        self._columns = None

    def _ensure_manager_columns(self) -> None:
        defaults = normalize_jobs(pd.DataFrame({"status": pd.Series(dtype=object)}))
        existing = set(self.columns())
        for name in defaults.columns:
            if name not in existing:
                self._add_column(name, _sql_type(defaults[name]))
        self._con.execute(f"UPDATE {_quote(TABLE)} SET status = 'not_started' WHERE status IS NULL")
        self._con.execute(f"CREATE INDEX IF NOT EXISTS jobs_status_idx ON {_quote(TABLE)} (status)")

    # --- JobDatabaseInterface ------------------------------------------------------------------

    def exists(self) -> bool:
        return self.path.exists() and self.path.stat().st_size > 0

    def initialize_from_df(self, df: pd.DataFrame, *, on_exists: str = "error") -> GeoPackageTracker:
        """Create the GeoPackage from a job table (``geometry`` as WKT in EPSG:4326)."""
        if self.exists():
            if on_exists == "skip":
                return self
            raise FileExistsError(f"Tracker {self.path} already exists; open it to resume, or choose a new file name.")
        df = normalize_jobs(df.reset_index(drop=True))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.stem + ".creating.gpkg")
        temporary.unlink(missing_ok=True)
        _create_gpkg_schema(temporary, df)
        con = sqlite3.connect(temporary, isolation_level=None)
        try:
            attributes = [c for c in df.columns if c != "geometry"]
            geometries = df["geometry"] if "geometry" in df.columns else [None] * len(df)
            rows = (
                [int(fid) + 1, encode_gpkg_geometry(wkt)] + [_to_sql_value(v) for v in values]
                for fid, wkt, values in zip(df.index, geometries, df[attributes].itertuples(index=False))
            )
            con.execute("BEGIN")
            con.executemany(_insert_sql(attributes), rows)
            con.execute("COMMIT")
        finally:
            con.close()
        _create_spatial_index(temporary)
        os.replace(temporary, self.path)
        # Finish the file now (WAL mode, status index): a QGIS layer opened on the tracker before these
        # first-connection changes reads no features afterwards until it is reloaded.
        with self._lock:
            self._connection()
        return self

    def persist(self, df: pd.DataFrame) -> None:
        """Write the given rows (any subset of columns) back, one UPDATE per row, in one transaction."""
        if df is None or df.empty:
            return
        columns = [c for c in df.columns if c not in ("geometry", FID_COLUMN, GEOMETRY_COLUMN)]
        with self._lock:
            con = self._connection()
            for name in columns:
                if name not in self.columns():
                    self._add_column(name, _sql_type(df[name]))
            assignments = ", ".join(f"{_quote(c)} = ?" for c in columns)
            values = df[columns].astype(object).to_numpy()
            con.execute("BEGIN IMMEDIATE")
            try:
                for index, row in zip(df.index, values):
                    params = [_to_sql_value(v) for v in row] + [int(index) + 1]
                    cursor = con.execute(f"UPDATE {_quote(TABLE)} SET {assignments} WHERE fid = ?", params)
                    if cursor.rowcount == 0:
                        self._insert(con, index, df.loc[index])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def _insert(self, con: sqlite3.Connection, index, row: pd.Series) -> None:
        attributes = [c for c in row.index if c != "geometry"]
        params = [int(index) + 1, encode_gpkg_geometry(row.get("geometry"))] + [
            _to_sql_value(row[c]) for c in attributes
        ]
        con.execute(_insert_sql(attributes), params)

    def update_row(self, index: int, **values: Any) -> None:
        """Persist a few fields of one job (used for the runner's own bookkeeping)."""
        self.persist(pd.DataFrame([values], index=[index]))

    def reset_job(self, index: int) -> None:
        """Forget a job's remote state so the next run creates it again (retry)."""
        self.persist(pd.DataFrame([RESET_VALUES], index=[index]))

    def count_by_status(self, statuses: Iterable[str] = ()) -> Dict[str, int]:
        statuses = list(statuses)
        sql = f"SELECT status, COUNT(*) FROM {_quote(TABLE)}"
        if statuses:
            sql += f" WHERE status IN ({', '.join('?' * len(statuses))})"
        with self._lock:
            return dict(self._connection().execute(sql + " GROUP BY status", statuses).fetchall())

    def get_by_status(self, statuses: Sequence[str], max: Optional[int] = None) -> pd.DataFrame:  # noqa: A002
        statuses = list(statuses)
        where = f"status IN ({', '.join('?' * len(statuses))})" if statuses else "0"
        limit = f" LIMIT {int(max)}" if max is not None else ""
        return self._select(f"WHERE {where} ORDER BY fid{limit}", statuses)

    def get_by_indices(self, indices: Iterable[Union[int, str]]) -> pd.DataFrame:
        fids = sorted({int(i) + 1 for i in indices})
        if not fids:
            return self._select("WHERE 0", [])
        return self._select(f"WHERE fid IN ({', '.join('?' * len(fids))}) ORDER BY fid", fids)

    def statuses(self) -> Dict[int, str]:
        """Status per job index, cheaply (no geometry)."""
        with self._lock:
            rows = self._connection().execute(f"SELECT fid, status FROM {_quote(TABLE)}").fetchall()
        return {fid - 1: status for fid, status in rows}

    def read(self) -> pd.DataFrame:
        """All jobs."""
        return self._select("ORDER BY fid", [])

    def snapshot(self) -> pd.DataFrame:
        """All jobs without their footprints: cheap enough to refresh a job table often."""
        return self._select("ORDER BY fid", [], with_geometry=False)

    def _select(self, clause: str, params: Sequence, with_geometry: bool = True) -> pd.DataFrame:
        with self._lock:
            con = self._connection()
            attributes = [c for c in self.columns() if c not in (FID_COLUMN, GEOMETRY_COLUMN)]
            geometry = GEOMETRY_COLUMN if with_geometry else "NULL"
            names = ", ".join([FID_COLUMN, geometry] + [_quote(c) for c in attributes])
            rows = con.execute(f"SELECT {names} FROM {_quote(TABLE)} {clause}", list(params)).fetchall()
        frame = pd.DataFrame.from_records(rows, columns=[FID_COLUMN, "geometry"] + attributes)
        frame.index = pd.Index(frame.pop(FID_COLUMN).astype("int64") - 1)
        frame["geometry"] = [None if g is None else decode_gpkg_geometry(g).wkt for g in frame["geometry"]]
        for name in JSON_COLUMNS:
            if name in frame.columns:
                frame[name] = [json.loads(v) if isinstance(v, str) else v for v in frame[name]]
        if "costs" in frame.columns:
            frame["costs"] = pd.to_numeric(frame["costs"], errors="coerce")
        return frame[[c for c in attributes + ["geometry"]]]


def _create_gpkg_schema(path: Path, df: pd.DataFrame) -> None:
    """Empty ``jobs`` layer (polygons, EPSG:4326) with one field per column, made by OGR."""
    from osgeo import ogr, osr

    ogr.UseExceptions()
    osr.UseExceptions()
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(SRS_ID)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    try:
        layer = dataset.CreateLayer(
            TABLE,
            srs,
            ogr.wkbPolygon,
            options=[f"FID={FID_COLUMN}", f"GEOMETRY_NAME={GEOMETRY_COLUMN}", "SPATIAL_INDEX=NO"],
        )
        field_types = {"INTEGER": ogr.OFTInteger64, "REAL": ogr.OFTReal, "TEXT": ogr.OFTString}
        for name in df.columns:
            if name != "geometry":
                layer.CreateField(ogr.FieldDefn(str(name), field_types[_sql_type(df[name])]))
    finally:
        dataset = None  # noqa: F841  (closing an OGR dataset is dropping it)


def _create_spatial_index(path: Path) -> None:
    from osgeo import ogr

    dataset = ogr.Open(str(path), update=1)
    try:
        dataset.ExecuteSQL(f"SELECT CreateSpatialIndex('{TABLE}', '{GEOMETRY_COLUMN}')")
    finally:
        dataset = None  # noqa: F841


class CsvTracker(CsvJobDatabase):
    """The notebook's CSV tracker, opened leniently and written atomically.

    A CSV straight from the notebook (no ``status``/``id`` columns yet) opens without
    ``KeyError: 'status'``; dict and list cells are written as JSON.
    """

    def __init__(self, path: Union[str, Path]):
        super().__init__(path)
        self._lock = threading.RLock()  # the runner's download threads write too

    def read(self) -> pd.DataFrame:
        try:
            df = pd.read_csv(self.path, dtype=job_table_dtypes())
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise TrackerError(f"{self.path} is not a readable CSV job table ({exc}); choose another file.") from None
        return normalize_jobs(df)

    def persist(self, df: pd.DataFrame) -> None:
        with self._lock:
            if self.path.exists():  # openeo < 0.50 merges known columns only: add the runner's new ones first
                frame = self.df
                for column in df.columns.difference(frame.columns):
                    frame[column] = pd.Series(None, index=frame.index, dtype=object)
            merge_into_csv_frame(self, df)
            self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        frame = self.df.copy()
        for name in frame.columns:
            if frame[name].map(lambda v: isinstance(v, (dict, list, tuple))).any():
                frame[name] = frame[name].map(_to_sql_value)
        handle, temporary = tempfile.mkstemp(prefix=self.path.name, suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w", newline="") as stream:
                frame.to_csv(stream, index=False)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def initialize_from_df(self, df: pd.DataFrame, *, on_exists: str = "error") -> CsvTracker:
        if on_exists == "error" and self.path.exists():  # our words, as for a GeoPackage (openeo's say less)
            raise FileExistsError(f"Tracker {self.path} already exists; open it to resume, or choose a new file name.")
        super().initialize_from_df(normalize_jobs(df.reset_index(drop=True)), on_exists=on_exists)
        return self

    def update_row(self, index: int, **values: Any) -> None:
        self.persist(pd.DataFrame([values], index=[index]))

    def reset_job(self, index: int) -> None:
        """Forget a job's remote state so the next run creates it again (retry)."""
        with self._lock:
            for column, value in RESET_VALUES.items():
                if column in self.df.columns:
                    self.df[column] = self.df[column].astype(object)
                    self.df.at[index, column] = value
            self._write()

    def count_by_status(self, statuses: Iterable[str] = ()) -> dict:
        with self._lock:
            return super().count_by_status(statuses)

    def get_by_status(self, statuses, max=None) -> pd.DataFrame:  # noqa: A002
        with self._lock:
            return super().get_by_status(statuses, max=max).copy()

    def get_by_indices(self, indices) -> pd.DataFrame:
        with self._lock:
            return super().get_by_indices(indices).copy()

    def statuses(self) -> Dict[int, str]:
        with self._lock:
            return self.df["status"].to_dict()

    def snapshot(self) -> pd.DataFrame:
        with self._lock:
            return self.df.copy()

    def close(self) -> None:
        """Nothing to release (kept for symmetry with the GeoPackage tracker)."""


Tracker = Union[GeoPackageTracker, CsvTracker]


def open_tracker(path: Union[str, Path]) -> Tracker:
    """The tracker for a file name: ``.gpkg`` -> GeoPackage, ``.csv`` -> CSV."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".gpkg":
        return GeoPackageTracker(path)
    if suffix == ".csv":
        return CsvTracker(path)
    raise TrackerError(f"{path}: unknown tracker type '{suffix}'; use a file name ending in .gpkg or .csv.")


def create_tracker(path: Union[str, Path], jobs: pd.DataFrame) -> Tracker:
    """Write a new tracker from a planned job table (refuses to overwrite an existing one)."""
    tracker = open_tracker(path)
    tracker.initialize_from_df(jobs)
    return tracker
