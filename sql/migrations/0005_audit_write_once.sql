-- 0005: one audit row per request, however often its write is retried.
-- The audit writer sends a batch again when it did not get the database's answer (a read
-- timeout, a dropped connection), but the database may have committed it already. Each row now
-- carries a unique id made by the service (`audit_uid`), and the writer inserts with
-- INSERT IGNORE: a row that is already there is skipped, never written twice. The id is the
-- service's own, not the client's X-Request-ID, which a client may repeat on distinct requests.
-- Rows written before this migration have no id (NULL; a UNIQUE index admits many NULLs).
-- Resumable: each step runs only while its change is still missing.

-- when: column audit_logs.audit_uid is missing
ALTER TABLE audit_logs ADD COLUMN audit_uid CHAR(32) NULL;

-- when: index audit_logs.uq_audit_logs_audit_uid is missing
ALTER TABLE audit_logs ADD UNIQUE INDEX uq_audit_logs_audit_uid (audit_uid);
