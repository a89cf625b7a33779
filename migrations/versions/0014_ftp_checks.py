"""FTP checks: the last check's trigger and result, the pending automatic re-check

integration_settings.last_ftp_check_trigger: scheduled / manual / recheck (services/ftpreport.py).
integration_settings.last_ftp_check_result: what the last check said (outcome, message, files, lines).
integration_settings.ftp_recheck_at: when the re-check of files still settling runs; empty = none.
"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'


def upgrade():
    with op.batch_alter_table('integration_settings') as batch:
        batch.add_column(sa.Column('last_ftp_check_trigger', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('last_ftp_check_result', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('ftp_recheck_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('integration_settings') as batch:
        batch.drop_column('ftp_recheck_at')
        batch.drop_column('last_ftp_check_result')
        batch.drop_column('last_ftp_check_trigger')
