"""ssh_keys: the SSH public keys an account logs in to the SFTP server with

One row per key of an account: its type (ssh-ed25519, ecdsa-sha2-*, ssh-rsa), the base64 blob
as authorized_keys has it, the comment, and the SHA256 fingerprint, unique within the account.
"""
import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'


def upgrade():
    op.create_table(
        'ssh_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('key_type', sa.String(length=32), nullable=False),
        sa.Column('key_data', sa.Text(), nullable=False),
        sa.Column('comment', sa.String(length=255), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_ssh_keys_account_id_accounts'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ssh_keys')),
        sa.UniqueConstraint('account_id', 'fingerprint', name=op.f('uq_ssh_keys_account_id_fingerprint')),
    )


def downgrade():
    op.drop_table('ssh_keys')
