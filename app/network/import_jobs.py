"""Background import jobs of the import API (R7): run a stored upload through the importer, publish progress.

A job row (``import_jobs``) is queued by ``POST /api/v1/imports`` and run by this worker's
:class:`ImportJobRunner`; progress goes to the row on PostgreSQL (any worker reads it) and to the in-process
:class:`LiveProgress` board (SQLite cannot take a second writer during an import). A worker that starts marks
failed the jobs of a dead or replaced worker (``IMPORT_INTERRUPTED``).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from app.network.loading import import_layer_file
from app.platform.audit import as_utc
from app.platform.jobs import holder_gone
from app.platform.models import ImportJob
from app.settings import Settings
from gis.errors import InvalidInputError, SanlingError
from gis.importing import FieldMapping, ImportProgress, ImportRejectedError
from gis.layers import get_layer

logger = logging.getLogger("sanling.imports")

# Progress is written to the job row at most this often (PostgreSQL; SQLite keeps it in memory).
_PROGRESS_INTERVAL_S = 0.5


class LiveProgress:
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


def job_dir(settings: Settings, job_id: str) -> Path:
    """The folder of an import job's upload, mapping and reports."""
    return settings.data_dir.resolve() / "imports" / job_id


def job_mapping(folder: Path, options: dict[str, Any], layer: str) -> FieldMapping:
    mapping = FieldMapping.from_file(folder / options["mapping_file"]) if options.get("mapping_file") \
        else FieldMapping()
    mapping = mapping.merged(FieldMapping.from_pairs(options.get("map") or []))
    if mapping.layer and mapping.layer != layer:
        raise InvalidInputError(f"The mapping is for layer {mapping.layer!r}, not {layer!r}.", field="mapping")
    mapping.check_targets(get_layer(layer))  # unknown or service-owned fields (reserved_kva): 422 at once
    return mapping


class ProgressPublisher:
    """Publishes a job's progress: to the job row on PostgreSQL (any worker reads it), in memory on SQLite."""

    def __init__(self, engine: Engine, job_id: str, live: LiveProgress) -> None:
        self.engine = engine
        self.live = live
        self.job_id = job_id
        self.to_database = engine.dialect.name == "postgresql"
        self.last = 0.0

    def __call__(self, state: ImportProgress) -> None:
        self.live.set(self.job_id, state.percent, state.rows_done, state.rows_total)
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


def run_import_job(engine: Engine, settings: Settings, job_id: str, live: LiveProgress) -> None:
    """Run one queued import job to its end and record the outcome on its row (never raises)."""
    try:
        with engine.begin() as conn:
            job = conn.execute(select(ImportJob).where(ImportJob.id == job_id)).one()
            conn.execute(update(ImportJob).where(ImportJob.id == job_id).values(status="running",
                                                                                started_at=datetime.now(UTC)))
        folder = job_dir(settings, job_id)
        options = dict(job.options)
        publish = ProgressPublisher(engine, job_id, live)
        try:
            with engine.begin() as conn:
                report = import_layer_file(
                    conn, job.layer, folder / job.source_name, source_crs=options.get("crs"),
                    replace=bool(options.get("replace")), skip_invalid=bool(options.get("skip_invalid")),
                    dry_run=bool(options.get("dry_run")), mapping=job_mapping(folder, options, job.layer),
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
        live.drop(job_id)


class ImportJobRunner:
    """This worker's import jobs, made with the app: a one-thread executor and the live progress board.

    One import at a time per process: imports of a layer serialise anyway, and the machine's other core serves
    requests. :meth:`start` (in the app's lifespan) first marks failed the jobs a dead worker left behind.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.live = LiveProgress()
        self._engine: Engine | None = None
        self._executor: ThreadPoolExecutor | None = None

    def start(self, engine: Engine) -> None:
        """Reap interrupted jobs and start the executor."""
        try:
            reap_interrupted_imports(engine)
        except SQLAlchemyError:
            logger.warning("import jobs not checked for interrupted ones (no schema yet?)")
        self._engine = engine
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sanling-import")

    def submit(self, job_id: str) -> None:
        """Queue the stored job ``job_id``; it runs after the jobs queued before it."""
        if self._engine is None or self._executor is None:
            raise RuntimeError("the import job runner is not started (the app's lifespan starts it)")
        self._executor.submit(run_import_job, self._engine, self.settings, job_id, self.live)

    def stop(self) -> None:
        """Wait for the running and queued jobs to finish."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=False)
            self._executor = None
