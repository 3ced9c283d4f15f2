"""gateway: shadow diffs, and a NOTIFY when the routing table changes

Revision ID: 0012
Revises: 0008
Create Date: 2026-12-06 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One NOTIFY per changing statement: every gateway reloads the (small) table itself. NOTIFY is
# delivered at commit, so a gateway never reloads before the change is visible.
_ROUTES_NOTIFY = (
    """
CREATE FUNCTION vortex_gateway_routes_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vortex_gateway_routes', '');
    RETURN NULL;
END $$
""",
    """
CREATE TRIGGER gateway_routes_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON gateway_routes FOR EACH STATEMENT EXECUTE FUNCTION vortex_gateway_routes_notify()
""",
)


def upgrade() -> None:
    op.create_table(
        "gateway_shadow_diffs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("route_prefix", sa.String(length=200), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("path_template", sa.String(length=300), nullable=False),
        sa.Column("legacy_status", sa.Integer(), nullable=False),
        sa.Column("new_status", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("summary", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_gateway_shadow_diffs_route_prefix"),
        "gateway_shadow_diffs",
        ["route_prefix"],
        unique=False,
    )
    op.create_table(
        "gateway_shadow_counts",
        sa.Column("route_prefix", sa.String(length=200), nullable=False),
        sa.Column("compared", sa.BigInteger(), nullable=False),
        sa.Column("differed", sa.BigInteger(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("route_prefix"),
    )
    for statement in _ROUTES_NOTIFY:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER gateway_routes_notify ON gateway_routes")
    op.execute("DROP FUNCTION vortex_gateway_routes_notify()")
    op.drop_table("gateway_shadow_counts")
    op.drop_index(op.f("ix_gateway_shadow_diffs_route_prefix"), table_name="gateway_shadow_diffs")
    op.drop_table("gateway_shadow_diffs")
