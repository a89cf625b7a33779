"""import_files: the original bytes of imports in pieces of their own table; imports.file_deleted_at

The bytes leave the `imports` row (imports.content), so no query of the history reads them
and no UPDATE of an import rewrites them. A file is rows (import_id, seq) of at most 1 MiB;
an import whose bytes are kept has a piece 0. file_deleted_at records when the retention job
(RENKEI_KEEP_FILES_DAYS) deleted an original.

The bytes are moved with portable SQL (substr and length work on BLOB and bytea alike), one
statement per piece index; the downgrade joins the pieces again, one import at a time.
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'

CHUNK = 1024 * 1024  # services/files.CHUNK_SIZE when this was written (readers accept any piece size)


def upgrade():
    op.create_table(
        'import_files',
        sa.Column('import_id', sa.Integer(), nullable=False),
        sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['import_id'], ['imports.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('import_id', 'seq'),
    )
    bind = op.get_bind()
    largest = bind.execute(sa.text('SELECT MAX(length(content)) FROM imports WHERE content IS NOT NULL')).scalar()
    if largest is not None:
        # Piece 0 for every kept file (an empty one too), then piece k wherever the file is longer.
        for seq in range(max(1, -(-largest // CHUNK))):
            bind.execute(sa.text(
                'INSERT INTO import_files (import_id, seq, data) '
                # (SQLite's substr of an empty BLOB is NULL: an empty file is kept as itself.)
                'SELECT id, :seq, CASE WHEN length(content) = 0 THEN content '
                'ELSE substr(content, :start, :size) END FROM imports '
                'WHERE content IS NOT NULL AND (:seq = 0 OR length(content) > :offset)'
            ), {'seq': seq, 'start': seq * CHUNK + 1, 'size': CHUNK, 'offset': seq * CHUNK})
    with op.batch_alter_table('imports') as batch:
        batch.add_column(sa.Column('file_deleted_at', sa.DateTime(), nullable=True))
        batch.drop_column('content')


def downgrade():
    with op.batch_alter_table('imports') as batch:
        batch.add_column(sa.Column('content', sa.LargeBinary(), nullable=True))
        batch.drop_column('file_deleted_at')
    bind = op.get_bind()
    ids = bind.execute(sa.text('SELECT DISTINCT import_id FROM import_files ORDER BY import_id')).scalars().all()
    for import_id in ids:
        pieces = bind.execute(sa.text('SELECT data FROM import_files WHERE import_id = :id ORDER BY seq'),
                              {'id': import_id}).scalars().all()
        bind.execute(sa.text('UPDATE imports SET content = :data WHERE id = :id'),
                     {'data': b''.join(pieces), 'id': import_id})
    op.drop_table('import_files')
