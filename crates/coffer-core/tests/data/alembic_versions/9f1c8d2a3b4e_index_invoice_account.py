"""index invoice.account_id

Revision ID: 9f1c8d2a3b4e
Revises: 53fffde5ad5
Create Date: 2024-09-12 08:30:45.001122

"""
from typing import Sequence, Union

from alembic import op


# revision identifiers, used by Alembic.
revision: str = "9f1c8d2a3b4e"
down_revision: Union[str, Sequence[str], None] = [
    "53fffde5ad5",
]
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index("ix_invoice_account_id", "invoice", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_invoice_account_id", table_name="invoice")
