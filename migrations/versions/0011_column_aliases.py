"""Other systems' column names: graph column aliases, the member key's header aliases, 見出しにない列

graph_columns: aliases (JSON list of header names, NFKC-normalised, empty by default).
integration_settings: key_aliases (JSON list: other headers of the member-key column) and
extra_columns (error | ignore: what a header that names nothing does; error by default, as before).
imports: ignored_headers (JSON list of the headers an import skipped under extra_columns=ignore).
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'


def upgrade():
    with op.batch_alter_table('graph_columns') as batch:
        batch.add_column(sa.Column('aliases', sa.JSON(), nullable=False, server_default='[]'))
    with op.batch_alter_table('integration_settings') as batch:
        batch.add_column(sa.Column('key_aliases', sa.JSON(), nullable=False, server_default='[]'))
        batch.add_column(sa.Column('extra_columns', sa.String(8), nullable=False, server_default='error'))
    with op.batch_alter_table('imports') as batch:
        batch.add_column(sa.Column('ignored_headers', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('imports') as batch:
        batch.drop_column('ignored_headers')
    with op.batch_alter_table('integration_settings') as batch:
        batch.drop_column('extra_columns')
        batch.drop_column('key_aliases')
    with op.batch_alter_table('graph_columns') as batch:
        batch.drop_column('aliases')
