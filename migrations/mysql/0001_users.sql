-- The original app's `users` table, column for column (SQLAlchemy named the
-- unique indexes ix_users_username and ix_users_email). On a database the
-- original created, this finds the table and leaves it; 0002 upgrades it.
CREATE TABLE IF NOT EXISTS users (
    id              INT          NOT NULL AUTO_INCREMENT,
    username        VARCHAR(50)  NOT NULL,
    email           VARCHAR(100) NOT NULL,
    hashed_password VARCHAR(255) NOT NULL,
    full_name       VARCHAR(100) NULL,
    is_active       TINYINT(1)   NOT NULL DEFAULT 1,
    is_admin        TINYINT(1)   NOT NULL DEFAULT 0,
    created_at      DATETIME     NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at      DATETIME     NULL,
    PRIMARY KEY (id),
    UNIQUE KEY ix_users_username (username),
    UNIQUE KEY ix_users_email (email)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
