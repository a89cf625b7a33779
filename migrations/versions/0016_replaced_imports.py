"""Replaced imports: imports.replaced_by_id names the later import whose data replaced this one's (置換済)

Set by the runner in the transaction that replaces the data. Existing rows are filled from the
link the replacing import already holds (imports.replaced_import_id), the first such import
where several name one. ix_imports_account_period serves the board's look-ups by period (a
day's daily imports, the month's latest import).
"""
import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'


def upgrade():
    with op.batch_alter_table('imports') as batch:
        batch.add_column(sa.Column('replaced_by_id', sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f('fk_imports_replaced_by_id_imports'), 'imports', ['replaced_by_id'], ['id'],
                                 ondelete='SET NULL')
        batch.create_index('ix_imports_account_period', ['account_id', 'period_date'])
    op.execute(
        "UPDATE imports SET replaced_by_id = "
        "(SELECT MIN(later.id) FROM imports AS later WHERE later.replaced_import_id = imports.id) "
        "WHERE EXISTS (SELECT 1 FROM imports AS later WHERE later.replaced_import_id = imports.id)"
    )


def downgrade():
    with op.batch_alter_table('imports') as batch:
        batch.drop_index('ix_imports_account_period')
        batch.drop_constraint(op.f('fk_imports_replaced_by_id_imports'), type_='foreignkey')
        batch.drop_column('replaced_by_id')
