"""A local openEO backend: a real HTTP server on 127.0.0.1 speaking the openEO API (1.2).

The unmodified ``openeo`` client and ``MultiBackendJobManager`` drive it end to end. Batch jobs
move created -> queued -> running -> finished/error on their own (durations configurable), and
really execute their process graph (see ``executor``) into NetCDF files.

Test-only control endpoints under ``/_control`` configure durations and inject faults:
HTTP errors (500, 502, 503, 429 with Retry-After) on chosen calls, jobs that fail with a log,
slow or truncated downloads, and a gateway mode (``after``: the request is carried out, then its
answer is lost and replaced by a 502/504 with an empty or HTML body, as proxies do).
``GET /jobs`` pages like a real backend (``limit``, ``next`` links, newest first), and
``/_control/prefill`` fills an account with thousands of old jobs (or with another client's running jobs).
The ``cdse`` profile (``cdse.py``) behaves like CDSE: concurrent job limit, no estimates, lost Sentinel-1
jobs, out-of-memory jobs. Nothing here ships with the plugin.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import random
import re
import secrets
import shutil
import tempfile
import threading
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import parse_qs, urlparse

from . import cdse, synthetic
from .oidc import PROVIDER_ID, OidcProvider, verification_page
from .oidc import USERS as OIDC_USERS

_log = logging.getLogger("local_backend")

API_VERSION = "1.2.0"
USERS = {"demo": "demo"}


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _band(name: str, common: str = "", wavelength: Optional[float] = None) -> dict:
    band = {"name": name}
    if common:
        band["common_name"] = common
    if wavelength:
        band["center_wavelength"] = wavelength
    return band


S2_COMMON = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir", "B11": "swir16", "B12": "swir22"}


def collection_metadata(root: str, collection_id: str) -> dict:
    if collection_id == "SENTINEL2_L2A":
        bands = [_band(b, S2_COMMON.get(b, ""), synthetic.S2_WAVELENGTHS.get(b)) for b in synthetic.S2_BANDS]
        temporal = [["2015-07-06T00:00:00Z", None]]
        summaries = {"eo:bands": bands, "eo:cloud_cover": {"minimum": 0, "maximum": 100}, "platform": ["sentinel-2a"]}
        title = "Sentinel-2 L2A (synthetic)"
    elif collection_id == "SENTINEL1_GLOBAL_MOSAICS":
        bands = [_band("VV"), _band("VH")]
        temporal = [["2023-01-01T00:00:00Z", "2024-12-31T23:59:59Z"]]
        summaries = {"eo:bands": bands, "sar:polarizations": ["VV", "VH"]}
        title = "Sentinel-1 global monthly mosaics (synthetic)"
    else:
        raise KeyError(collection_id)
    return {
        "stac_version": "1.0.0",
        "type": "Collection",
        "id": collection_id,
        "title": title,
        "description": f"{title}: deterministic synthetic data of the WAC Extractor local backend.",
        "license": "proprietary",
        "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": temporal}},
        "cube:dimensions": {
            "x": {"type": "spatial", "axis": "x", "step": 10, "reference_system": {"$schema": "epsg", "id": 4326}},
            "y": {"type": "spatial", "axis": "y", "step": 10, "reference_system": {"$schema": "epsg", "id": 4326}},
            "t": {"type": "temporal", "extent": temporal[0]},
            "bands": {"type": "bands", "values": [b["name"] for b in bands]},
        },
        "summaries": summaries,
        "links": [{"rel": "self", "href": f"{root}/collections/{collection_id}"}],
    }


@dataclass
class FaultRule:
    """Answer matching requests with an HTTP error, ``times`` times (or with ``probability``)."""

    status: int
    path: str = ".*"
    method: str = "*"
    times: int = 1
    probability: float = 0.0
    retry_after: Optional[float] = None
    after: bool = False  # gateway: carry the request out, then lose the answer
    body: str = "json"  # the error's body: json (openEO error), empty, or html (a proxy's page)

    def matches(self, method: str, path: str, rng: random.Random) -> bool:
        if self.method not in ("*", method) or not re.search(self.path, path):
            return False
        if self.probability:
            return rng.random() < self.probability
        if self.times > 0:
            self.times -= 1
            return True
        return False


@dataclass
class BackendConfig:
    queue_seconds: List[float] = field(default_factory=lambda: [0.2, 0.2])
    run_seconds: List[float] = field(default_factory=lambda: [0.5, 0.5])
    resolution: float = 20.0
    scl_dilation: bool = False
    fail_title: Optional[str] = None  # jobs whose title matches this regex end in error
    truncate_downloads: int = 0  # that many next downloads are cut in half
    download_delay: float = 0.0  # seconds per 64 KiB chunk
    fake_content_length: int = 0  # a hostile backend: advertise this many bytes for every asset
    hidden_collections: List[str] = field(default_factory=list)  # not listed: Test connection reports them
    hidden_processes: List[str] = field(default_factory=list)
    asset_key: str = ""  # a hostile backend: list every asset under this name (the file is still served)
    asset_mode: str = "api"  # api: assets on the API host; signed: signed URLs on a storage origin; redirect: 302 there
    max_workers: int = 2
    result_tamper: str = ""  # a result not as the graph makes it: drop_variable, extra_variable, add_time (tamper.py)
    # Credits: every job's costs are known at creation (deterministic: area x months x recipe). The
    # account's budget is reported by GET /me and spent by jobs that end; estimates=False hides both
    # the estimate endpoint and the budget, as a backend without them.
    budget: Optional[float] = 1000.0
    estimates: bool = True
    estimate_status: int = 404  # the answer to GET /jobs/{id}/estimate without estimates (CDSE: 501 FeatureUnsupported)
    enforce_budget: bool = True  # a job's own budget stops it (CDSE: accepted, not enforced; openeo-api#541)
    # Profiles (cdse.PROFILES): "default" is the behaviour above; "cdse" sets the settings below as CDSE behaves.
    profile: str = "default"
    concurrent_job_limit: int = 0  # jobs queued or running per user; a start beyond gets 400 ConcurrentJobLimit
    memory_check: bool = False  # jobs needing more memory than their job options give end in error
    memory_scale: float = 1.0  # multiplies every job's memory need (cdse.memory_need_mb)
    default_executor_memory: str = cdse.DEFAULT_EXECUTOR_MEMORY
    default_executor_memory_overhead: str = cdse.DEFAULT_EXECUTOR_MEMORY_OVERHEAD
    default_python_memory: Optional[str] = None
    # Sentinel-1 jobs that finish without assets / end in an Orfeo toolbox error: a share of graphs (hash of the
    # graph and the seed; only the first attempt of a graph), and/or the next N Sentinel-1 jobs that run.
    s1_lost_share: float = 0.0
    s1_error_share: float = 0.0
    s1_lost_next: int = 0
    s1_error_next: int = 0
    failure_seed: int = 0


@dataclass
class Job:
    id: str
    title: str
    process_graph: dict
    created: str
    status: str = "created"
    updated: str = ""
    progress: int = 0
    error: Optional[str] = None
    logs: List[dict] = field(default_factory=list)
    assets: List[str] = field(default_factory=list)
    started_at: float = 0.0
    finished_at: float = 0.0
    owner: str = ""
    budget: Optional[float] = None  # the job's own limit (openEO ``budget`` at creation)
    costs: float = 0.0  # what the job costs when it runs to its end (graph_costs)
    size: float = 0.0  # km2 x months it reads
    job_options: Optional[dict] = None  # openEO clients send them top-level in POST /jobs (not in the API spec)
    attempt: int = 0  # the how-many-th run of this job's graph on this backend (1 = first)
    budget_enforced: bool = True  # False when it ran on a backend that does not stop jobs at their budget

    @property
    def charged(self) -> float:
        """Credits the job has spent: all of it, or its budget when it was stopped at its budget."""
        if self.status not in ("finished", "error"):
            return 0.0
        return min(self.costs, self.budget) if self.budget is not None and self.budget_enforced else self.costs

    def describe(self, root: str) -> dict:
        metadata = {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "created": self.created,
            "updated": self.updated or self.created,
            "progress": self.progress,
            "process": {"process_graph": self.process_graph},
        }
        if self.budget is not None:
            metadata["budget"] = self.budget
        if self.job_options:  # not in the openEO API; extra properties are allowed
            metadata["job_options"] = self.job_options
        if self.status in ("finished", "error"):
            seconds = max(0.0, self.finished_at - self.started_at)
            share = self.charged / self.costs if self.costs else 1.0  # a job stopped at its budget ran less
            metadata["usage"] = {
                "cpu": {"value": round(self.costs * 36 * share, 2), "unit": "cpu-seconds"},
                "memory": {"value": round(self.costs * 2000 * share), "unit": "mb-seconds"},
                "input_pixel": {"value": round(self.size * 2.5 * share, 3), "unit": "mega-pixel"},
                "duration": {"value": round(seconds, 2), "unit": "seconds"},
            }
            metadata["costs"] = round(self.charged, 3)
        return metadata


# Credits per km2 and month read, per collection; the LCFM recipe (percentiles) costs twice as much.
CREDITS_PER_KM2_MONTH = {"SENTINEL2_L2A": 0.02, "SENTINEL1_GLOBAL_MOSAICS": 0.01}
LCFM_FACTOR = 2.0


def graph_costs(graph: dict) -> tuple:
    """(credits, km2 x months) of a job: each collection's area x months at its rate, x2 for LCFM."""
    read: Dict[str, float] = {}
    for node in graph.values():
        if not isinstance(node, dict) or node.get("process_id") != "load_collection":
            continue
        arguments = node.get("arguments", {})
        extent, window = arguments.get("spatial_extent") or {}, arguments.get("temporal_extent") or []
        try:
            km2 = (extent["east"] - extent["west"]) * (extent["north"] - extent["south"]) / 1e6
            days = (datetime.fromisoformat(window[1][:10]) - datetime.fromisoformat(window[0][:10])).days
        except (KeyError, TypeError, IndexError, ValueError):
            continue
        read[arguments.get("id", "")] = max(read.get(arguments.get("id", ""), 0.0), km2 * days / (365.25 / 12))
    factor = LCFM_FACTOR if "quantiles" in set(cdse.process_ids(graph)) else 1.0
    costs = sum(size * CREDITS_PER_KM2_MONTH.get(collection, 0.01) for collection, size in read.items()) * factor
    return round(costs, 3), max(read.values(), default=0.0)


