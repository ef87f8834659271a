-- 0001: the legacy schema, exactly as the legacy service shipped it (no `last_reset` column; some
-- copies gained one by hand later, and 0002 handles both shapes).
-- On a fresh database this creates the legacy tables; on a legacy production database they exist
-- already and nothing happens. Either way 0002 onwards upgrade the same starting point, so a fresh
-- install and an in-place upgrade run the same statements and end in the same schema.

CREATE TABLE IF NOT EXISTS users (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  username VARCHAR(50) NOT NULL,
  email VARCHAR(100) NOT NULL,
  created_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
  last_login DATETIME NULL,
  is_active BOOLEAN DEFAULT 1,
  permission_level ENUM('read', 'write', 'admin') DEFAULT 'read'
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS api_keys (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id INT NOT NULL,
  api_key VARCHAR(64) NOT NULL UNIQUE,
  rate_limit INT DEFAULT 100,
  calls_made INT DEFAULT 0,
  is_valid BOOLEAN DEFAULT 1,
  expires_at DATE NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS audit_logs (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  api_key VARCHAR(64) NOT NULL,
  endpoint VARCHAR(255) NOT NULL,
  response_code SMALLINT NOT NULL,
  response_time_ms INT NOT NULL,
  `timestamp` TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
  error_message TEXT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
