-- Least-privilege database accounts (TICKET-002). Valid on MariaDB 10.11 and MySQL 8.0.
--
-- Run it as root against the application database, AFTER `flask --app service migrate` (every
-- table and the view must exist). The grants name tables without a database, so they apply to
-- the database the client selects:
--   mysql -u root wikimedia_prod < sql/roles.sql
-- The file holds no password: both accounts are created locked. Then the operator, once:
--   ALTER USER 'wme_service'@'%' IDENTIFIED BY '...' ACCOUNT UNLOCK;
--   ALTER USER 'wme_auditor'@'%' IDENTIFIED BY '...' ACCOUNT UNLOCK;
--   ALTER USER 'wme_retention'@'%' IDENTIFIED BY '...' ACCOUNT UNLOCK;
-- and gives the service DB_USER=wme_service and DB_PASS, and the daily purge cron
-- (`flask --app service purge-audit-logs`) DB_USER=wme_retention and its own DB_PASS. Narrow '%' to the service's hosts if you
-- can (then change the account name in this file too).
-- MySQL 8.0 with the validate_password component refuses to create an account without a
-- password, even a locked one: there, create both first with
--   CREATE USER 'wme_service'@'%' IDENTIFIED BY '...' ACCOUNT LOCK;
-- and the CREATE USER IF NOT EXISTS below leaves them as they are.
--
-- Re-runnable: CREATE USER IF NOT EXISTS leaves an existing account (its password and its lock
-- state) alone, and granting a privilege the account holds already changes nothing. Grants only
-- ever add: a privilege taken out of this file must be revoked by hand (or DROP USER, re-run this
-- file, set the password again).
--
-- Not granted on purpose:
-- * Any DDL (CREATE, ALTER, DROP, INDEX, ...): migrations run as the operator's own account.
-- * Any SELECT, UPDATE or DELETE on audit_logs for the service: it only ever appends rows (its
--   INSERT IGNORE needs nothing more) and reads them back through the view masked_audit_logs
--   (SQL SECURITY DEFINER). Whoever holds the service's password cannot erase the trail.
-- * The purge is its own account, wme_retention: DELETE on audit_logs and SELECT on the two
--   columns its WHERE and ORDER BY read (`id`, `timestamp`), nothing else anywhere.
-- Upgrading from an earlier roles.sql, which let the service purge, revoke that by hand once:
--   REVOKE DELETE, SELECT (id, `timestamp`) ON audit_logs FROM 'wme_service'@'%';
-- * INSERT on api_keys, UPDATE of anything but the quota columns, any column of users but
--   id and is_active: `flask --app service keys create|revoke` are operator commands and run
--   with the operator's account, not the service's.

CREATE USER IF NOT EXISTS 'wme_service'@'%' ACCOUNT LOCK;
CREATE USER IF NOT EXISTS 'wme_auditor'@'%' ACCOUNT LOCK;
CREATE USER IF NOT EXISTS 'wme_retention'@'%' ACCOUNT LOCK;

-- Authentication (lookup by key_hash, joined to users) and the atomic quota UPDATE, which reads
-- last_reset, calls_made and rate_limit and writes calls_made and last_reset. key_hash is written
-- only during a KEY_HASH_SECRET rotation, when a key found under the previous secret is rehashed.
GRANT SELECT ON api_keys TO 'wme_service'@'%';
GRANT UPDATE (calls_made, last_reset, key_hash) ON api_keys TO 'wme_service'@'%';
GRANT SELECT (id, is_active) ON users TO 'wme_service'@'%';

-- Export pages, and the import upsert (INSERT ... ON DUPLICATE KEY UPDATE needs both).
GRANT SELECT, INSERT, UPDATE ON articles TO 'wme_service'@'%';

-- The audit trail: append rows; read them back only masked.
GRANT INSERT ON audit_logs TO 'wme_service'@'%';
GRANT SELECT ON masked_audit_logs TO 'wme_service'@'%';

-- Failed authentications per client address and minute (service/auth_throttle.py): count, read
-- the minute's salt, purge past minutes.
GRANT SELECT, INSERT, UPDATE, DELETE ON auth_failures TO 'wme_service'@'%';
GRANT SELECT, INSERT, DELETE ON auth_failure_salts TO 'wme_service'@'%';

-- /ready compares the applied schema version with the code's.
GRANT SELECT ON schema_migrations TO 'wme_service'@'%';

-- The purge by age (purge-audit-logs, daily from cron), and nothing else.
GRANT SELECT (id, `timestamp`), DELETE ON audit_logs TO 'wme_retention'@'%';

-- The auditor reads the masked view and nothing else.
GRANT SELECT ON masked_audit_logs TO 'wme_auditor'@'%';
