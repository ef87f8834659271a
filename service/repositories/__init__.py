"""Raw-SQL repositories: plain functions over a cursor, named parameters, no string-built SQL.

The caller owns the transaction: no function here commits. Rows come back as dicts.
"""

from datetime import UTC, datetime


def naive_utc(moment: datetime | None) -> datetime | None:
    """DATETIME columns hold UTC without a zone; PyMySQL would drop an offset silently."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)
