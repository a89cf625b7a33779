"""import_totals and month_totals: sums kept next to the results, filled from the stored rows

The board and the month API summed every row of the month in Python (4.8 s for 600,000
rows). Imports now write their sums per member and column in the same transaction as their
rows, and a month's sums per member and column are kept up to date by imports, replaced
imports and hand-typed results (app/services/totals.py). This migration fills both tables
from the results already stored, in SQL (JSON functions differ: json_each on SQLite,
json_each on a json cast plus json_typeof on PostgreSQL).
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'


def _sums(dialect, where, group_first):
    """SELECT <group_first>, member_id, column_id, total, line_count over the results matching `where`.

    Column id 0 holds the member's line count."""
    if dialect == 'postgresql':
        cells = ("FROM results r CROSS JOIN LATERAL json_each(r.\"values\"::json) j "
                 "WHERE json_typeof(j.value) = 'number' AND ")
        value = "(j.value #>> '{}')::float8"
    else:
        cells = "FROM results r, json_each(r.\"values\") j WHERE j.type IN ('integer', 'real') AND "
        value = "j.value"
    key = "CAST(j.key AS INTEGER)"
    return (
        f"SELECT {group_first}, r.member_id, {key}, SUM({value}), COUNT(*) {cells}{where} "
        f"GROUP BY {group_first}, r.member_id, {key} "
        f"UNION ALL SELECT {group_first}, r.member_id, 0, 0, COUNT(*) FROM results r WHERE {where} "
        f"GROUP BY {group_first}, r.member_id"
    )


def upgrade():
    op.create_table(
        'import_totals',
        sa.Column('import_id', sa.Integer(), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('column_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('total', sa.Double(), nullable=False),
        sa.Column('line_count', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['import_id'], ['imports.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['member_id'], ['members.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('import_id', 'member_id', 'column_id'),
    )
    op.create_table(
        'month_totals',
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('period_month', sa.Date(), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('column_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('total', sa.Double(), nullable=False),
        sa.Column('line_count', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['member_id'], ['members.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('account_id', 'period_month', 'member_id', 'column_id'),
    )
    dialect = op.get_bind().dialect.name
    op.execute(
        "INSERT INTO import_totals (import_id, member_id, column_id, total, line_count) "
        + _sums(dialect, "r.import_id IS NOT NULL", "r.import_id")
    )
    if dialect == 'postgresql':
        month = "CAST(date_trunc('month', {}) AS DATE)"
    else:
        month = "date({}, 'start of month')"
    # Imports' sums per month, plus the hand-typed results (import_id NULL), added up.
    op.execute(
        "INSERT INTO month_totals (account_id, period_month, member_id, column_id, total, line_count) "
        "SELECT account_id, period_month, member_id, column_id, SUM(total), SUM(line_count) FROM ("
        f"SELECT i.account_id AS account_id, {month.format('i.period_date')} AS period_month, "
        "t.member_id AS member_id, t.column_id AS column_id, t.total AS total, t.line_count AS line_count "
        "FROM import_totals t JOIN imports i ON i.id = t.import_id "
        "UNION ALL SELECT * FROM ("
        + _sums(dialect, "r.import_id IS NULL", f"r.account_id, {month.format('r.period_date')}")
        + ") AS manual) AS sums GROUP BY account_id, period_month, member_id, column_id"
    )


def downgrade():
    op.drop_table('month_totals')
    op.drop_table('import_totals')
