"""Archives: an import unpacked from a .zip/.gz names its archive's import; the account's ZIPパスワード

imports.archive_id: the archive's own import (status "unpacked"), empty for files sent alone.
integration_settings.zip_password: the password of encrypted zips, encrypted with a key derived
from SECRET_KEY (services/zippassword.py); empty = none set.
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'


def upgrade():
    with op.batch_alter_table('imports') as batch:
        batch.add_column(sa.Column('archive_id', sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f('fk_imports_archive_id_imports'), 'imports', ['archive_id'], ['id'],
                                 ondelete='SET NULL')
        batch.create_index(op.f('ix_imports_archive_id'), ['archive_id'])
    with op.batch_alter_table('integration_settings') as batch:
        batch.add_column(sa.Column('zip_password', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('integration_settings') as batch:
        batch.drop_column('zip_password')
    with op.batch_alter_table('imports') as batch:
        batch.drop_index(op.f('ix_imports_archive_id'))
        batch.drop_constraint(op.f('fk_imports_archive_id_imports'), type_='foreignkey')
        batch.drop_column('archive_id')
