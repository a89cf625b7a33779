"""results clustered by import: primary key (import_id, line), no other index; manual_results

An import's rows are one range of the primary key: inserted at its end, deleted as one range
when a later file of the same name replaces them, read as one range by the totals and the
export. SQLite stores the table WITHOUT ROWID, so the rows live in that key's B-tree and no
second index is kept up to date per row (the import_id and (account, period) indexes are gone:
the board and the month API read month_totals, the day API import_totals).
Hand-typed results have no import, so they move to manual_results (their ids kept), indexed
by (account, period) for the day API and the export.

Rows are copied with INSERT … SELECT; the downgrade puts both tables back together.
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'

COLUMNS = 'account_id, member_id, period_kind, period_date, "values", note'


def _foreign_keys(table):
    return [
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=f'fk_{table}_account_id_accounts',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=f'fk_{table}_member_id_members',
                                ondelete='CASCADE'),
    ]


def _value_columns():
    return [
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('period_kind', sa.String(length=8), nullable=False),
        sa.Column('period_date', sa.Date(), nullable=False),
        sa.Column('values', sa.JSON(), nullable=False),
        sa.Column('note', sa.Text(), nullable=True),
    ]


def _set_aside_old_results():
    """Rename results to results_old, freeing its index and primary key names (schema-wide on PostgreSQL)."""
    op.drop_index('ix_results_account_period', table_name='results')
    op.drop_index('ix_results_import_id', table_name='results')
    op.rename_table('results', 'results_old')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE results_old RENAME CONSTRAINT pk_results TO pk_results_old')


def upgrade():
    _set_aside_old_results()
    op.create_table(
        'results',
        sa.Column('import_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('line', sa.Integer(), autoincrement=False, nullable=False),
        *_value_columns(),
        sa.ForeignKeyConstraint(['import_id'], ['imports.id'], name='fk_results_import_id_imports', ondelete='CASCADE'),
        *_foreign_keys('results'),
        sa.PrimaryKeyConstraint('import_id', 'line', name='pk_results'),
        sqlite_with_rowid=False,
    )
    op.execute(f'INSERT INTO results (import_id, line, {COLUMNS}) '
               f'SELECT import_id, line, {COLUMNS} FROM results_old '
               'WHERE import_id IS NOT NULL ORDER BY import_id, line')
    op.create_table(
        'manual_results',
        sa.Column('id', sa.Integer(), nullable=False),
        *_value_columns(),
        *_foreign_keys('manual_results'),
        sa.PrimaryKeyConstraint('id', name='pk_manual_results'),
    )
    op.create_index('ix_manual_results_account_period', 'manual_results', ['account_id', 'period_date'])
    op.execute(f'INSERT INTO manual_results (id, {COLUMNS}) SELECT id, {COLUMNS} FROM results_old '
               'WHERE import_id IS NULL ORDER BY id')
    if op.get_bind().dialect.name == 'postgresql':  # the serial goes on after the ids copied in
        op.execute("SELECT setval(pg_get_serial_sequence('manual_results', 'id'), "
                   "COALESCE((SELECT MAX(id) FROM manual_results), 0) + 1, false)")
    op.drop_table('results_old')


def downgrade():
    op.rename_table('results', 'results_new')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE results_new RENAME CONSTRAINT pk_results TO pk_results_new')
    op.create_table(
        'results',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('import_id', sa.Integer(), nullable=True),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('period_kind', sa.String(length=8), nullable=False),
        sa.Column('period_date', sa.Date(), nullable=False),
        sa.Column('line', sa.Integer(), nullable=True),
        sa.Column('values', sa.JSON(), nullable=False),
        sa.Column('note', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name='fk_results_account_id_accounts', ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['import_id'], ['imports.id'], name='fk_results_import_id_imports', ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['member_id'], ['members.id'], name='fk_results_member_id_members', ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_results'),
    )
    # Hand-typed rows keep their ids; imported rows are numbered after them.
    op.execute(f'INSERT INTO results (id, import_id, line, {COLUMNS}) '
               f'SELECT id, NULL, NULL, {COLUMNS} FROM manual_results ORDER BY id')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("SELECT setval(pg_get_serial_sequence('results', 'id'), "
                   "COALESCE((SELECT MAX(id) FROM results), 0) + 1, false)")
    op.execute(f'INSERT INTO results (import_id, line, {COLUMNS}) '
               f'SELECT import_id, line, {COLUMNS} FROM results_new ORDER BY import_id, line')
    op.drop_table('results_new')
    op.drop_table('manual_results')
    op.create_index('ix_results_account_period', 'results', ['account_id', 'period_date'])
    op.create_index('ix_results_import_id', 'results', ['import_id'])
