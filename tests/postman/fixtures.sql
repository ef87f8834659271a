-- Fixtures for the Postman collection (collection.json): what it cannot arrange over HTTP.
-- Loaded with the sample data, which fills in the `{{key_hash:...}}` placeholders with the
-- service's KEY_HASH_SECRET (the one function of service/keys.py):
--   flask --app service load-sample-data --extra tests/postman/fixtures.sql
-- scripts/postman does this on a fresh database. Re-applying it to the same database puts every
-- key the collection uses back in its starting state, so the collection can run again the same
-- UTC day (otherwise key_ABC123 is already spent by the previous run's load test).
--
--   key_YST789: user 1, export, 5 a day, spent YESTERDAY (calls_made = 5, last_reset = yesterday):
--               the "Reset after 24 hours" folder expects it to be free again today.
--   key_EXP789: user 2, export, expired yesterday: 401 key_expired.
--   key_RVK789: user 2, export, revoked: 403 key_disabled.
-- UTC_DATE() keeps "yesterday" and "today" on the service's clock (the UTC calendar day).

INSERT INTO api_keys
  (user_id, key_hash, key_prefix, scopes, label, rate_limit, calls_made, is_valid, expires_at,
   last_reset, created_at, revoked_at)
VALUES
  (1, {{key_hash:key_YST789}}, 'key_YS', 'export', 'postman: spent yesterday', 5, 5, 1,
   NULL, UTC_DATE() - INTERVAL 1 DAY, UTC_TIMESTAMP() - INTERVAL 2 DAY, NULL),
  (2, {{key_hash:key_EXP789}}, 'key_EX', 'export', 'postman: expired', 100, 0, 1,
   UTC_DATE() - INTERVAL 1 DAY, NULL, UTC_TIMESTAMP() - INTERVAL 30 DAY, NULL),
  (2, {{key_hash:key_RVK789}}, 'key_RV', 'export', 'postman: revoked', 100, 0, 0,
   NULL, NULL, UTC_TIMESTAMP() - INTERVAL 30 DAY, UTC_TIMESTAMP() - INTERVAL 1 DAY)
ON DUPLICATE KEY UPDATE
  user_id = VALUES(user_id),
  key_prefix = VALUES(key_prefix),
  scopes = VALUES(scopes),
  label = VALUES(label),
  rate_limit = VALUES(rate_limit),
  calls_made = VALUES(calls_made),
  is_valid = VALUES(is_valid),
  expires_at = VALUES(expires_at),
  last_reset = VALUES(last_reset),
  revoked_at = VALUES(revoked_at);

-- The sample keys start the run unspent (the load test needs all five of key_ABC123's calls).
UPDATE api_keys
   SET calls_made = 0, last_reset = NULL
 WHERE key_hash IN ({{key_hash:key_ABC123}}, {{key_hash:key_DEF456}});
