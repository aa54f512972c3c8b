"""Initial schema: tenants, api_keys, users, choices, pools.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.UniqueConstraint("name", name="uq_tenants_name"))
    op.create_table(
        "api_keys",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("tenant_id", BigId, sa.ForeignKey("tenants.id", ondelete="CASCADE",
                                                    name="fk_api_keys_tenant_id_tenants"), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("revoked_at", Stamp, nullable=True),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"))
    op.create_index("ix_api_keys_tenant_id", "api_keys", ["tenant_id"])
    op.create_table(
        "users",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("tenant_id", BigId, sa.ForeignKey("tenants.id", ondelete="CASCADE",
                                                    name="fk_users_tenant_id_tenants"), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("n_choices", sa.Integer, nullable=False),
        sa.Column("next_seq", sa.Integer, nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.UniqueConstraint("tenant_id", "external_id", name="uq_users_tenant_external"))
    op.create_table(
        "choices",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id", ondelete="CASCADE",
                                                  name="fk_choices_user_id_users"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("chosen", sa.Text, nullable=False),
        sa.Column("rejected", sa.Text, nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("undone_at", Stamp, nullable=True),
        sa.UniqueConstraint("user_id", "seq", name="uq_choices_user_seq"),
        sa.UniqueConstraint("user_id", "idempotency_key", name="uq_choices_user_idem"))
    op.create_table(
        "pools",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("tenant_id", BigId, sa.ForeignKey("tenants.id", ondelete="CASCADE",
                                                    name="fk_pools_tenant_id_tenants"), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("questions", sa.JSON, nullable=False),
        sa.Column("candidates", sa.JSON, nullable=True),
        sa.Column("created_at", Stamp, nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_pools_tenant_name"))


def downgrade() -> None:
    for table in ("pools", "choices", "users", "api_keys", "tenants"):
        op.drop_table(table)
