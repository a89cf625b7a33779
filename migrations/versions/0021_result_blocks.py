"""result_blocks instead of results: an import's lines stored 500 at a time, column-wise

One row per line made the database's work grow with lines: a 200,000-line file was 200,000
INSERTs with their JSON text, and replacing it 200,000 deletes. A block holds up to 500
consecutive lines of one import as arrays (app/db/bulk.py has the format: little-endian 8-byte
integers for lines and member ids, 8-byte floats row after row in the order of column_ids with
NaN for an empty cell, the notes as a JSON list or null). The import's period is on the import.

The upgrade packs every import's rows in line order (column_ids: the ids its rows use, in
ascending order); the downgrade unpacks them into results again, the period taken from the import.
"""
import json
import sys
from array import array

import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'

LINES_PER_BLOCK = 500
_SWAP = sys.byteorder == 'big'

BLOCKS = sa.table(
    'result_blocks', sa.column('import_id'), sa.column('block'), sa.column('account_id'),
    sa.column('line_count'), sa.column('column_ids', sa.JSON()), sa.column('lines', sa.LargeBinary()),
    sa.column('member_ids', sa.LargeBinary()), sa.column('numbers', sa.LargeBinary()),
    sa.column('notes', sa.JSON()),
)
RESULTS = sa.table(
    'results', sa.column('import_id'), sa.column('line'), sa.column('account_id'), sa.column('member_id'),
    sa.column('period_kind'), sa.column('period_date'), sa.column('values', sa.JSON()),
    sa.column('note'),
)


def _bytes(typecode, values):
    packed = array(typecode, values)
    if _SWAP:
        packed.byteswap()
    return packed.tobytes()


def _array(typecode, data):
    values = array(typecode)
    values.frombytes(data)
    if _SWAP:
        values.byteswap()
    return values


def _decoded(value):
    """A JSON column's value as this driver gives it back in a plain SELECT."""
    return json.loads(value) if isinstance(value, str) else value


def _create_results():
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
        sa.PrimaryKeyConstraint('import_id', 'line', name='pk_results'),
        sqlite_with_rowid=False,
    )


def upgrade():
    op.create_table(
        'result_blocks',
        sa.Column('import_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('block', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('line_count', sa.Integer(), nullable=False),
        sa.Column('column_ids', sa.JSON(), nullable=False),
        sa.Column('lines', sa.LargeBinary(), nullable=False),
        sa.Column('member_ids', sa.LargeBinary(), nullable=False),
        sa.Column('numbers', sa.LargeBinary(), nullable=False),
        sa.Column('notes', sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint('import_id', 'block', name='pk_result_blocks'),
        sqlite_with_rowid=False,
    )
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        # The arrays are stored as they are: compressing them costs more CPU per import than the
        # disk it saves (a block is about 36 KB), and the size written stays what the lines take.
        op.execute('ALTER TABLE result_blocks ALTER COLUMN lines SET STORAGE EXTERNAL, '
                   'ALTER COLUMN member_ids SET STORAGE EXTERNAL, ALTER COLUMN numbers SET STORAGE EXTERNAL')
    import_ids = bind.execute(sa.text('SELECT DISTINCT import_id FROM results ORDER BY import_id')).scalars().all()
    for import_id in import_ids:
        rows = bind.execute(sa.text('SELECT line, account_id, member_id, "values", note FROM results '
                                    'WHERE import_id = :id ORDER BY line'), {'id': import_id}).all()
        values = [{int(key): float(value) for key, value in (_decoded(row[3]) or {}).items() if value is not None}
                  for row in rows]
        column_ids = sorted({key for row_values in values for key in row_values})
        blocks = []
        for number, start in enumerate(range(0, len(rows), LINES_PER_BLOCK)):
            part = rows[start:start + LINES_PER_BLOCK]
            numbers = [row_values.get(column_id, float('nan'))
                       for row_values in values[start:start + LINES_PER_BLOCK] for column_id in column_ids]
            notes = [row[4] for row in part]
            blocks.append({
                'import_id': import_id, 'block': number, 'account_id': part[0][1], 'line_count': len(part),
                'column_ids': column_ids, 'lines': _bytes('q', [row[0] for row in part]),
                'member_ids': _bytes('q', [row[2] for row in part]), 'numbers': _bytes('d', numbers),
                'notes': notes if any(note is not None for note in notes) else None,
            })
        bind.execute(BLOCKS.insert(), blocks)
    op.drop_table('results')


def downgrade():
    _create_results()
    bind = op.get_bind()
    periods = {row[0]: (row[1], row[2]) for row in bind.execute(sa.text(
        'SELECT id, period_kind, period_date FROM imports WHERE id IN (SELECT import_id FROM result_blocks)'))}
    blocks = bind.execute(sa.select(BLOCKS).order_by(BLOCKS.c.import_id, BLOCKS.c.block)).all()
    for block in blocks:
        lines, member_ids = _array('q', block.lines), _array('q', block.member_ids)
        numbers, column_ids = _array('d', block.numbers), list(_decoded(block.column_ids))
        notes = _decoded(block.notes) or [None] * len(lines)
        kind, date = periods[block.import_id]
        width = len(column_ids)
        rows = []
        for index, (line, member_id, note) in enumerate(zip(lines, member_ids, notes)):
            cells = numbers[index * width:(index + 1) * width]
            rows.append({'import_id': block.import_id, 'line': line, 'account_id': block.account_id,
                         'member_id': member_id, 'period_kind': kind, 'period_date': date, 'note': note,
                         'values': {str(column_id): value for column_id, value in zip(column_ids, cells)
                                    if value == value}})
        bind.execute(RESULTS.insert(), rows)
    op.drop_table('result_blocks')
