"""auth_failures: counters per address, per login name and per (address, login name)

A good login forgives only the failures of its own login name from its own address, and a
login name attacked from many addresses is banned on its own. The counters are transient (a
ban lasts minutes), so the old rows are dropped, not converted.
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'


def upgrade():
    op.drop_table('auth_failures')
    op.create_table('auth_failures',
    sa.Column('scope', sa.String(length=8), nullable=False),
    sa.Column('key', sa.String(length=400), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('window_start', sa.DateTime(), nullable=False),
    sa.Column('banned_until', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('scope', 'key', name=op.f('pk_auth_failures'))
    )


def downgrade():
    op.drop_table('auth_failures')
    op.create_table('auth_failures',
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('window_start', sa.DateTime(), nullable=False),
    sa.Column('banned_until', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('address', name=op.f('pk_auth_failures'))
    )
