"""Database tables (SQLAlchemy 2 declarative, GeoAlchemy2 geometry in EPSG:4326).

Geometry is stored in WGS-84 lon/lat (CGCS2000 treated as identical, DOMAIN §9.2). Metric work
happens in memory in the deployment's projected CRS (``SANLING_PROJECTED_CRS``), see docs/architecture.md.
The schema is created only by Alembic migrations (``migrations/``), never by ``create_all``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SRID_WGS84 = 4326

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with named constraints, so migrations are stable on both databases."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _geometry(geometry_type: str) -> Geometry:
    return Geometry(geometry_type=geometry_type, srid=SRID_WGS84, spatial_index=True)


class GridArea(Base):
    """Grid area (网格) served by one "1+1" team: a customer manager and a project manager."""

    __tablename__ = "grid_areas"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    area_type: Mapped[str] = mapped_column(String(16), default="urban")
    customer_manager: Mapped[str | None] = mapped_column(String(100))
    project_manager: Mapped[str | None] = mapped_column(String(100))
    # The supply unit of the reports (issue 14; CQ-32 annexes 1-2): 供电单位, 供电所, 服务片区（行政区域）.
    supply_company: Mapped[str | None] = mapped_column(String(200))
    supply_station: Mapped[str | None] = mapped_column(String(200))
    admin_region: Mapped[str | None] = mapped_column(String(200))
    geom = mapped_column(_geometry("MULTIPOLYGON"), nullable=False)


class Transformer(Base):
    """Distribution transformer (配变) 10/0.4 kV feeding one LV area (台区)."""

    __tablename__ = "transformers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    rated_kva: Mapped[float] = mapped_column(Float)
    peak_kva: Mapped[float] = mapped_column(Float, default=0.0)
    peak_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reserved_kva: Mapped[float] = mapped_column(Float, default=0.0)
    grid_area_code: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default="in_service")
    geom = mapped_column(_geometry("POINT"), nullable=False)


class LvLine(Base):
    """LV overhead line or cable (低压线路/电缆) section fed by a transformer."""

    __tablename__ = "lv_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[str] = mapped_column(String(64), unique=True)
    transformer_asset_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    conductor_type: Mapped[str | None] = mapped_column(String(64))
    geom = mapped_column(_geometry("LINESTRING"), nullable=False)


class AccessPoint(Base):
    """LV access point: pole (电杆) or cable branch box (电缆分支箱) fed by a transformer."""

    __tablename__ = "access_points"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[str] = mapped_column(String(64), unique=True)
    transformer_asset_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    geom = mapped_column(_geometry("POINT"), nullable=False)


class Road(Base):
    """Road centre line with its class (主干路/次干路/支路/巷道) and width."""

    __tablename__ = "roads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    road_class: Mapped[str] = mapped_column(String(16))
    width_m: Mapped[float | None] = mapped_column(Float)
    geom = mapped_column(_geometry("LINESTRING"), nullable=False)


class NoOverheadZone(Base):
    """Zone where overhead lines are forbidden (禁止架空区), so new works must be cable."""

    __tablename__ = "no_overhead_zones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    geom = mapped_column(_geometry("MULTIPOLYGON"), nullable=False)


class AssetGeneration(Base):
    """One-row counters, moved in the same transaction as the change they count.

    ``generation`` moves with every change of assets, load readings or capacity bookings (caches of
    any derived data key on it); ``network_generation`` only with asset changes; ``capacity_seq`` is the
    last ``capacity_changes.seq``. A worker whose snapshot is of the same network generation applies the
    bookings and load readings logged since its ``capacity_seq`` in place instead of rebuilding the
    network (docs/siting.md, "Consistency").
    """

    __tablename__ = "asset_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    network_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    capacity_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CapacityChange(Base):
    """One change of a transformer's load, in commit order (``seq``): its new ``reserved_kva`` (a booking,
    容量预留, or a release) or its new ``peak_kva`` (a load reading, 负荷); the other figure is NULL (unchanged)."""

    __tablename__ = "capacity_changes"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    transformer_asset_id: Mapped[str] = mapped_column(String(64))
    reserved_kva: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_kva: Mapped[float | None] = mapped_column(Float, nullable=True)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


ASSET_TABLES: dict[str, type[Base]] = {
    "grid_areas": GridArea,
    "transformers": Transformer,
    "lv_lines": LvLine,
    "access_points": AccessPoint,
    "roads": Road,
    "no_overhead_zones": NoOverheadZone,
}


class Design(Base):
    """A stored connection design (接入方案): one row per version, never updated in place.

    ``design_id`` is stable across versions; ``version`` starts at 1 and each redesign adds a row.
    ``request`` is the input as received, ``result`` the full computed design (JSON).
    """

    __tablename__ = "designs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    design_id: Mapped[str] = mapped_column(String(36), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    profile_id: Mapped[str] = mapped_column(String(64))
    job_class: Mapped[str] = mapped_column(String(32))
    transformer_asset_id: Mapped[str | None] = mapped_column(String(64))
    total_cost_cny: Mapped[float] = mapped_column(Float, default=0.0)
    request: Mapped[dict] = mapped_column(JSON)
    result: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    meter_box = mapped_column(_geometry("POINT"), nullable=False)

    __table_args__ = (UniqueConstraint("design_id", "version", name="uq_designs_design_id_version"),)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class User(Base):
    """A person or service account that signs in (docs/auth.md).

    ``role`` is one of ``app.identity.auth.Role``. ``grid_area_codes`` scopes customer managers and project
    managers to their grid areas (网格); other roles leave it empty. Users are deactivated, never deleted.
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    grid_area_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    phone: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow,
                                                 server_default=func.now())
    #: Carried in every access token (claim ``ver``); moved by a password or role change, so older tokens stop.
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class LoginThrottle(Base):
    """Sign-in attempts of one account or one client address (``app.identity.throttle``), shared by all workers.

    ``key`` is ``account:`` or ``address:`` and the SHA-256 of the normalised username or address (what was typed
    is not stored). ``failures`` counts attempts since the last success, each counted before its password is
    hashed; ``locked_until`` refuses sign-ins (429) until then. A row quiet for the window is forgotten.
    """

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    """Long-lived API key of a terminal, shown once as ``sl_<prefix>_<secret>``; only an argon2id hash is kept.

    ``prefix`` (8 characters, unique) finds the row and is shown in listings; revocation sets ``revoked_at``.
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(8), unique=True, index=True)
    key_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow,
                                                 server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoadReading(Base):
    """A transformer's peak load reading (负荷数据).

    Importing readings moves ``transformers.peak_kva``/``peak_at`` to each transformer's latest reading
    (docs/import.md); ``(transformer_asset_id, read_at)`` identifies a reading.
    """

    __tablename__ = "load_readings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transformer_asset_id: Mapped[str] = mapped_column(String(64), index=True)
    read_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    peak_kva: Mapped[float] = mapped_column(Float)

    __table_args__ = (UniqueConstraint("transformer_asset_id", "read_at",
                                       name="uq_load_readings_transformer_asset_id_read_at"),)


class ImportJob(Base):
    """A GIS batch import started through the API (R7): status, progress and the result document.

    ``status`` is ``queued``, ``running``, ``succeeded``, ``rejected`` (invalid rows, nothing imported) or
    ``failed`` (the file or the mapping could not be used; ``error`` is ``{code, message, details}``).
    Any worker answers for any job from this row; ``report`` is the import report (docs/import.md). A job
    whose ``holder`` process is gone is marked ``failed`` with ``IMPORT_INTERRUPTED``
    (``app.network.import_jobs.reap_interrupted_imports``).
    """

    __tablename__ = "import_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    layer: Mapped[str] = mapped_column(String(32))
    source_name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), index=True)
    progress_pct: Mapped[float] = mapped_column(Float, default=0.0)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    rows_total: Mapped[int | None] = mapped_column(Integer)
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    report: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[dict | None] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: ``host:pid`` of the worker process that queued the job and runs it (``app.platform.jobs.worker_id``).
    holder: Mapped[str | None] = mapped_column(String(200))


class AuditLog(Base):
    """One state change: who (user id and role), when (server clock, UTC), what (entity, id, action), before/after.

    Append-only (issue 5 item 8): rows are only ever inserted through ``app.platform.audit.record_change``; database
    triggers refuse UPDATE and DELETE on both backends (migration 0005_audit).
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor_user_id: Mapped[int | None] = mapped_column(Integer, index=True)
    actor_role: Mapped[str | None] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)
    request_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_audit_log_entity_entity_id", "entity", "entity_id"),)


