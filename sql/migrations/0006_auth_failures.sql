-- 0006: failed authentications counted per client address and minute, shared by every worker
-- and instance (service/auth_throttle.py). No address is stored: a row holds an HMAC of the
-- address keyed with a random salt of its minute, and the salt and the rows are deleted once
-- their minute has passed, after which no row can be linked to an address again.
-- Resumable: both statements leave an existing table as it is.

CREATE TABLE IF NOT EXISTS auth_failure_salts (
  window_start DATETIME NOT NULL PRIMARY KEY,
  salt BINARY(16) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS auth_failures (
  client_hash BINARY(32) NOT NULL,
  window_start DATETIME NOT NULL,
  failures INT NOT NULL,
  PRIMARY KEY (client_hash, window_start)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
