-- Case folding for e-mail and username uniqueness, login and the user search:
-- Unicode lower case by ICU's root locale, whatever locale the database was
-- created with (under "C", lower() folds ASCII only). Needs a server built
-- with ICU, as Debian's, the official images and the managed services are.
-- Qualified names: the body does not depend on the caller's search_path.
CREATE FUNCTION parley_fold(text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT pg_catalog.lower($1 COLLATE pg_catalog."und-x-icu") $$;

-- The original app's users, column for column (its sizes kept), in
-- PostgreSQL's types. An identity is a sequence: ids are never reused.
CREATE TABLE users (
    id              BIGINT       GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username        VARCHAR(50)  NOT NULL,
    email           VARCHAR(100) NOT NULL,
    hashed_password VARCHAR(255) NOT NULL,
    full_name       VARCHAR(100) NULL,
    is_active       BOOLEAN      NOT NULL DEFAULT TRUE,
    is_admin        BOOLEAN      NOT NULL DEFAULT FALSE,
    created_at      TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ  NULL
);

-- Unique whatever the letter case. The adapter tells a clash on one from a
-- clash on the other by these names.
CREATE UNIQUE INDEX users_email_unique ON users (parley_fold(email));
CREATE UNIQUE INDEX users_username_unique ON users (parley_fold(username));
