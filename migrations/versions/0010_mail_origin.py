"""Mail sender authenticity: who delivered a mail and what DKIM/SPF said; 送信元サーバー and 送信元の認証

imports: mail_from (SMTP envelope sender), peer_address, helo_name, dkim_result, dkim_domain,
spf_result, all empty for other channels and for mail received before this revision.
integration_settings: sender_networks (JSON list of addresses/CIDRs, empty = any) and
sender_auth (none | dkim | spf | either, none by default: nothing changes for existing accounts).
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'

IMPORT_COLUMNS = (
    ('mail_from', 320), ('peer_address', 64), ('helo_name', 255),
    ('dkim_result', 16), ('dkim_domain', 255), ('spf_result', 16),
)


def upgrade():
    with op.batch_alter_table('imports') as batch:
        for name, length in IMPORT_COLUMNS:
            batch.add_column(sa.Column(name, sa.String(length), nullable=True))
    with op.batch_alter_table('integration_settings') as batch:
        batch.add_column(sa.Column('sender_networks', sa.JSON(), nullable=False, server_default='[]'))
        batch.add_column(sa.Column('sender_auth', sa.String(8), nullable=False, server_default='none'))


def downgrade():
    with op.batch_alter_table('integration_settings') as batch:
        batch.drop_column('sender_auth')
        batch.drop_column('sender_networks')
    with op.batch_alter_table('imports') as batch:
        for name, _ in reversed(IMPORT_COLUMNS):
            batch.drop_column(name)
