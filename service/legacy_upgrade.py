"""The compatibility policy of the in-place upgrade from the legacy service, and its plan.

Release-day promise (docs/email.md): every client that works the day before keeps working.
The legacy service let every key read /api/audit, required a `write` or `admin` user for export
and import, and never enforced `expires_at`. So:

* Scopes keep what legacy allowed, plus export for `read` users (the legacy 403 there was a
  defect: the brief's monitor exports with a `read` user's key). Every key gets `audit` (it now
  shows only the rows of the key's own user; an admin key sees every row).
* A key past its `expires_at` that is still valid worked yesterday: it gets a grace period
  (`--expired-grace-days`, default 30 days from the upgrade day) before expiry is enforced, or none
  with `--enforce-expiry-now`. Its label records the original date.
* Daily limits carry over; every counter starts afresh (the stuck counters of TICKET-001).
* Keys with less than 128 bits beyond their 6 displayed characters are flagged `weak` for rotation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from service.clock import utc_now
from service.keys import SAMPLE_KEY_HASH_SECRET, hash_key, is_weak, key_prefix
from service.repositories import information_schema as schema

DEFAULT_GRACE_DAYS = 30
LEGACY_SCOPES = {
    "read": ("audit", "export"),
    "write": ("audit", "export", "import"),
    "admin": ("admin", "audit", "export", "import"),
}


class UpgradeRefused(RuntimeError):
    """The upgrade cannot hash legacy keys as configured (no secret, or the public sample one)."""


@dataclass(frozen=True)
class Context:
    secret: str = ""
    grace_days: int = DEFAULT_GRACE_DAYS
    today: date = field(default_factory=lambda: utc_now().date())


@dataclass(frozen=True)
class KeyPlan:
    id: int
    prefix: str
    owner: str
    level: str
    scopes: tuple[str, ...]
    limit: int
    expires_at: date | None
    new_expires_at: date | None
    expiry: str
    status: str
    weak: bool

    @property
    def graced(self) -> bool:
        return self.new_expires_at != self.expires_at


@dataclass
class Plan:
    pending: list[str]
    keys: list[KeyPlan] = field(default_factory=list)
    audit_rows_scrubbed: int = 0
    error_texts_with_keys: int = 0
    counters_freed: int = 0
    legacy: bool = False

    def lines(self) -> list[str]:
        if not self.pending:
            return ["nothing to migrate: the schema is current"]
        out = [f"pending migrations: {', '.join(self.pending)}"]
        if self.legacy:
            out.append(f"legacy keys ({len(self.keys)}), as the upgrade leaves them:")
            out.append(
                f"{'id':>4}  {'prefix':<6}  {'owner':<16} {'level':<6} {'new scopes':<26} "
                f"{'limit':>7}  {'status':<14} {'weak':<4}  expiry"
            )
            for k in self.keys:
                out.append(
                    f"{k.id:>4}  {k.prefix:<6}  {k.owner[:16]:<16} {k.level:<6} "
                    f"{','.join(k.scopes):<26} {k.limit:>7}  {k.status:<14} "
                    f"{'yes' if k.weak else 'no':<4}  {k.expiry}"
                )
        weak = sum(k.weak for k in self.keys)
        graced = sum(k.graced for k in self.keys)
        out.append(
            f"totals: {len(self.keys)} legacy key(s), {weak} weak (rotate them: "
            f"flask --app service keys rotate ID --overlap-days 7), {graced} given an expiry "
            f"grace period, {self.audit_rows_scrubbed} audit row(s) scrubbed to the key prefix "
            f"({self.error_texts_with_keys} error text(s) held a key), "
            f"{self.counters_freed} counter(s) freed"
        )
        return out


def scopes_for(level: str | None) -> tuple[str, ...]:
    return LEGACY_SCOPES.get(level or "read", LEGACY_SCOPES["read"])


def decide_expiry(
    expires_at: date | None, valid: bool, context: Context
) -> tuple[date | None, str]:
    """(the expiry the key gets, what happens to it in words)."""
    if expires_at is None:
        return None, "never expires (kept)"
    if not valid or expires_at >= context.today:
        return expires_at, f"{expires_at.isoformat()} (kept)"
    if context.grace_days <= 0:
        return expires_at, f"{expires_at.isoformat()} passed: refused from now on (401)"
    until = context.today + timedelta(days=context.grace_days)
    return until, (
        f"{expires_at.isoformat()} passed (legacy ignored it): grace until {until.isoformat()}, "
        "then 401 key_expired"
    )


def _status(valid, user_active) -> str:
    if not valid:
        return "disabled"
    if user_active == 0:
        return "owner inactive"
    return "active"


# Read before the upgrade touches anything (the plan), so only legacy columns.
LEGACY_KEYS = """
SELECT k.id, k.api_key, k.rate_limit, k.calls_made, k.is_valid, k.expires_at,
       u.username, u.permission_level, u.is_active AS user_active
  FROM api_keys k LEFT JOIN users u ON u.id = k.user_id
 ORDER BY k.id
