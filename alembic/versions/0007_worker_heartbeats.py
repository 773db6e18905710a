"""workers: one row per worker process, its heartbeat (last_seen_at) and what it runs

Revision ID: worker_heartbeats
Revises: trial_verdicts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.db.base

revision = "worker_heartbeats"
down_revision = "trial_verdicts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(length=32), nullable=False),
        sa.Column("started_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", service.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", service.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("job_id", sa.String(length=30), nullable=True),
        sa.Column("trial_number", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_workers_last_seen_at"), ["last_seen_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workers_last_seen_at"))
    op.drop_table("workers")
