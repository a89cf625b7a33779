"""imports: who holds a claim (claimed_by) and until when (lease_until)

A claim names its holder process ("host:pid:nonce"); a claim whose holder is dead, or whose
lease ran out (PostgreSQL), is taken back at once instead of after CLAIM_STALE_SECONDS.
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'


def upgrade():
    with op.batch_alter_table('imports') as batch_op:
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('lease_until', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('imports') as batch_op:
        batch_op.drop_column('lease_until')
        batch_op.drop_column('claimed_by')