"""

# Read by the step, once 0002 has added the new columns.
KEYS_TO_UPGRADE = """
SELECT k.id, k.api_key, k.is_valid, k.expires_at, k.label, u.permission_level
  FROM api_keys k LEFT JOIN users u ON u.id = k.user_id
 ORDER BY k.id
"""

UPDATE_LEGACY_KEY = """
UPDATE api_keys
   SET key_hash = %(key_hash)s, key_prefix = %(key_prefix)s, scopes = %(scopes)s,
       weak = %(weak)s, expires_at = %(expires_at)s, label = %(label)s
 WHERE id = %(id)s
"""

AUDIT_ROWS = "SELECT COUNT(*) AS n FROM audit_logs"
# Error texts that hold their row's key, another known key, or something shaped like one.
AUDIT_TEXTS_WITH_KEYS = """
SELECT COUNT(*) AS n FROM audit_logs a
 WHERE a.error_message IS NOT NULL
   AND (INSTR(a.error_message, a.api_key) > 0
        OR a.error_message REGEXP 'key_[[:alnum:]]{3}'
        OR EXISTS (SELECT 1 FROM api_keys k WHERE INSTR(a.error_message, k.api_key) > 0))
"""
COUNTERS_IN_USE = "SELECT COUNT(*) AS n FROM api_keys WHERE calls_made > 0"


def apply_legacy_keys(cur, context: Context) -> None:
    """The `legacy_keys` step of 0002: runs while api_keys still holds the plain keys."""
    cur.execute(KEYS_TO_UPGRADE)
    rows = cur.fetchall()
    if rows and not context.secret:
        raise UpgradeRefused("KEY_HASH_SECRET is not set: the legacy keys cannot be hashed")
    if rows and context.secret == SAMPLE_KEY_HASH_SECRET:
        raise UpgradeRefused(
            "KEY_HASH_SECRET is the public sample secret: set a secret of your own before "
            "hashing real keys"
        )
    updates = []
    for row in rows:
        expires_at, _ = decide_expiry(row["expires_at"], bool(row["is_valid"]), context)
        label = row["label"]
        if expires_at != row["expires_at"] and label is None:
            label = f"legacy key: expired {row['expires_at'].isoformat()}, grace to {expires_at}"
        updates.append(
            {
                "id": row["id"],
                "key_hash": hash_key(row["api_key"], context.secret),
                "key_prefix": key_prefix(row["api_key"]),
                "scopes": ",".join(scopes_for(row["permission_level"])),
                "weak": is_weak(row["api_key"]),
                "expires_at": expires_at,
                "label": label,
            }
        )
    if updates:
        # One transaction (the runner commits): all keys hashed, or none.
        cur.execute("START TRANSACTION")
        cur.executemany(UPDATE_LEGACY_KEY, updates)


def build_plan(cur, context: Context, pending: list[str]) -> Plan:
    """Read-only. Works from any state: untouched legacy, half-migrated, or current."""
    plan = Plan(pending=pending)
    if not pending or not schema.has_table(cur, "api_keys"):
        return plan
    plan.legacy = schema.has_column(cur, "api_keys", "api_key")
    if plan.legacy:
        cur.execute(LEGACY_KEYS)
        for row in cur.fetchall():
            valid = bool(row["is_valid"]) if row["is_valid"] is not None else False
            new_expiry, expiry = decide_expiry(row["expires_at"], valid, context)
            plan.keys.append(
                KeyPlan(
                    id=row["id"],
                    prefix=key_prefix(row["api_key"]),
                    owner=row["username"] or "(no user)",
                    level=row["permission_level"] or "read",
                    scopes=scopes_for(row["permission_level"]),
                    limit=100 if row["rate_limit"] is None else row["rate_limit"],
                    expires_at=row["expires_at"],
                    new_expires_at=new_expiry,
                    expiry=expiry,
                    status=_status(valid, row["user_active"]),
                    weak=is_weak(row["api_key"]),
                )
            )
    if schema.has_column(cur, "audit_logs", "api_key"):
        cur.execute(AUDIT_ROWS)
        plan.audit_rows_scrubbed = cur.fetchone()["n"]
        if plan.legacy:
            cur.execute(AUDIT_TEXTS_WITH_KEYS)
            plan.error_texts_with_keys = cur.fetchone()["n"]
    last_reset = schema.column(cur, "api_keys", "last_reset")
    if last_reset is None or last_reset["data_type"] != "date":
        cur.execute(COUNTERS_IN_USE)
        plan.counters_freed = cur.fetchone()["n"]
    return plan
