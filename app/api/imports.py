"""GIS batch imports over HTTP (R7): upload a layer file, run it as a background job, follow its progress."""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from app.identity.auth import AuthenticatedUser, Role, require_roles
from app.network.loading import import_layer_file
from app.platform.audit import as_utc
from app.platform.deps import SessionDep
from app.platform.jobs import holder_gone, worker_id
from app.platform.models import ImportJob
from app.platform.uploads import UploadTooLargeError, UploadTypeError
from app.settings import Settings
from gis.errors import InvalidInputError, NotFoundError, SanlingError
from gis.importing import FieldMapping, ImportProgress, ImportRejectedError
from gis.layers import LAYERS

logger = logging.getLogger("sanling.imports")

#: Layers accepted by the API (the OpenAPI enum comes from the layer registry).
ImportLayer = StrEnum("ImportLayer", {name: name for name in LAYERS})  # type: ignore[misc]
GisAdminUser = Annotated[AuthenticatedUser, Depends(require_roles(Role.GIS_ADMIN))]

# First bytes of each accepted upload type; a CSV must be text (no NUL byte in its first block).
_MAGIC: dict[str, tuple[bytes, ...]] = {".gpkg": (b"SQLite format 3\x00",), ".zip": (b"PK\x03\x04",),
                                        ".geojson": (b"{",), ".json": (b"{",)}
_SNIFF_BYTES = 4096
_CHUNK_BYTES = 1 << 20
# Progress is written to the job row at most this often (PostgreSQL; SQLite keeps it in memory).
_PROGRESS_INTERVAL_S = 0.5


IMPORT_TYPES_MESSAGE = ("Upload a GeoPackage (.gpkg), zipped Shapefile (.zip), GeoJSON (.geojson) or CSV "
                        "(.csv).")


class ImportJobNotFoundError(NotFoundError):
    """No import job has this id."""

    code = "IMPORT_JOB_NOT_FOUND"
    default_message = "No import job has this id."




@dataclass(frozen=True)
class ImportLimits:
    """Upload limits of ``POST /api/v1/imports`` (a dependency, so deployments and tests can override it)."""

    max_upload_bytes: int = 1 << 30
    suffixes: tuple[str, ...] = (".gpkg", ".zip", ".geojson", ".json", ".csv")


def get_import_limits() -> ImportLimits:
    """Return the upload limits (override with ``app.dependency_overrides[get_import_limits]``)."""
    return ImportLimits()


class ImportJobOut(BaseModel):
    """An import job: its state, progress and, when finished, the import report (docs/import.md)."""

    id: str = Field(description="Job id (UUID).")
    layer: str = Field(examples=["transformers"])
    source_name: str = Field(description="Name of the uploaded file.", examples=["配变台账.gpkg"])
    status: str = Field(description="`queued`, `running`, `succeeded`, `rejected` (invalid rows, nothing "
                                    "imported) or `failed` (see `error`).", examples=["running"])
    progress_pct: float = Field(description="Percent done (reading 0–90, writing 90–100).", examples=[42.5])
    rows: int = Field(description="Rows read so far.")
    rows_total: int | None = Field(description="Rows in the file, when known.")
    options: dict[str, Any] = Field(description="The import options as given.")
    report: dict[str, Any] | None = Field(description="The import report once finished: counts, mapping, "
                                                      "issues (first 1000; all in report.csv).")
    error: dict[str, Any] | None = Field(description="`{code, message, details}` of a failed job.")
    created_by: str
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    report_csv_url: str | None = Field(description="Where the full per-row report is, once finished.")


