"""imports: ignored_attachments, the names of a mail's attachments that were not imported

The report mail lists them (an .xlsx sent by mail, a PDF next to the CSV); until now they
were only in the free-text note shown on the import's page.
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'


def upgrade():
    with op.batch_alter_table('imports') as batch:
        batch.add_column(sa.Column('ignored_attachments', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('imports') as batch:
        batch.drop_column('ignored_attachments')
