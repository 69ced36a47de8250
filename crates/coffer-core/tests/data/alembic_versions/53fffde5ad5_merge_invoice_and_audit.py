"""merge invoice and audit

Revision ID: 53fffde5ad5
Revises: 27c6a30d7c24, 3cac04ae8714
Create Date: 2024-06-01 10:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '53fffde5ad5'
down_revision: Union[str, None] = ('27c6a30d7c24', '3cac04ae8714')
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