class _LiveProgress:
    """Progress of jobs running in this process (SQLite cannot take a second writer during an import)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, int, int | None]] = {}

    def set(self, job_id: str, percent: float, rows: int, rows_total: int | None) -> None:
        with self._lock:
            self._state[job_id] = (percent, rows, rows_total)

    def get(self, job_id: str) -> tuple[float, int, int | None] | None:
        with self._lock:
            return self._state.get(job_id)

    def drop(self, job_id: str) -> None:
        with self._lock:
            self._state.pop(job_id, None)


LIVE_PROGRESS = _LiveProgress()


#: A job still queued or running this long after it was queued is taken as interrupted, whatever its holder
#: (a worker on another host that died for good; 1M rows import in seconds).
IMPORT_STALE_AFTER = timedelta(hours=24)


def reap_interrupted_imports(engine: Engine, *, now: datetime | None = None) -> list[str]:
    """Mark ``failed`` (``IMPORT_INTERRUPTED``) the queued or running jobs whose worker process is gone.

    A worker that dies (killed, out of memory) takes its queue with it, and its import transaction rolls
    back, so nothing of the file was imported; without this the job would say ``running`` for ever. Gone
    means: a process of this host that is dead or whose pid now belongs to a later process
    (``app.platform.jobs.holder_gone``), or any job older than :data:`IMPORT_STALE_AFTER`. Run by every worker as it
    starts, so a restarted worker clears what its predecessor left. Returns the ids marked.
    """
    now = now or datetime.now(UTC)
    with engine.begin() as conn:
        open_jobs = conn.execute(select(ImportJob.id, ImportJob.holder, ImportJob.created_at)
                                 .where(ImportJob.status.in_(("queued", "running")))).all()
        gone = [job for job in open_jobs
                if holder_gone(job.holder, as_utc(job.created_at)) or now - as_utc(job.created_at) > IMPORT_STALE_AFTER]
        for job in gone:
            conn.execute(update(ImportJob).where(ImportJob.id == job.id).values(
                status="failed", finished_at=now, error={
                    "code": "IMPORT_INTERRUPTED",
                    "message": "The worker running this import stopped before it finished; nothing of the file "
                               "was imported. Submit it again.",
                    "details": {"holder": job.holder}}))
    for job in gone:
        logger.warning("import job %s interrupted: marked failed", job.id, extra={"holder": job.holder})
    return [job.id for job in gone]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    try:
        reap_interrupted_imports(app.state.engine)
    except SQLAlchemyError:
        logger.warning("import jobs not checked for interrupted ones (no schema yet?)")
    # One import at a time per process: imports of a layer serialise anyway, and the machine's other
    # core serves requests.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sanling-import")
    app.state.import_executor = executor
    try:
        yield
    finally:
        executor.shutdown(wait=True, cancel_futures=False)


router = APIRouter(prefix="/api/v1/imports", tags=["imports"], lifespan=_lifespan)


def _job_dir(settings: Settings, job_id: str) -> Path:
    return settings.data_dir.resolve() / "imports" / job_id


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^\w.\-]+", "_", Path(name or "upload").name).strip("._") or "upload"
    return cleaned[-200:]


def _store_upload(upload: UploadFile, target: Path, limits: ImportLimits) -> None:
    """Copy the upload to ``target`` in chunks, refusing it beyond the size limit or with a wrong type."""
    suffix = target.suffix.lower()
    if suffix not in limits.suffixes:
        raise UploadTypeError(IMPORT_TYPES_MESSAGE, field="file", filename=upload.filename,
                              allowed=list(limits.suffixes))
    written = 0
    with target.open("wb") as out:
        while chunk := upload.file.read(_CHUNK_BYTES):
            written += len(chunk)
            if written > limits.max_upload_bytes:
                raise UploadTooLargeError(f"The file is larger than {limits.max_upload_bytes} bytes.", field="file",
                                          max_upload_bytes=limits.max_upload_bytes)
            out.write(chunk)
    with target.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if suffix == ".csv":
        looks_right = bool(head) and b"\x00" not in head
    else:
        looks_right = head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(_MAGIC[suffix])
    if not looks_right:
        raise UploadTypeError(f"The content of {upload.filename!r} is not a {suffix} file.", field="file",
                              filename=upload.filename)


def _job_out(job: ImportJob, request: Request) -> ImportJobOut:
    percent, rows, rows_total = job.progress_pct, job.rows, job.rows_total
    if job.status == "running" and (live := LIVE_PROGRESS.get(job.id)) is not None:
        percent, rows, rows_total = live
    finished = job.status in ("succeeded", "rejected")
    return ImportJobOut(
        id=job.id, layer=job.layer, source_name=job.source_name, status=job.status, progress_pct=round(percent, 1),
        rows=rows, rows_total=rows_total, options=job.options or {}, report=job.report, error=job.error,
        created_by=job.created_by, created_at=job.created_at, started_at=job.started_at,
        finished_at=job.finished_at,
        report_csv_url=str(request.url_for("read_import_report_csv", job_id=job.id)) if finished else None)


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=ImportJobOut,
             operation_id="imports-create_import",
             responses={413: {"description": "File too large"}, 415: {"description": "Unsupported file type"}})
def create_import(
    request: Request,
    session: SessionDep,
    user: GisAdminUser,
    limits: Annotated[ImportLimits, Depends(get_import_limits)],
    layer: Annotated[ImportLayer, Form(description="Layer to import into.")],
    file: Annotated[UploadFile, File(description="GeoPackage, zipped Shapefile (with .prj/.cpg), GeoJSON or "
                                                 "CSV with lon/lat or x/y columns.")],
    mapping: Annotated[UploadFile | None, File(description="Mapping file (.toml, .yaml, .json).")] = None,
    map_pairs: Annotated[list[str] | None, Form(alias="map", description="`SRC=DST` or `SRC[UNIT]=DST` pairs.",
                                                examples=[["sn_mva[MVA]=rated_kva"]])] = None,
    crs: Annotated[str | None, Form(description="CRS of the coordinates, e.g. EPSG:4545.")] = None,
    encoding: Annotated[str | None, Form(description="Attribute encoding, e.g. GBK.")] = None,
    source_layer: Annotated[str | None, Form(description="Layer inside a GeoPackage or zip.")] = None,
    dry_run: Annotated[bool, Form(description="Validate and count only.")] = False,
    skip_invalid: Annotated[bool, Form(description="Import the valid rows, report the rest.")] = False,
    replace: Annotated[bool, Form(description="Delete rows whose key is not in the file.")] = False,
) -> ImportJobOut:
    """Upload a layer file and start its import in the background; poll the returned job (gis_admin only)."""
    settings: Settings = request.app.state.settings
    job_id = str(uuid.uuid4())
    folder = _job_dir(settings, job_id)
    folder.mkdir(parents=True)
    try:
        source_name = _safe_name(file.filename or "upload")
        _store_upload(file, folder / source_name, limits)
        options: dict[str, Any] = {"map": list(map_pairs or []), "crs": crs, "encoding": encoding,
                                   "source_layer": source_layer, "dry_run": dry_run, "skip_invalid": skip_invalid,
                                   "replace": replace, "mapping_file": None}
        if mapping is not None and mapping.filename:
            mapping_path = folder / ("mapping" + Path(mapping.filename).suffix.lower())
            with mapping_path.open("wb") as out:
                shutil.copyfileobj(mapping.file, out)
            options["mapping_file"] = mapping_path.name
        _job_mapping(folder, options, str(layer))  # refuse a bad mapping now, not in the background
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    job = ImportJob(id=job_id, layer=str(layer), source_name=source_name, status="queued", progress_pct=0.0, rows=0,
                    options=options, created_by=user.username, created_at=datetime.now(UTC), holder=worker_id())
    session.add(job)
    session.commit()
    request.app.state.import_executor.submit(run_import_job, request.app.state.engine, settings, job_id)
    return _job_out(job, request)


@router.get("", response_model=list[ImportJobOut], operation_id="imports-list_imports")
def list_imports(request: Request, session: SessionDep, _user: GisAdminUser) -> list[ImportJobOut]:
    """The 50 most recent import jobs, newest first (gis_admin only)."""
    jobs = session.scalars(select(ImportJob).order_by(ImportJob.created_at.desc()).limit(50)).all()
    return [_job_out(job, request) for job in jobs]


@router.get("/{job_id}", response_model=ImportJobOut, operation_id="imports-read_import",
            responses={404: {"description": "No such job"}})
def read_import(job_id: str, request: Request, session: SessionDep, _user: GisAdminUser) -> ImportJobOut:
    """State, percent done and, once finished, the report of one import job (gis_admin only)."""
    job = session.get(ImportJob, job_id)
    if job is None:
        raise ImportJobNotFoundError(job_id=job_id)
    return _job_out(job, request)


@router.get("/{job_id}/report.csv", response_class=FileResponse, operation_id="imports-read_import_report_csv",
            responses={200: {"content": {"text/csv": {}}, "description": "One line per row issue"},
                       404: {"description": "No such job, or not finished"}})
def read_import_report_csv(job_id: str, request: Request, session: SessionDep, _user: GisAdminUser) -> FileResponse:
    """The full per-row report of a finished job as CSV (row, key, field, code, severity, message, value)."""
    job = session.get(ImportJob, job_id)
    path = _job_dir(request.app.state.settings, job_id) / "report.csv"
    if job is None or not path.exists() or job.status not in ("succeeded", "rejected"):
        raise ImportJobNotFoundError("The job does not exist or has no report yet.", job_id=job_id)
    return FileResponse(path, media_type="text/csv; charset=utf-8", filename=f"import-{job_id}-report.csv")


# --- the background job -------------------------------------------------------------------------------------

def _job_mapping(folder: Path, options: dict[str, Any], layer: str) -> FieldMapping:
    mapping = FieldMapping.from_file(folder / options["mapping_file"]) if options.get("mapping_file") \
        else FieldMapping()
    mapping = mapping.merged(FieldMapping.from_pairs(options.get("map") or []))
    if mapping.layer and mapping.layer != layer:
        raise InvalidInputError(f"The mapping is for layer {mapping.layer!r}, not {layer!r}.", field="mapping")
    return mapping


class _ProgressPublisher:
    """Publishes a job's progress: to the job row on PostgreSQL (any worker reads it), in memory on SQLite."""

    def __init__(self, engine: Engine, job_id: str) -> None:
        self.engine = engine
        self.job_id = job_id
        self.to_database = engine.dialect.name == "postgresql"
        self.last = 0.0

    def __call__(self, state: ImportProgress) -> None:
        LIVE_PROGRESS.set(self.job_id, state.percent, state.rows_done, state.rows_total)
        now = time.monotonic()
        if not self.to_database or (now - self.last < _PROGRESS_INTERVAL_S and state.phase == "reading"):
            return
        self.last = now
        with self.engine.connect() as conn:
            conn.execute(update(ImportJob).where(ImportJob.id == self.job_id).values(
                progress_pct=state.percent, rows=state.rows_done, rows_total=state.rows_total))
            conn.commit()


