"""results: drop the index on member_id

Results are read by account and period, or by import; the member index only slowed every
import down (a random-order B-tree insert per row) and served no query.
"""
from alembic import op

revision = '0002'
down_revision = '0001'


def upgrade():
    op.drop_index('ix_results_member_id', table_name='results')


def downgrade():
    op.create_index('ix_results_member_id', 'results', ['member_id'], unique=False)
