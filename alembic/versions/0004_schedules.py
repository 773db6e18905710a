"""schedules and schedule_runs: cron schedules of job templates and one row per due time

Revision ID: schedules
Revises: trial_resources
Create Date: 2026-12-01 21:51:04.873593
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.db.base

revision = 'schedules'
down_revision = 'trial_resources'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('schedules',
    sa.Column('id', sa.String(length=30), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('cron', sa.String(length=200), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('job_json', sa.Text(), nullable=False),
    sa.Column('overlap', sa.String(length=8), nullable=False),
    sa.Column('warm_start', sa.String(length=8), nullable=False),
    sa.Column('paused', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('next_due_at', service.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', service.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', service.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("overlap IN ('skip', 'queue')", name=op.f('ck_schedules_overlap')),
    sa.CheckConstraint("warm_start IN ('none', 'front')", name=op.f('ck_schedules_warm_start')),
    sa.ForeignKeyConstraint(['owner_id'], ['api_keys.id'], name=op.f('fk_schedules_owner_id_api_keys')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schedules')),
    sa.UniqueConstraint('owner_id', 'idempotency_key', name=op.f('uq_schedules_owner_id_idempotency_key'))
    )
    with op.batch_alter_table('schedules', schema=None) as batch_op:
        batch_op.create_index('ix_schedules_owner_id_created_at', ['owner_id', 'created_at'], unique=False)
        batch_op.create_index('ix_schedules_paused_next_due_at', ['paused', 'next_due_at'], unique=False)

    op.create_table('schedule_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('schedule_id', sa.String(length=30), nullable=False),
    sa.Column('due_at', service.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('manual', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('job_id', sa.String(length=30), nullable=True),
    sa.Column('warm_start_from', sa.String(length=30), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('fired_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', service.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('started', 'skipped', 'failed')", name=op.f('ck_schedule_runs_status')),
    sa.CheckConstraint("trigger IN ('cron', 'catch-up', 'manual')", name=op.f('ck_schedule_runs_trigger')),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_schedule_runs_job_id_jobs'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['schedule_id'], ['schedules.id'], name=op.f('fk_schedule_runs_schedule_id_schedules'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schedule_runs')),
    sa.UniqueConstraint('schedule_id', 'due_at', 'manual', name=op.f('uq_schedule_runs_schedule_id_due_at_manual'))
    )
    with op.batch_alter_table('schedule_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_schedule_runs_job_id'), ['job_id'], unique=False)
        batch_op.create_index('ix_schedule_runs_schedule_id_id', ['schedule_id', 'id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('schedule_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_schedule_runs_schedule_id_id')
        batch_op.drop_index(batch_op.f('ix_schedule_runs_job_id'))

    op.drop_table('schedule_runs')
    with op.batch_alter_table('schedules', schema=None) as batch_op:
        batch_op.drop_index('ix_schedules_paused_next_due_at')
        batch_op.drop_index('ix_schedules_owner_id_created_at')

    op.drop_table('schedules')
