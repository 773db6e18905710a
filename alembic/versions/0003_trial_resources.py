"""trial resources: jobs.gpus_per_trial and jobs.cpus_per_trial (what a Ray driver asks per trial)

Revision ID: trial_resources
Revises: trial_preprocess
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "trial_resources"
down_revision = "trial_preprocess"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("gpus_per_trial", sa.Float(), server_default=sa.text("0"), nullable=False)
        )
        batch.add_column(
            sa.Column("cpus_per_trial", sa.Float(), server_default=sa.text("1"), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("cpus_per_trial")
        batch.drop_column("gpus_per_trial")
