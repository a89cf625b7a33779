"""results without foreign keys: the import that writes a row is the only check it needs

Rows of `results` are written by one path only, the runner's bulk insert, inside the
transaction of their import, with that import's own id and account and a member looked up
among the account's members; nothing deletes accounts, imports or members (members are
deactivated). The three foreign keys only re-checked that, at a cost per row: with them,
deleting a replaced import's 200,000 rows took 0.50 s of CPU instead of 0.17 s on SQLite (and
every insert three more look-ups); on PostgreSQL each row fired their triggers.

SQLite cannot drop a constraint, so the table is rebuilt (WITHOUT ROWID, as 0008 made it) and
its rows copied in key order; PostgreSQL drops the constraints.
"""
import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'

FOREIGN_KEYS = [
    ('fk_results_import_id_imports', 'import_id', 'imports'),
    ('fk_results_account_id_accounts', 'account_id', 'accounts'),
    ('fk_results_member_id_members', 'member_id', 'members'),
]
COLUMNS = 'import_id, line, account_id, member_id, period_kind, period_date, "values", note'


def _rebuild(with_foreign_keys):
    """SQLite: copy results into a new table with or without the foreign keys."""
    op.rename_table('results', 'results_old')
    op.create_table(
        'results',
        sa.Column('import_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('line', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('period_kind', sa.String(length=8), nullable=False),
        sa.Column('period_date', sa.Date(), nullable=False),
        sa.Column('values', sa.JSON(), nullable=False),
        sa.Column('note', sa.Text(), nullable=True),
        *[sa.ForeignKeyConstraint([column], [f'{table}.id'], name=name, ondelete='CASCADE')
          for name, column, table in (FOREIGN_KEYS if with_foreign_keys else [])],
        sa.PrimaryKeyConstraint('import_id', 'line', name='pk_results'),
        sqlite_with_rowid=False,
    )
    op.execute(f'INSERT INTO results ({COLUMNS}) SELECT {COLUMNS} FROM results_old ORDER BY import_id, line')
    op.drop_table('results_old')


def upgrade():
    if op.get_bind().dialect.name == 'sqlite':
        _rebuild(with_foreign_keys=False)
        return
    for name, _column, _table in FOREIGN_KEYS:
        op.drop_constraint(name, 'results', type_='foreignkey')


def downgrade():
    if op.get_bind().dialect.name == 'sqlite':
        _rebuild(with_foreign_keys=True)
        return
    for name, column, table in FOREIGN_KEYS:
        op.create_foreign_key(name, 'results', table, [column], ['id'], ondelete='CASCADE')
