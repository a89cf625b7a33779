"""Fetching mail from a mailbox (IMAP): the 受信方法 of メール添付連動 and the messages already handed over

mailboxes: one row per account that set a 受信方法 (none = 内蔵SMTP): the IMAP server, the
login (password encrypted as the ZIPパスワード is), the folders, the last fetch and the backoff.
fetched_messages: (account, UIDVALIDITY, UID) of each message handed to the mail path, written
before the message is moved, so a crash between the two imports it once.
"""
import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'


def upgrade():
    op.create_table(
        'mailboxes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('method', sa.String(length=8), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('port', sa.Integer(), nullable=False),
        sa.Column('tls', sa.String(length=8), nullable=False),
        sa.Column('verify', sa.Boolean(), nullable=False),
        sa.Column('username', sa.String(length=320), nullable=False),
        sa.Column('password', sa.Text(), nullable=True),
        sa.Column('folder', sa.String(length=255), nullable=False),
        sa.Column('processed_folder', sa.String(length=255), nullable=False),
        sa.Column('last_success_at', sa.DateTime(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('last_error_at', sa.DateTime(), nullable=True),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('retry_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_mailboxes_account_id_accounts'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_mailboxes')),
        sa.UniqueConstraint('account_id', name=op.f('uq_mailboxes_account_id')),
    )
    op.create_table(
        'fetched_messages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('uidvalidity', sa.BigInteger(), nullable=False),
        sa.Column('uid', sa.BigInteger(), nullable=False),
        sa.Column('fetched_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                                name=op.f('fk_fetched_messages_account_id_accounts'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_fetched_messages')),
        sa.UniqueConstraint('account_id', 'uidvalidity', 'uid',
                            name=op.f('uq_fetched_messages_account_id_uidvalidity_uid')),
    )


def downgrade():
    op.drop_table('fetched_messages')
    op.drop_table('mailboxes')
