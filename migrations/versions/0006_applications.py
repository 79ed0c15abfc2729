"""Applications, their documents and steps, the admin assignment queue and materials requests (issue 5).

Revision ID: 0006_applications
Revises: 0005_audit
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import alembic_helpers  # noqa: F401  (registers op.create_geospatial_table)

revision: str = "0006_applications"
down_revision: str | Sequence[str] | None = "0005_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _user_fk(column: str, table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], ["users.id"], name=f"fk_{table}_{column}_users")


def _application_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["application_id"], ["applications.id"],
                                   name=f"fk_{table}_application_id_applications", ondelete="CASCADE")


def upgrade() -> None:
    """Create applications (with a spatial index on the meter box), documents, steps, queue and materials."""
    op.create_geospatial_table(
        "applications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_user_id", sa.Integer(), nullable=False),
        sa.Column("applicant_name", sa.String(200), nullable=False),
        sa.Column("identity_kind", sa.String(32), nullable=False),
        sa.Column("identity_number", sa.String(64), nullable=False),
        sa.Column("contact_phone", sa.String(32), nullable=True),
        sa.Column("address", sa.String(500), nullable=False),
        sa.Column("pin_lon", sa.Float(), nullable=False),
        sa.Column("pin_lat", sa.Float(), nullable=False),
        sa.Column("pin_crs", sa.String(16), nullable=False),
        sa.Column("requested_kw", sa.Float(), nullable=False),
        sa.Column("phases", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("industry", sa.String(100), nullable=True),
        sa.Column("area_type", sa.String(8), nullable=True),
        sa.Column("wanted_power_on", sa.Date(), nullable=True),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("grid_area_code", sa.String(64), nullable=True),
        sa.Column("customer_manager_user_id", sa.Integer(), nullable=True),
        sa.Column("project_manager_user_id", sa.Integer(), nullable=True),
        _timestamp("assigned_at"),
        sa.Column("assigned_by", sa.String(16), nullable=True),
        sa.Column("design_id", sa.String(36), nullable=True),
        sa.Column("job_class", sa.String(32), nullable=True),
        sa.Column("promised_power_on", sa.Date(), nullable=True),
        sa.Column("confirmed_design_version", sa.Integer(), nullable=True),
        _timestamp("confirmed_at"),
        sa.Column("reserved_kva", sa.Float(), server_default="0", nullable=False),
        sa.Column("reserved_transformer_asset_id", sa.String(64), nullable=True),
        sa.Column("documents_complete", sa.Boolean(), nullable=False),
        sa.Column("contract_version", sa.String(32), nullable=False),
        sa.Column("contract_sha256", sa.String(64), nullable=False),
        _timestamp("contract_accepted_at", nullable=False),
        sa.Column("contract_accepted_by_user_id", sa.Integer(), nullable=False),
        _timestamp("created_at", nullable=False),
        _timestamp("updated_at", nullable=False),
        _timestamp("powered_on_at"),
        _timestamp("cancelled_at"),
        sa.Column("cancel_reason", sa.String(500), nullable=True),
        sa.Column("meter_box", geoalchemy2.Geometry(geometry_type="POINT", srid=4326, spatial_index=True),
                  nullable=False),
        _user_fk("customer_user_id", "applications"),
        _user_fk("customer_manager_user_id", "applications"),
        _user_fk("project_manager_user_id", "applications"),
        _user_fk("contract_accepted_by_user_id", "applications"),
        sa.PrimaryKeyConstraint("id", name="pk_applications"),
    )
    for column in ("customer_user_id", "status", "grid_area_code", "customer_manager_user_id",
                   "project_manager_user_id", "design_id", "reserved_transformer_asset_id"):
        op.create_index(f"ix_applications_{column}", "applications", [column])

    op.create_table(
        "application_documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("storage_path", sa.String(500), nullable=False),
        _timestamp("uploaded_at", nullable=False),
        sa.Column("uploaded_by_user_id", sa.Integer(), nullable=False),
        _application_fk("application_documents"),
        _user_fk("uploaded_by_user_id", "application_documents"),
        sa.PrimaryKeyConstraint("id", name="pk_application_documents"),
    )
    op.create_index("ix_application_documents_application_id", "application_documents", ["application_id"])

    op.create_table(
        "application_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("step_code", sa.String(32), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=False),
        _timestamp("completed_at"),
        sa.Column("completed_by_user_id", sa.Integer(), nullable=True),
        sa.Column("client_time_note", sa.String(64), nullable=True),
        sa.Column("gps_lon_wgs84", sa.Float(), nullable=True),
        sa.Column("gps_lat_wgs84", sa.Float(), nullable=True),
        sa.Column("gps_accuracy_m", sa.Float(), nullable=True),
        sa.Column("photos", sa.JSON(), nullable=False),
        sa.Column("note", sa.String(1000), nullable=True),
        sa.Column("deadline_status", sa.String(16), server_default="on_time", nullable=False),
        _application_fk("application_steps"),
        _user_fk("completed_by_user_id", "application_steps"),
        sa.PrimaryKeyConstraint("id", name="pk_application_steps"),
        sa.UniqueConstraint("application_id", "step_code", name="uq_application_steps_application_id"),
    )
    op.create_index("ix_application_steps_application_id", "application_steps", ["application_id"])
    op.create_index("ix_application_steps_deadline", "application_steps", ["deadline"])

    op.create_table(
        "assignment_queue",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        _timestamp("queued_at", nullable=False),
        _timestamp("resolved_at"),
        sa.Column("resolved_by_user_id", sa.Integer(), nullable=True),
        _application_fk("assignment_queue"),
        _user_fk("resolved_by_user_id", "assignment_queue"),
        sa.PrimaryKeyConstraint("id", name="pk_assignment_queue"),
        sa.UniqueConstraint("application_id", name="uq_assignment_queue_application_id"),
    )

    op.create_table(
        "materials_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("design_id", sa.String(36), nullable=False),
        sa.Column("design_version", sa.Integer(), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("total_cny", sa.Float(), nullable=False),
        sa.Column("stock_check", sa.JSON(), nullable=True),
        _timestamp("requested_at", nullable=False),
        sa.Column("requested_by_user_id", sa.Integer(), nullable=False),
        _application_fk("materials_requests"),
        _user_fk("requested_by_user_id", "materials_requests"),
        sa.PrimaryKeyConstraint("id", name="pk_materials_requests"),
    )
    op.create_index("ix_materials_requests_application_id", "materials_requests", ["application_id"])


def downgrade() -> None:
    """Drop materials_requests, assignment_queue, application_steps, application_documents and applications."""
    op.drop_index("ix_materials_requests_application_id", table_name="materials_requests")
    op.drop_table("materials_requests")
    op.drop_table("assignment_queue")
    op.drop_index("ix_application_steps_deadline", table_name="application_steps")
    op.drop_index("ix_application_steps_application_id", table_name="application_steps")
    op.drop_table("application_steps")
    op.drop_index("ix_application_documents_application_id", table_name="application_documents")
    op.drop_table("application_documents")
    for column in ("customer_user_id", "status", "grid_area_code", "customer_manager_user_id",
                   "project_manager_user_id", "design_id", "reserved_transformer_asset_id"):
        op.drop_index(f"ix_applications_{column}", table_name="applications")
    op.drop_geospatial_table("applications")
