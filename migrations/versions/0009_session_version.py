"""users: session_version, which a signed-in browser's session must carry to stay signed in

Bumped on logout, password change, role change; a copied session cookie then stops working
(docs/spec.md section 7).
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'


def upgrade():
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('session_version', sa.Integer(), nullable=False, server_default='0'))


def downgrade():
    with op.batch_alter_table('users') as batch:
        batch.drop_column('session_version')
