-- A table the original app created may use the server's default character
-- set (latin1 on older servers): convert it in place to utf8mb4 with a
-- case-insensitive collation, so names in any script fit and e-mail and
-- username uniqueness ignores case, as Parley's rules say. A no-op rebuild
-- on a table 0001 created.
ALTER TABLE users CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