def apply_profile(config: BackendConfig, profile: str) -> BackendConfig:
    """Set every setting a profile decides (cdse.PROFILES) to that profile's value; the others stay as they are."""
    if profile not in cdse.PROFILES:
        raise ValueError(f"Unknown profile {profile!r}; profiles: {', '.join(cdse.PROFILES)}.")
    defaults = BackendConfig()
    for key in cdse.PROFILE_KEYS:
        setattr(config, key, cdse.PROFILES[profile].get(key, getattr(defaults, key)))
    config.profile = profile
    return config


def profile_config(profile: str = "default", **settings) -> BackendConfig:
    """A configuration of ``profile`` with ``settings`` on top."""
    config = apply_profile(BackendConfig(), profile)
    for key, value in settings.items():
        setattr(config, key, value)
    return config


class Backend:
    """State of the local backend: jobs, tokens, configuration, faults and request counts."""

    def __init__(self, work_dir: Path, config: Optional[BackendConfig] = None):
        self.work_dir = work_dir
        self.config = config or BackendConfig()
        self.startup_profile = self.config.profile  # /_control/reset comes back to it
        self.graph_attempts: Dict[str, int] = {}  # runs per graph (cdse.graph_key): only first attempts get lost
        self.jobs: Dict[str, Job] = {}
        self.tokens: Dict[str, str] = {}  # basic-auth access tokens
        self.oidc = OidcProvider()
        self.faults: List[FaultRule] = []
        self.request_counts: Dict[str, int] = {}
        self.lock = threading.RLock()
        self.rng = random.Random(42)
        self.pool = ThreadPoolExecutor(max_workers=self.config.max_workers, thread_name_prefix="job")
        self.storage_url = ""  # the second origin serving signed asset URLs (set by make_server)
        self.storage_requests: List[dict] = []  # what reached it: path and whether it carried an Authorization
        self.signing_key = secrets.token_bytes(16)

    def signed_url(self, job_id: str, name: str) -> str:
        expires = int(time.time()) + 3600
        signature = hashlib.sha256(self.signing_key + f"{job_id}/{name}/{expires}".encode()).hexdigest()[:32]
        return f"{self.storage_url}/signed/{job_id}/{name}?expires={expires}&signature={signature}"

    def signature_ok(self, job_id: str, name: str, query: dict) -> bool:
        expires = int((query.get("expires") or ["0"])[0])
        wanted = hashlib.sha256(self.signing_key + f"{job_id}/{name}/{expires}".encode()).hexdigest()[:32]
        return expires > time.time() and secrets.compare_digest(wanted, (query.get("signature") or [""])[0])

    # --- jobs --------------------------------------------------------------------------------
    def duration(self, job_id: str, bounds: List[float]) -> float:
        low, high = bounds
        share = int(hashlib.sha256(job_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        return low + (high - low) * share

    def start(self, job: Job) -> Optional[str]:
        """Queue the job; returns the error message when the user's concurrent job limit refuses it."""
        with self.lock:
            if job.status not in ("created", "canceled", "error"):
                return None
            limit = self.config.concurrent_job_limit
            active = sum(1 for j in self.jobs.values() if j.owner == job.owner and j.status in ("queued", "running"))
            if limit and active >= limit:
                return cdse.CONCURRENT_LIMIT_MESSAGE.format(limit=limit)
            job.status, job.updated, job.error, job.logs = "queued", now_rfc3339(), None, []
            job.started_at = time.time()
        threading.Thread(target=self._lifecycle, args=(job,), daemon=True, name=f"life-{job.id}").start()
        return None

    def _lifecycle(self, job: Job) -> None:
        time.sleep(self.duration(job.id, self.config.queue_seconds))
        with self.lock:
            if job.status != "queued":
                return
            job.status, job.updated = "running", now_rfc3339()
        run_started = time.time()
        logs: List[tuple] = []  # (level, message) written before the job's last entry
        job.budget_enforced = self.config.enforce_budget
        if self.config.enforce_budget and job.budget is not None and job.costs > job.budget:
            # as a backend stops a job at its budget
            error = (f"Job stopped: its costs would exceed its budget ({job.costs:.3f} > {job.budget:.3f} "
                     "credits). Create it with a larger budget, or none.")  # fmt: skip
        else:
            error, lost, logs = self._cdse_outcome(job)
            if lost:
                job.assets = []
            elif not error:
                error = self.pool.submit(self._execute, job).result()
        time.sleep(max(0.0, self.duration(job.id + "run", self.config.run_seconds) - (time.time() - run_started)))
        with self.lock:
            if job.status != "running":
                return
            job.finished_at = time.time()
            job.updated = now_rfc3339()
            job.logs.extend(self.log_entry(level, message) for level, message in logs)
            if error:
                job.status, job.error = "error", error
                if not logs:
                    job.logs.append(self.log_entry("error", error))
            else:
                job.status, job.progress = "finished", 100
                job.logs.append(self.log_entry("info", f"Job finished: {', '.join(job.assets)}" if job.assets
                                                else "Job finished."))  # fmt: skip

    def _cdse_outcome(self, job: Job) -> tuple:
        """(error, lost, logs) of the CDSE behaviours: out of memory, Sentinel-1 jobs in error or without assets."""
        config = self.config
        with self.lock:
            key = cdse.graph_key(job.process_graph)
            self.graph_attempts[key] = job.attempt = self.graph_attempts.get(key, 0) + 1
            if config.memory_check:
                need = cdse.memory_need_mb(job.process_graph, config.memory_scale)
                try:
                    limit = cdse.memory_limit_mb(job.job_options, config)
                except ValueError as exc:
                    return f"Invalid job options: {exc}", False, []
                if need > limit["total"]:
                    logs = cdse.memory_logs(job.id, need, limit)
                    return cdse.MEMORY_MESSAGE, False, logs
            if not cdse.is_s1(job.process_graph):
                return None, False, []
            first = job.attempt == 1
            if config.s1_error_next > 0:
                config.s1_error_next -= 1
                error = True
            else:
                error = first and cdse.unit_hash("error", config.failure_seed, key) < config.s1_error_share
            if error:
                message = cdse.otb_message(job.id)
                return message, False, [("error", message)]
            if config.s1_lost_next > 0:
                config.s1_lost_next -= 1
                return None, True, []
            lost = first and cdse.unit_hash("lost", config.failure_seed, key) < config.s1_lost_share
            return None, lost, []

    def log_entry(self, level: str, message: str) -> dict:
        return {"id": uuid.uuid4().hex[:8], "level": level, "message": message, "time": now_rfc3339()}

    def _execute(self, job: Job) -> Optional[str]:
        """Run the graph; returns an error message or None."""
        if self.config.fail_title and re.search(self.config.fail_title, job.title or ""):
            return f"Injected failure for job {job.title!r}: OpenEOApiException: synthetic processing error."
        output = self.work_dir / job.id
        try:
            from . import executor

            files = executor.run_process_graph(job.process_graph, output, self.config.resolution)
            if self.config.result_tamper:
                from .tamper import tamper

                for path in files:
                    tamper(path, self.config.result_tamper)
            job.assets = [f.name for f in files]
            return None
        except Exception as exc:  # a real backend reports any processing error in the job log
            _log.warning("job %s failed: %s", job.id, traceback.format_exc())
            return f"{type(exc).__name__}: {exc}"

    # --- faults --------------------------------------------------------------------------------
    def fault_for(self, method: str, path: str) -> Optional[FaultRule]:
        with self.lock:
            for rule in self.faults:
                if rule.matches(method, path, self.rng):
                    return rule
        return None

    def count(self, method: str, path: str) -> None:
        key = f"{method} {re.sub(r'/jobs/[^/]+', '/jobs/{id}', path)}"
        with self.lock:
            self.request_counts[key] = self.request_counts.get(key, 0) + 1


class Handler(BaseHTTPRequestHandler):
    server_version = "WACLocalOpenEO/0.1"
    protocol_version = "HTTP/1.1"
    backend: Backend

    def log_message(self, fmt, *args):  # quieter than the default stderr line per request
        _log.debug("%s %s", self.address_string(), fmt % args)

    @property
    def root(self) -> str:
        """The URL the client used (Host header), so result links work under any name of this server."""
        host, port = self.server.server_address[:2]
        return f"http://{self.headers.get('Host') or f'{host}:{port}'}"

    # --- plumbing ------------------------------------------------------------------------------
    def send_json(self, status: int, payload, headers: Optional[dict] = None) -> None:
        # 204 has no body: a "{}" after it would be read as the start of the next answer on a kept-alive connection
        body = b"" if status == 204 else json.dumps(payload).encode()
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status: int, code: str, message: str, headers: Optional[dict] = None) -> None:
        self.send_json(status, {"id": uuid.uuid4().hex[:8], "code": code, "message": message}, headers)

    def read_body(self) -> bytes:
        """The request body, once (a second call gets b""): what a handler did not read is drained after it."""
        length = 0 if getattr(self, "_body_read", False) else int(self.headers.get("Content-Length") or 0)
        self._body_read = True
        return self.rfile.read(length) if length else b""

    def read_json(self):
        return json.loads(self.read_body() or b"{}")

    def read_form(self) -> dict:
        return {k: v[0] for k, v in parse_qs(self.read_body().decode()).items()}

    def user(self) -> tuple:
        """(user, None) for a valid bearer token, else (None, openEO error code)."""
        header = self.headers.get("Authorization", "")
        basic = re.fullmatch(r"Bearer basic//(.+)", header)
        if basic:
            user = self.backend.tokens.get(basic.group(1))
            return (user, None) if user else (None, "TokenInvalid")
        oidc = re.fullmatch(rf"Bearer oidc/{PROVIDER_ID}/(.+)", header)
        if oidc:
            return self.backend.oidc.user_for(oidc.group(1))
        return None, "AuthenticationRequired"

    def require_user(self) -> Optional[str]:
        user, problem = self.user()
        if problem == "TokenInvalid":
            self.error(403, "TokenInvalid", "Authorization token has expired or is invalid. Please authenticate again.")
        elif problem:
            self.error(401, "AuthenticationRequired", "Unauthorized: log in first.")
        return user

    def dispatch(self, method: str) -> None:
        self._body_read = False
        try:
            self._dispatch(method)
        finally:
            self.read_body()  # a request refused before its body was read (401) must not poison the connection

    def _dispatch(self, method: str) -> None:
        parsed = urlparse(self.path)
        path = parsed.path.rstrip("/") or "/"
        query = parse_qs(parsed.query)
        self.backend.count(method, path)
        if not path.startswith("/_control"):
            rule = self.backend.fault_for(method, path)
            if rule:
                self.backend.count("FAULT", f"/{rule.status}")  # "FAULT /500": how many were injected
                if rule.after:
                    self.backend.count("LOST", f"{method} {re.sub(r'/jobs/[^/]+', '/jobs/{id}', path)}")
                    self.route_and_lose_answer(method, path, query)
                elif method in ("POST", "PUT", "PATCH"):
                    self.read_json()
                return self.fault_answer(rule)
        try:
            self.route(method, path, query)
        except BrokenPipeError:
            pass
        except Exception as exc:
            _log.error("error handling %s %s: %s", method, path, traceback.format_exc())
            self.error(500, "Internal", f"{type(exc).__name__}: {exc}")

    def route_and_lose_answer(self, method: str, path: str, query: dict) -> None:
        """Carry the request out as usual, but write its answer nowhere (a gateway that timed out)."""
        real, self.wfile = self.wfile, io.BytesIO()
        try:
            self.route(method, path, query)
        except Exception:  # the answer is lost either way
            _log.warning("error behind the gateway: %s", traceback.format_exc())
        finally:
            self.wfile = real
            self._headers_buffer = []

    def fault_answer(self, rule: FaultRule) -> None:
        headers = {"Retry-After": str(int(rule.retry_after))} if rule.retry_after is not None else {}
        if rule.body == "json":
            return self.error(rule.status, "InjectedFault", f"Injected HTTP {rule.status}", headers or None)
        body = b"" if rule.body == "empty" else b"<html><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"
        self.send_response(rule.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
        return None

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_PATCH(self):
        self.dispatch("PATCH")

    # --- routes ----------------------------------------------------------------------------
    def route(self, method: str, path: str, query: dict) -> None:
        backend = self.backend
        if method == "GET" and path == "/":
            return self.send_json(200, self.capabilities())
        if method == "GET" and path == "/credentials/basic":
            return self.basic_login()
        if method == "GET" and path == "/credentials/oidc":
            return self.send_json(200, {"providers": [backend.oidc.provider_listing(self.issuer)]})
        if path.startswith("/oidc"):
            return self.oidc_route(method, path, query)
        if method == "GET" and path == "/collections":
            ids = [
                c for c in ("SENTINEL2_L2A", "SENTINEL1_GLOBAL_MOSAICS") if c not in backend.config.hidden_collections
            ]
            return self.send_json(200, {"collections": [collection_metadata(self.root, c) for c in ids], "links": []})
        if method == "GET" and path.startswith("/collections/"):
            try:
                return self.send_json(200, collection_metadata(self.root, path.split("/")[2]))
            except KeyError:
                return self.error(404, "CollectionNotFound", f"Collection {path.split('/')[2]!r} does not exist.")
        if method == "GET" and path == "/processes":
            from .executor import process_specs

            hidden = set(backend.config.hidden_processes)
            listed = [p for p in process_specs(backend.config.scl_dilation) if p["id"] not in hidden]
            return self.send_json(200, {"processes": listed, "links": []})
        if method == "GET" and path == "/file_formats":
            netcdf = {"title": "Network Common Data Form", "gis_data_types": ["raster"], "parameters": {}}
            return self.send_json(200, {"input": {}, "output": {"netCDF": netcdf}})
        if path.startswith("/_control"):
            return self.control(method, path)
        if path == "/me" or path.startswith("/jobs"):
            user = self.require_user()
            if user is None:
                return None
            if path == "/me":
                account = {"user_id": user, "name": OIDC_USERS.get(user, user)}
                if backend.config.budget is not None and backend.config.estimates:
                    with backend.lock:
                        spent = sum(job.charged for job in backend.jobs.values() if job.owner == user)
                    account["budget"] = round(backend.config.budget - spent, 3)
                return self.send_json(200, account)
            return self.jobs_route(method, path, query, user)
        return self.error(404, "NotFound", f"{method} {path} is not an endpoint of this backend.")

    @property
    def issuer(self) -> str:
        return f"{self.root}/oidc"

    def oidc_route(self, method: str, path: str, query: dict) -> None:
        oidc = self.backend.oidc
        if method == "GET" and path == "/oidc/.well-known/openid-configuration":
            return self.send_json(200, oidc.discovery(self.issuer))
        if method == "POST" and path == "/oidc/device_authorization":
            return self.send_json(*oidc.device_authorization(self.read_form(), self.issuer))
        if method == "POST" and path == "/oidc/token":
            return self.send_json(*oidc.token(self.read_form()))
        if path == "/oidc/device":
            if method == "POST":
                form = self.read_form()
                approved = oidc.approve(form.get("user_code", ""), form.get("user", "alice"))
                message = "Approved: go back to QGIS." if approved else "Unknown or expired code: try again."
                return self.send_html(verification_page(self.issuer, form.get("user_code", ""), message))
            return self.send_html(verification_page(self.issuer, (query.get("user_code") or [""])[0]))
        if method == "GET" and path == "/oidc/userinfo":
            user, problem = oidc.user_for(self.headers.get("Authorization", "").removeprefix("Bearer "))
            if problem:
                return self.send_json(401, {"error": "invalid_token"})
            return self.send_json(200, {"sub": user, "name": OIDC_USERS.get(user, user)})
        return self.error(404, "NotFound", f"{method} {path} is not an endpoint of the OIDC provider.")

    def send_html(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def list_jobs(self, user: str, query: dict) -> None:
        """``GET /jobs``: newest first, ``limit`` per page (default 100), a ``next`` link while more remain."""
        limit = int((query.get("limit") or ["100"])[0] or 100)
        offset = int((query.get("offset") or ["0"])[0] or 0)
        with self.backend.lock:
            mine = [j for j in reversed(list(self.backend.jobs.values())) if j.owner == user]  # newest first
            page = [
                {k: v for k, v in j.describe(self.root).items() if k != "process"}
                for j in mine[offset : offset + limit]
            ]
        links = []
        if offset + limit < len(mine):
            links.append({"rel": "next", "href": f"{self.root}/jobs?limit={limit}&offset={offset + limit}"})
        return self.send_json(200, {"jobs": page, "links": links})

    def capabilities(self) -> dict:
        endpoints = [
            ("/credentials/basic", ["GET"]),
            ("/credentials/oidc", ["GET"]),
            ("/collections", ["GET"]),
            ("/collections/{collection_id}", ["GET"]),
            ("/processes", ["GET"]),
            ("/file_formats", ["GET"]),
            ("/me", ["GET"]),
            ("/jobs", ["GET", "POST"]),
            ("/jobs/{job_id}", ["GET", "DELETE", "PATCH"]),
            ("/jobs/{job_id}/results", ["GET", "POST", "DELETE"]),
            ("/jobs/{job_id}/logs", ["GET"]),
        ]
        if self.backend.config.estimates:
            endpoints.append(("/jobs/{job_id}/estimate", ["GET"]))
        return {
            "api_version": API_VERSION,
            "backend_version": "0.1.0",
            "stac_version": "1.0.0",
            "type": "Catalog",
            "id": "wac-local-openeo",
            "title": "WAC Extractor local openEO backend",
            "description": "Synthetic Sentinel-1/2 data for tests and the offline demo.",
            "endpoints": [{"path": p, "methods": m} for p, m in endpoints],
            "billing": {"currency": "credits"},
            "links": [],
        }

    def basic_login(self) -> None:
        header = self.headers.get("Authorization", "")
        try:
            user, password = base64.b64decode(header.split(" ", 1)[1]).decode().split(":", 1)
        except Exception:
            return self.error(401, "AuthenticationRequired", "Basic authentication required.")
        if USERS.get(user) != password:
            return self.error(403, "CredentialsInvalid", "Credentials are not correct.")
        token = secrets.token_urlsafe(24)
        self.backend.tokens[token] = user
        return self.send_json(200, {"access_token": token})

    def jobs_route(self, method: str, path: str, query: dict, user: str) -> None:
        backend = self.backend
        parts = path.strip("/").split("/")
        if parts == ["jobs"]:
            if method == "GET":
                return self.list_jobs(user, query)
            if method == "POST":
                body = self.read_json()
                graph = (body.get("process") or {}).get("process_graph")
                if not graph:
                    return self.error(400, "ProcessGraphMissing", "No process graph in the request.")
                costs, size = graph_costs(graph)
                budget, options = body.get("budget"), body.get("job_options")
                if options is not None and not isinstance(options, dict):
                    return self.error(400, "InvalidJobOptions", "job_options must be an object.")
                job = Job(id=f"j-{uuid.uuid4().hex[:12]}", title=body.get("title") or "", process_graph=graph,
                          created=now_rfc3339(), owner=user, costs=costs, size=size, job_options=options,
                          budget=float(budget) if budget is not None else None)  # fmt: skip
                with backend.lock:
                    backend.jobs[job.id] = job
                self.send_response(201)
                self.send_header("Location", f"{self.root}/jobs/{job.id}")
                self.send_header("OpenEO-Identifier", job.id)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
        job = backend.jobs.get(parts[1])
        if job is None or job.owner != user:
            return self.error(404, "JobNotFound", f"The batch job {parts[1]!r} does not exist.")
        rest = parts[2:]
        if rest == [] and method == "GET":
            return self.send_json(200, job.describe(self.root))
        if rest == [] and method == "DELETE":
            with backend.lock:
                backend.jobs.pop(job.id, None)
            shutil.rmtree(backend.work_dir / job.id, ignore_errors=True)
            return self.send_json(204, {})
        if rest == ["results"] and method == "POST":
            refused = backend.start(job)
            if refused:  # geopyspark's answer (openeo-python-client#838); the job stays created
                return self.error(400, "ConcurrentJobLimit", refused)
            return self.send_json(202, {})
        if rest == ["results"] and method == "DELETE":
            with backend.lock:
                if job.status in ("queued", "running"):
                    job.status, job.updated = "canceled", now_rfc3339()
            return self.send_json(204, {})
        if rest == ["results"] and method == "GET":
            if job.status != "finished":
                return self.error(400, "JobNotFinished", f"Job {job.id} has status {job.status}.")
            signed = backend.config.asset_mode == "signed"
            assets = {
                (backend.config.asset_key or name): {
                    "href": backend.signed_url(job.id, name)
                    if signed
                    else f"{self.root}/jobs/{job.id}/results/assets/{name}",
                    "type": "application/x-netcdf",
                    "roles": ["data"],
                    "title": name,
                    "file:size": (backend.work_dir / job.id / name).stat().st_size,
                }
                for name in job.assets
            }
            return self.send_json(200, {"type": "Feature", "stac_version": "1.0.0", "id": job.id, "assets": assets,
                                        "properties": {"datetime": job.updated}, "links": []})  # fmt: skip
        if len(rest) == 3 and rest[:2] == ["results", "assets"] and method == "GET":
            return self.send_asset(job, rest[2])
        if rest == ["estimate"] and method == "GET":
            if not backend.config.estimates:
                if backend.config.estimate_status == 501:  # openeo-python-driver without estimates
                    return self.error(501, "FeatureUnsupported", "Feature not supported.")
                return self.error(404, "NotFound", f"{method} {path} is not an endpoint of this backend.")
            return self.send_json(200, {"costs": job.costs, "duration": "PT1M", "size": int(job.size * 2.5e6),
                                        "downloads_included": None})  # fmt: skip
        if rest == ["logs"] and method == "GET":
            level = (query.get("level") or ["debug"])[0]
            order = ["debug", "info", "warning", "error"]
            logs = [e for e in job.logs if order.index(e["level"]) >= order.index(level)]
            return self.send_json(200, {"logs": logs, "links": []})
        return self.error(404, "NotFound", f"{method} {path} is not an endpoint of this backend.")

    def send_asset(self, job: Job, name: str) -> None:
        backend = self.backend
        path = backend.work_dir / job.id / name
        if name not in job.assets or not path.is_file():
            return self.error(404, "AssetNotFound", f"No asset {name!r} for job {job.id}.")
        if backend.config.asset_mode == "redirect":  # as backends that keep results in object storage do
            self.send_response(302)
            self.send_header("Location", backend.signed_url(job.id, name))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        self.send_file(path)
        return None

    def send_file(self, path: Path) -> None:
        backend = self.backend
        data = path.read_bytes()
        with backend.lock:
            truncate = backend.config.truncate_downloads > 0
            if truncate:
                backend.config.truncate_downloads -= 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-netcdf")
        self.send_header("Content-Length", str(backend.config.fake_content_length or len(data)))
        self.end_headers()
        body = data[: len(data) // 2] if truncate else data
        for start in range(0, len(body), 65536):
            if backend.config.download_delay:
                time.sleep(backend.config.download_delay)
            self.wfile.write(body[start : start + 65536])
        if truncate or backend.config.fake_content_length:
            self.close_connection = True
            self.wfile.flush()
        return None

    def control(self, method: str, path: str) -> None:
        backend = self.backend
        if method == "GET" and path == "/_control/jobs":
            with backend.lock:
                jobs = [self.control_job(j) for j in backend.jobs.values()]
            return self.send_json(200, {"jobs": jobs})
        if method == "GET" and path == "/_control/storage":
            with backend.lock:
                return self.send_json(200, {"url": backend.storage_url, "requests": list(backend.storage_requests)})
        if method == "GET" and path == "/_control/requests":
            with backend.lock:
                return self.send_json(200, dict(backend.request_counts))
        if method == "POST" and path == "/_control/config":
            body = self.read_json()
            with backend.lock:
                unknown = [key for key in body if not hasattr(backend.config, key)]
                if unknown:
                    return self.error(400, "UnknownSetting", f"Unknown setting {unknown[0]!r}.")
                if "profile" in body:  # first the profile, then the settings given with it
                    try:
                        apply_profile(backend.config, body["profile"])
                    except ValueError as exc:
                        return self.error(400, "UnknownProfile", str(exc))
                for key, value in body.items():
                    if key != "profile":
                        setattr(backend.config, key, value)
            return self.send_json(200, backend.config.__dict__)
        if method == "POST" and path == "/_control/faults":
            body = self.read_json()
            with backend.lock:
                backend.faults = [FaultRule(**rule) for rule in body.get("rules", [])]
            return self.send_json(200, {"rules": len(backend.faults)})
        if method == "POST" and path == "/_control/prefill":
            body = self.read_json()
            user, count = body.get("user", "demo"), int(body.get("count", 1000))
            status = body.get("status", "finished")
            if status in ("queued", "running"):
                return self.send_json(200, {"jobs": len(backend.jobs), "ids": self.prefill_active(user, count, body)})
            with backend.lock:
                old = {}
                for number in range(count):
                    job = Job(id=f"old-{uuid.uuid4().hex[:12]}", title=f"an older job {number}", process_graph={},
                              created="2024-01-01T00:00:00Z", status=status, owner=user)  # fmt: skip
                    old[job.id] = job
                backend.jobs = {**old, **backend.jobs}  # older than every job already there
            return self.send_json(200, {"jobs": len(backend.jobs), "ids": list(old)})
        if method == "POST" and path == "/_control/oidc":
            return self.send_json(200, backend.oidc.control(self.read_json()))
        if method == "GET" and path == "/_control/oidc":
            return self.send_json(200, backend.oidc.control({}))
        if method == "POST" and path == "/_control/reset":
            backend.oidc.reset()
            with backend.lock:
                backend.jobs.clear()
                backend.faults.clear()
                backend.request_counts.clear()
                backend.config = profile_config(backend.startup_profile)
                backend.storage_requests.clear()
                backend.graph_attempts.clear()
            return self.send_json(200, {})
        return self.error(404, "NotFound", f"{method} {path} is not a control endpoint.")

    def control_job(self, job: Job) -> dict:
        """A job as /_control/jobs lists it: also its owner, job options and, from them, its memory."""
        config = self.backend.config
        entry = {"id": job.id, "title": job.title, "status": job.status, "owner": job.owner,
                 "job_options": job.job_options, "attempt": job.attempt, "assets": list(job.assets)}  # fmt: skip
        if job.process_graph:
            entry["memory_need_mb"] = cdse.memory_need_mb(job.process_graph, config.memory_scale)
            try:
                entry["memory_limit_mb"] = cdse.memory_limit_mb(job.job_options, config)["total"]
            except ValueError:
                entry["memory_limit_mb"] = None
        return entry

    def prefill_active(self, user: str, count: int, body: dict) -> List[str]:
        """``count`` jobs queued or running in ``user``'s account (another client's), ending after ``seconds``."""
        backend, status = self.backend, body.get("status", "running")
        seconds = body.get("seconds")  # None: until canceled or reset
        jobs = [Job(id=f"other-{uuid.uuid4().hex[:12]}", title=body.get("title") or f"another client's job {n}",
                    process_graph={}, created=now_rfc3339(), status=status, owner=user, started_at=time.time())
                for n in range(count)]  # fmt: skip
        with backend.lock:
            for job in jobs:
                backend.jobs[job.id] = job

        def finish(job: Job) -> None:
            with backend.lock:
                if job.status in ("queued", "running"):
                    job.status, job.progress, job.updated = "finished", 100, now_rfc3339()
                    job.finished_at = time.time()

        if seconds is not None:
            for job in jobs:
                timer = threading.Timer(float(seconds), finish, args=(job,))
                timer.daemon = True
                timer.start()
        return [job.id for job in jobs]


class StorageHandler(Handler):
    """The storage origin: serves assets by signed URL only; records whether a request carried a token."""

    def dispatch(self, method: str) -> None:
        parsed = urlparse(self.path)
        parts = parsed.path.strip("/").split("/")
        backend = self.backend
        with backend.lock:
            backend.storage_requests.append({"path": parsed.path, "authorization": "Authorization" in self.headers})
        if method != "GET" or len(parts) != 3 or parts[0] != "signed":
            return self.error(404, "NotFound", f"{method} {parsed.path} is not on this storage.")
        job_id, name = parts[1], parts[2]
        if not backend.signature_ok(job_id, name, parse_qs(parsed.query)):
            return self.error(403, "SignatureInvalid", "The URL's signature is invalid or expired.")
        path = backend.work_dir / job_id / name
        if not path.is_file():
            return self.error(404, "AssetNotFound", f"No asset {name!r}.")
        return self.send_file(path)


def make_server(
    host: str = "127.0.0.1", port: int = 0, work_dir: Optional[Path] = None, **config
) -> ThreadingHTTPServer:
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="wac-local-openeo-"))
    backend = Backend(work, profile_config(**config))
    handler = type("BoundHandler", (Handler,), {"backend": backend})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    server.backend = backend
    # A second origin (another port) for signed asset URLs, as real backends' object storage.
    storage = ThreadingHTTPServer((host, 0), type("BoundStorageHandler", (StorageHandler,), {"backend": backend}))
    storage.daemon_threads = True
    backend.storage_url = f"http://{host}:{storage.server_address[1]}"
    threading.Thread(target=storage.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True, name="storage").start()
    server.storage = storage
    return server
