"""initial schema: api_keys, jobs, trials, pareto_members, hypervolume_history, trial_weights

Revision ID: 0001
Revises:
Create Date: 2026-11-23 02:21:07.934930
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.db.base

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', service.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', service.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    op.create_table('jobs',
    sa.Column('id', sa.String(length=30), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('dataset', sa.String(length=100), nullable=False),
    sa.Column('config_json', sa.Text(), nullable=False),
    sa.Column('n_trials', sa.Integer(), nullable=False),
    sa.Column('parallelism', sa.Integer(), nullable=False),
    sa.Column('study_name', sa.String(length=100), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('reference_point_json', sa.Text(), nullable=False),
    sa.Column('n_complete', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('n_failed', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('n_running', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('front_size', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('hypervolume', sa.Float(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', service.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', service.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', service.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('updated_at', service.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name=op.f('ck_jobs_status')),
    sa.ForeignKeyConstraint(['owner_id'], ['api_keys.id'], name=op.f('fk_jobs_owner_id_api_keys')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
    sa.UniqueConstraint('owner_id', 'idempotency_key', name=op.f('uq_jobs_owner_id_idempotency_key')),
    sa.UniqueConstraint('study_name', name=op.f('uq_jobs_study_name'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_owner_id_created_at', ['owner_id', 'created_at'], unique=False)
        batch_op.create_index('ix_jobs_status_created_at', ['status', 'created_at'], unique=False)

    op.create_table('hypervolume_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.String(length=30), nullable=False),
    sa.Column('n_complete', sa.Integer(), nullable=False),
    sa.Column('hypervolume', sa.Float(), nullable=True),
    sa.Column('recorded_at', service.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_hypervolume_history_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hypervolume_history'))
    )
    with op.batch_alter_table('hypervolume_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hypervolume_history_job_id'), ['job_id'], unique=False)

    op.create_table('pareto_members',
    sa.Column('job_id', sa.String(length=30), nullable=False),
    sa.Column('trial_number', sa.Integer(), nullable=False),
    sa.Column('val_accuracy', sa.Float(), nullable=False),
    sa.Column('test_accuracy', sa.Float(), nullable=True),
    sa.Column('params', sa.BigInteger(), nullable=False),
    sa.Column('macs', sa.BigInteger(), nullable=True),
    sa.Column('spec_json', sa.Text(), nullable=False),
    sa.Column('added_at', service.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_pareto_members_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'trial_number', name=op.f('pk_pareto_members'))
    )
    op.create_table('trial_weights',
    sa.Column('job_id', sa.String(length=30), nullable=False),
    sa.Column('trial_number', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_trial_weights_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'trial_number', name=op.f('pk_trial_weights'))
    )
    op.create_table('trials',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.String(length=30), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('retry_of', sa.Integer(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('params_json', sa.Text(), nullable=False),
    sa.Column('spec_json', sa.Text(), nullable=True),
    sa.Column('val_accuracy', sa.Float(), nullable=True),
    sa.Column('test_accuracy', sa.Float(), nullable=True),
    sa.Column('params', sa.BigInteger(), nullable=True),
    sa.Column('macs', sa.BigInteger(), nullable=True),
    sa.Column('feasible', sa.Boolean(), nullable=True),
    sa.Column('train_seconds', sa.Float(), nullable=True),
    sa.Column('worker_id', sa.String(length=100), nullable=True),
    sa.Column('lease_expires_at', service.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', service.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('started_at', service.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', service.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.CheckConstraint("state IN ('running', 'complete', 'failed', 'stopped')", name=op.f('ck_trials_state')),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_trials_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trials')),
    sa.UniqueConstraint('job_id', 'number', name=op.f('uq_trials_job_id_number'))
    )
    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trials_job_id'), ['job_id'], unique=False)
        batch_op.create_index('ix_trials_job_id_state', ['job_id', 'state'], unique=False)
        batch_op.create_index('ix_trials_state_lease_expires_at', ['state', 'lease_expires_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.drop_index('ix_trials_state_lease_expires_at')
        batch_op.drop_index('ix_trials_job_id_state')
        batch_op.drop_index(batch_op.f('ix_trials_job_id'))

    op.drop_table('trials')
    op.drop_table('trial_weights')
    op.drop_table('pareto_members')
    with op.batch_alter_table('hypervolume_history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hypervolume_history_job_id'))

    op.drop_table('hypervolume_history')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_status_created_at')
        batch_op.drop_index('ix_jobs_owner_id_created_at')

    op.drop_table('jobs')
    op.drop_table('api_keys')
