"""GIS batch imports over HTTP (R7): upload a layer file, run it as a background job, follow its progress."""

from __future__ import annotations

import logging
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from app.identity.auth import AuthenticatedUser, Role, require_roles
from app.network.import_jobs import job_dir, job_mapping
from app.platform.db import read_only_connection
from app.platform.deps import SessionDep
from app.platform.jobs import worker_id
from app.platform.models import ImportJob
from app.platform.params import Line
from app.platform.uploads import UploadTooLargeError, UploadTypeError
from app.settings import Settings
from gis.errors import NotFoundError
from gis.layers import LAYERS

logger = logging.getLogger("sanling.imports")

#: Layers accepted by the API (the OpenAPI enum comes from the layer registry).
ImportLayer = StrEnum("ImportLayer", {name: name for name in LAYERS})  # type: ignore[misc]
JobIdPath = Annotated[Line, PathParam(max_length=64, description="Import job id (UUID).")]
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


router = APIRouter(prefix="/api/v1/imports", tags=["imports"])


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
    if job.status == "running" and (live := request.app.state.import_jobs.live.get(job.id)) is not None:
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
    folder = job_dir(settings, job_id)
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
        job_mapping(folder, options, str(layer))  # refuse a bad mapping now, not in the background
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    job = ImportJob(id=job_id, layer=str(layer), source_name=source_name, status="queued", progress_pct=0.0, rows=0,
                    options=options, created_by=user.username, created_at=datetime.now(UTC), holder=worker_id())
    session.add(job)
    session.commit()
    request.app.state.import_jobs.submit(job_id)
    return _job_out(job, request)


@router.get("", response_model=list[ImportJobOut], operation_id="imports-list_imports")
def list_imports(request: Request, session: SessionDep, _user: GisAdminUser) -> list[ImportJobOut]:
    """The 50 most recent import jobs, newest first (gis_admin only)."""
    read_only_connection(session)  # a read: never waits for a writer's lock
    jobs = session.scalars(select(ImportJob).order_by(ImportJob.created_at.desc()).limit(50)).all()
    return [_job_out(job, request) for job in jobs]


@router.get("/{job_id}", response_model=ImportJobOut, operation_id="imports-read_import",
            responses={404: {"description": "No such job"}})
def read_import(job_id: JobIdPath, request: Request, session: SessionDep, _user: GisAdminUser) -> ImportJobOut:
    """State, percent done and, once finished, the report of one import job (gis_admin only)."""
    read_only_connection(session)  # a read: never waits for a writer's lock
    job = session.get(ImportJob, job_id)
    if job is None:
        raise ImportJobNotFoundError(job_id=job_id)
    return _job_out(job, request)


@router.get("/{job_id}/report.csv", response_class=FileResponse, operation_id="imports-read_import_report_csv",
            responses={200: {"content": {"text/csv": {}}, "description": "One line per row issue"},
                       404: {"description": "No such job, or not finished"}})
def read_import_report_csv(job_id: JobIdPath, request: Request, session: SessionDep,
                           _user: GisAdminUser) -> FileResponse:
    """The full per-row report of a finished job as CSV (row, key, field, code, severity, message, value)."""
    read_only_connection(session)  # a read: never waits for a writer's lock
    job = session.get(ImportJob, job_id)
    path = job_dir(request.app.state.settings, job_id) / "report.csv"
    if job is None or not path.exists() or job.status not in ("succeeded", "rejected"):
        raise ImportJobNotFoundError("The job does not exist or has no report yet.", job_id=job_id)
    return FileResponse(path, media_type="text/csv; charset=utf-8", filename=f"import-{job_id}-report.csv")