def _finish_job(engine: Engine, job_id: str, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(update(ImportJob).where(ImportJob.id == job_id).values(finished_at=datetime.now(UTC), **values))


def run_import_job(engine: Engine, settings: Settings, job_id: str) -> None:
    """Run one queued import job to its end and record the outcome on its row (never raises)."""
    try:
        with engine.begin() as conn:
            job = conn.execute(select(ImportJob).where(ImportJob.id == job_id)).one()
            conn.execute(update(ImportJob).where(ImportJob.id == job_id).values(status="running",
                                                                                started_at=datetime.now(UTC)))
        folder = _job_dir(settings, job_id)
        options = dict(job.options)
        publish = _ProgressPublisher(engine, job_id)
        try:
            with engine.begin() as conn:
                report = import_layer_file(
                    conn, job.layer, folder / job.source_name, source_crs=options.get("crs"),
                    replace=bool(options.get("replace")), skip_invalid=bool(options.get("skip_invalid")),
                    dry_run=bool(options.get("dry_run")), mapping=_job_mapping(folder, options, job.layer),
                    encoding=options.get("encoding"), source_layer=options.get("source_layer"),
                    service_area_wgs84=settings.service_area_wgs84, report_csv=folder / "report.csv",
                    progress=publish)
        except ImportRejectedError as exc:
            exc.report.write_json(folder / "report.json")
            _finish_job(engine, job_id, status="rejected", rows=exc.report.rows_read, report=exc.report.to_dict(),
                        error=exc.to_dict() | {"details": {"rows_rejected": exc.report.rows_rejected}})
            return
        except SanlingError as exc:
            _finish_job(engine, job_id, status="failed", error=exc.to_dict())
            return
        report.write_json(folder / "report.json")
        _finish_job(engine, job_id, status="succeeded", progress_pct=100.0, rows=report.rows_read,
                    rows_total=report.rows_read, report=report.to_dict())
    except Exception:
        logger.exception("import job %s failed", job_id)
        try:
            _finish_job(engine, job_id, status="failed",
                        error={"code": "INTERNAL_ERROR", "message": "The import failed unexpectedly.", "details": {}})
        except Exception:
            logger.exception("could not record the failure of import job %s", job_id)
    finally:
        LIVE_PROGRESS.drop(job_id)
