"""HTTP blueprints: `health` (no key, no database for /health) and `api` (keys, quota, audit)."""
