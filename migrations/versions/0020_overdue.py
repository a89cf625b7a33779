"""データ未着の通知: the expected files of an account, and one overdue_periods row per 未着 period.

integration_settings.overdue_*: on/off, the daily file (none / same / previous) and its time, the
monthly file's day and time, the weekdays, whether Japanese public holidays are skipped, and since when
it is on. overdue_periods: a period whose file did not come by its deadline (open), until it came (closed).
"""
import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'


def upgrade():
    with op.batch_alter_table('integration_settings') as batch:
        batch.add_column(sa.Column('overdue_enabled', sa.Boolean(), server_default='0', nullable=False))
        batch.add_column(sa.Column('overdue_daily', sa.String(length=8), server_default='none', nullable=False))
        batch.add_column(sa.Column('overdue_daily_time', sa.String(length=5), server_default='09:30', nullable=False))
        batch.add_column(sa.Column('overdue_monthly_day', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('overdue_monthly_time', sa.String(length=5), server_default='09:30',
                                   nullable=False))
        batch.add_column(sa.Column('overdue_days', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('overdue_skip_holidays', sa.Boolean(), server_default='1', nullable=False))
        batch.add_column(sa.Column('overdue_since', sa.DateTime(), nullable=True))
    op.execute("UPDATE integration_settings SET overdue_days = '[\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"]'")
    with op.batch_alter_table('integration_settings') as batch:
        batch.alter_column('overdue_days', existing_type=sa.JSON(), nullable=False)
    op.create_table(
        'overdue_periods',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('period_kind', sa.String(length=8), nullable=False),
        sa.Column('period_date', sa.Date(), nullable=False),
        sa.Column('deadline', sa.DateTime(), nullable=False),
        sa.Column('opened_at', sa.DateTime(), nullable=False),
        sa.Column('alerted_at', sa.DateTime(), nullable=True),
        sa.Column('closed_at', sa.DateTime(), nullable=True),
        sa.Column('import_id', sa.Integer(), nullable=True),
        sa.Column('state', sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_overdue_periods_account_id_accounts'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['import_id'], ['imports.id'], name=op.f('fk_overdue_periods_import_id_imports'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_overdue_periods')),
        sa.UniqueConstraint('account_id', 'period_kind', 'period_date',
                            name=op.f('uq_overdue_periods_account_id_period_kind_period_date')),
    )


def downgrade():
    op.drop_table('overdue_periods')
    with op.batch_alter_table('integration_settings') as batch:
        for name in ('overdue_since', 'overdue_skip_holidays', 'overdue_days', 'overdue_monthly_time',
                     'overdue_monthly_day', 'overdue_daily_time', 'overdue_daily', 'overdue_enabled'):
            batch.drop_column(name)
