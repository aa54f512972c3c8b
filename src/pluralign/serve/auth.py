"""Tenants and API keys: ``create_key`` prints a key once, ``tenant_for_key`` resolves a bearer.

A key is ``pa_`` + 43 URL-safe characters (256 random bits); only its SHA-256 is stored, so a
leaked database does not leak usable keys. Lookups compare hashes through a unique index.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .db import ApiKey, Tenant, utcnow

KEY_PREFIX = "pa_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def get_or_create_tenant(session: Session, name: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        tenant = Tenant(name=name)
        session.add(tenant)
        session.flush()
    return tenant


def create_key(engine: Engine, tenant_name: str) -> str:
    """A new API key for ``tenant_name`` (the tenant is created when new). Returns the key: it
    is stored only as a hash, so this is the one time it can be seen."""
    if not tenant_name or len(tenant_name) > 128:
        raise ValueError(f"tenant name must be 1-128 characters, got {tenant_name!r}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    for _attempt in range(2):  # a concurrent creator of the same tenant: retry once, then it exists
        try:
            with Session(engine.execution_options(write=True)) as session, session.begin():
                tenant = get_or_create_tenant(session, tenant_name)
                session.add(ApiKey(tenant_id=tenant.id, key_hash=hash_key(key), prefix=key[:10]))
            return key
        except IntegrityError:
            continue
    raise RuntimeError(f"could not create a key for tenant {tenant_name!r}")


def revoke_key(engine: Engine, key: str) -> bool:
    """Mark ``key`` revoked; False when no such live key exists."""
    with Session(engine.execution_options(write=True)) as session, session.begin():
        row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None)))
        if row is None:
            return False
        row.revoked_at = utcnow()
        return True


def tenant_for_key(session: Session, key: str) -> Tenant | None:
    """The tenant a live key belongs to, or None."""
    return session.scalar(select(Tenant).join(ApiKey, ApiKey.tenant_id == Tenant.id)
                          .where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None)))
