"""Workbooks: 読み込むシート per account, and the column letter of an error in a workbook

integration_settings: sheet_name (the sheet of a workbook to read; empty = the first sheet,
as for every account before this revision).
import_errors: column_letter ("C": the column as a spreadsheet shows it), empty for CSV files
and for errors stored before this revision.
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'


def upgrade():
    with op.batch_alter_table('integration_settings') as batch:
        batch.add_column(sa.Column('sheet_name', sa.String(31), nullable=False, server_default=''))
    with op.batch_alter_table('import_errors') as batch:
        batch.add_column(sa.Column('column_letter', sa.String(3), nullable=True))


def downgrade():
    with op.batch_alter_table('import_errors') as batch:
        batch.drop_column('column_letter')
    with op.batch_alter_table('integration_settings') as batch:
        batch.drop_column('sheet_name')
