"""The daily 破棄のお知らせ: imports.subject of a discarded mail, and one discard_notices row per account and day.

imports.subject: the Subject: of a mail discarded for its 連動稼働状態 or データ連動方式 (empty for others).
discard_notices: the notice of one account for one local day (unique), with the outbox mail it queued.
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'


def upgrade():
    with op.batch_alter_table('imports') as batch:
        batch.add_column(sa.Column('subject', sa.String(length=255), nullable=True))
    op.create_table(
        'discard_notices',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('mail_id', sa.Integer(), nullable=True),
        sa.Column('discards', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_discard_notices_account_id_accounts'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['mail_id'], ['outbox.id'], name=op.f('fk_discard_notices_mail_id_outbox'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_discard_notices')),
        sa.UniqueConstraint('account_id', 'day', name=op.f('uq_discard_notices_account_id_day')),
    )


def downgrade():
    op.drop_table('discard_notices')
    with op.batch_alter_table('imports') as batch:
        batch.drop_column('subject')