class IdempotencyKey(Base):
    """The stored first answer to a mutating request sent with an ``Idempotency-Key`` (weak networks, R5).

    Written in the same transaction as the request's effect, so a committed row always means the effect
    happened exactly once; ``(user_id, key)`` is unique. See ``app.platform.idempotency``.
    """

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(500))
    body_fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[Any] = mapped_column(JSON, nullable=True)
    response_headers: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)

    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_id"),)


class Notification(Base):
    """A message to one user (deadline warnings R5.4, …), shown in the API and delivered by a sender.

    ``dedupe_key`` (unique per user) keeps the same warning from being created twice; ``sent_at`` /
    ``send_error`` / ``send_attempts`` record delivery; ``acknowledged_at`` is set by the recipient.
    """

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    entity: Mapped[str | None] = mapped_column(String(64))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    send_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    send_error: Mapped[str | None] = mapped_column(Text)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("user_id", "dedupe_key", name="uq_notifications_user_id"),)


class JobLease(Base):
    """Lease of a periodic job (``app.platform.jobs``): the worker whose UPDATE moved ``expires_at`` runs the job."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    holder: Mapped[str | None] = mapped_column(String(200))
    last_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)


class Application(Base):
    """A customer's connection application (用电申请, R1) and its lifecycle (docs/lifecycle.md).

    ``status``: ``awaiting_assignment`` (the pin lies in no grid area or the area has no 1+1 team: admin
    queue), ``in_progress``, ``powered_on``, ``cancelled``. The pin is kept as captured (``pin_lon``,
    ``pin_lat`` in ``pin_crs``) and as a WGS-84 point (``meter_box``). ``reserved_kva`` on
    ``reserved_transformer_asset_id`` is this application's share of ``transformers.reserved_kva``.
    """

    __tablename__ = "applications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    applicant_name: Mapped[str] = mapped_column(String(200))
    identity_kind: Mapped[str] = mapped_column(String(32))
    identity_number: Mapped[str] = mapped_column(String(64))
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(500))
    pin_lon: Mapped[float] = mapped_column(Float)
    pin_lat: Mapped[float] = mapped_column(Float)
    pin_crs: Mapped[str] = mapped_column(String(16))
    requested_kw: Mapped[float] = mapped_column(Float)
    phases: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(32))
    industry: Mapped[str | None] = mapped_column(String(100))
    area_type: Mapped[str | None] = mapped_column(String(8))
    wanted_power_on: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(24), index=True)
    grid_area_code: Mapped[str | None] = mapped_column(String(64), index=True)
    customer_manager_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    project_manager_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    assigned_by: Mapped[str | None] = mapped_column(String(16))
    design_id: Mapped[str | None] = mapped_column(String(36), index=True)
    job_class: Mapped[str | None] = mapped_column(String(32))
    promised_power_on: Mapped[date | None] = mapped_column(Date)
    confirmed_design_version: Mapped[int | None] = mapped_column(Integer)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reserved_kva: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    reserved_transformer_asset_id: Mapped[str | None] = mapped_column(String(64), index=True)
    documents_complete: Mapped[bool] = mapped_column(Boolean, default=False)
    contract_version: Mapped[str] = mapped_column(String(32))
    contract_sha256: Mapped[str] = mapped_column(String(64))
    contract_accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    contract_accepted_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    powered_on_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
    # Captured for the reports when each happens (issue 14; migration 0011; NULL on older rows, never back-filled):
    # 户号 at power-on, 申请方式 and 业务类型 at intake, 工程实施时间 by the terminal's construction-start call.
    account_number: Mapped[str | None] = mapped_column(String(32))
    channel: Mapped[str | None] = mapped_column(String(24))
    business_type: Mapped[str | None] = mapped_column(String(24))
    construction_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    customer_charged_cny: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    # The booking given back (issue 15 item 1; migration 0012): when, why (``cancelled``, ``reading_after_power_on``,
    # ``timeout_after_power_on``), what and the reading that released it; the booking columns above are cleared.
    booking_released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    booking_release_reason: Mapped[str | None] = mapped_column(String(32))
    booking_released_kva: Mapped[float | None] = mapped_column(Float)
    booking_released_transformer_asset_id: Mapped[str | None] = mapped_column(String(64))
    booking_release_reading_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    meter_box = mapped_column(_geometry("POINT"), nullable=False)


class ApplicationDocument(Base):
    """An uploaded application document (R1.2): the file lives under ``DATA_DIR``, the row keeps its checksum."""

    __tablename__ = "application_documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_path: Mapped[str] = mapped_column(String(500))
    uploaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    uploaded_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))


class ApplicationStep(Base):
    """One internal step of an application (R5.2) with its deadline and what the field reported (R5.3).

    ``completed_at`` is the server clock; ``client_time_note`` is the device's time, kept only as a note.
    ``deadline_status`` is ``on_time``, ``at_risk`` (≤ 1 working day left) or ``overdue`` (R5.4).
    """

    __tablename__ = "application_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    step_code: Mapped[str] = mapped_column(String(32))
    starts_on: Mapped[date] = mapped_column(Date)
    deadline: Mapped[date] = mapped_column(Date, index=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    client_time_note: Mapped[str | None] = mapped_column(String(64))
    gps_lon_wgs84: Mapped[float | None] = mapped_column(Float)
    gps_lat_wgs84: Mapped[float | None] = mapped_column(Float)
    gps_accuracy_m: Mapped[float | None] = mapped_column(Float)
    photos: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    note: Mapped[str | None] = mapped_column(String(1000))
    deadline_status: Mapped[str] = mapped_column(String(16), default="on_time", server_default="on_time")

    __table_args__ = (UniqueConstraint("application_id", "step_code", name="uq_application_steps_application_id"),)


class AssignmentQueueItem(Base):
    """An application waiting for an admin to assign a 1+1 team (pin in no grid area, or no team there; R5.1)."""

    __tablename__ = "assignment_queue"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"), unique=True)
    reason: Mapped[str] = mapped_column(String(32))
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class MaterialsRequest(Base):
    """Materials drawn for a confirmed design (出库申请, R5.5): the frozen BOM lines and the depot stock check."""

    __tablename__ = "materials_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"), index=True)
    design_id: Mapped[str] = mapped_column(String(36))
    design_version: Mapped[int] = mapped_column(Integer)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    total_cny: Mapped[float] = mapped_column(Float)
    stock_check: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    requested_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
