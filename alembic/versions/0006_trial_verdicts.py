"""trial verdicts: duplicate / refused / stopped_early trial states and their references

Trials gain the states ``stopped_early``, ``duplicate`` and ``refused`` with ``duplicate_of``,
``stopped_epoch`` and ``lost_to``; jobs count them (``n_stopped_early``, ``n_skipped``) and say
why they ended before ``n_trials`` trained trials (``finished_reason``).

Revision ID: trial_verdicts
Revises: dashboard
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "trial_verdicts"
down_revision = "dashboard"
branch_labels = None
depends_on = None

OLD_STATES = "state IN ('running', 'complete', 'failed', 'stopped')"
NEW_STATES = (
    "state IN ('running', 'complete', 'failed', 'stopped', 'stopped_early', 'duplicate', "
    "'refused')"
)


def upgrade() -> None:
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("duplicate_of", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("stopped_epoch", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("lost_to", sa.Integer(), nullable=True))
        batch_op.drop_constraint(op.f("ck_trials_state"), type_="check")
        batch_op.create_check_constraint("state", NEW_STATES)
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("n_stopped_early", sa.Integer(), server_default=sa.text("0"),
                                      nullable=False))
        batch_op.add_column(sa.Column("n_skipped", sa.Integer(), server_default=sa.text("0"),
                                      nullable=False))
        batch_op.add_column(sa.Column("finished_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    op.execute("UPDATE trials SET state = 'stopped' WHERE state = 'stopped_early'")
    op.execute("UPDATE trials SET state = 'failed' WHERE state IN ('duplicate', 'refused')")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("finished_reason")
        batch_op.drop_column("n_skipped")
        batch_op.drop_column("n_stopped_early")
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_trials_state"), type_="check")
        batch_op.create_check_constraint("state", OLD_STATES)
        batch_op.drop_column("lost_to")
        batch_op.drop_column("stopped_epoch")
        batch_op.drop_column("duplicate_of")
