-- 0003: the exported data. URLs compare byte-for-byte (Wikipedia titles are case-sensitive), and
-- the export pages by id, newest first, so ids never move under a reader's cursor.

CREATE TABLE IF NOT EXISTS articles (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  title VARCHAR(300) NOT NULL,
  url VARCHAR(700) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  language VARCHAR(20) NOT NULL,
  summary TEXT NOT NULL,
  updated_at DATETIME NOT NULL,
  UNIQUE KEY uq_articles_url (url),
  KEY idx_articles_updated_at (updated_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
