//! Which storage `DATABASE_URL` names, and opening it: users and (without
//! Elasticsearch) the chat log live in the same database.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use parley_memory::{MemoryChatLog, MemoryUserStore};
use parley_ports::{ChatLog, UserStore};
use parley_sqlite::SqliteDatabase;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// `memory://`: forgotten on exit.
    Memory,
    /// A SQLite file (the default: `parley.db` in the data directory).
    SqliteFile(PathBuf),
    /// `sqlite::memory:`.
    SqliteMemory,
    /// A MySQL or MariaDB server, as a `mysql://` URL.
    Mysql(String),
    /// A PostgreSQL server, as a `postgres://` URL.
    Postgres(String),
}

impl Storage {
    /// Reads `DATABASE_URL` (or its absence).
    pub fn from_url(url: Option<&str>, data_dir: &Path) -> anyhow::Result<Self> {
        let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(Storage::SqliteFile(data_dir.join("parley.db")));
        };
        if url == "sqlite::memory:" || url == "sqlite://:memory:" {
            return Ok(Storage::SqliteMemory);
        }
        let Some((scheme, rest)) = url.split_once(':') else {
            bail!("DATABASE_URL: {url:?} is not a URL (expected e.g. mysql://user:password@host/db or sqlite://path)");
        };
        let after_slashes = rest.strip_prefix("//");
        match (scheme.to_ascii_lowercase().as_str(), after_slashes) {
            ("memory", _) => Ok(Storage::Memory),
            ("sqlite", Some(path)) if !path.is_empty() => Ok(Storage::SqliteFile(PathBuf::from(path))),
            ("sqlite", None) if !rest.is_empty() => Ok(Storage::SqliteFile(PathBuf::from(rest))),
            ("mysql" | "mariadb" | "mysql+mysqlconnector" | "mysql+pymysql" | "mysql+mysqldb", Some(location))
                if !location.is_empty() =>
            {
                Ok(Storage::Mysql(format!("mysql://{location}")))
            }
            ("postgres" | "postgresql", Some(location)) if !location.is_empty() => {
                Ok(Storage::Postgres(format!("postgres://{location}")))
            }
            (scheme, _) => bail!(
                "DATABASE_URL: unsupported or malformed URL with scheme {scheme:?}; use mysql://, mariadb://, \
                 mysql+mysqlconnector://, postgres://, postgresql://, sqlite://PATH, sqlite::memory: or memory://"
            ),
        }
    }

    /// Opens it: the user store and the database's own chat log.
    pub async fn open(&self, startup_deadline: Duration) -> anyhow::Result<(Arc<dyn UserStore>, Arc<dyn ChatLog>)> {
        match self {
            Storage::Memory => Ok((Arc::new(MemoryUserStore::default()), Arc::new(MemoryChatLog::default()))),
            Storage::SqliteMemory => {
                let database =
                    SqliteDatabase::open_in_memory().await.context("DATABASE_URL: opening SQLite in memory")?;
                Ok((Arc::new(database.users()), Arc::new(database.chat_log())))
            }
            Storage::SqliteFile(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating the data directory {}", dir.display()))?;
                }
                let database = SqliteDatabase::open_file(path)
                    .await
                    .with_context(|| format!("opening the SQLite database {}", path.display()))?;
                Ok((Arc::new(database.users()), Arc::new(database.chat_log())))
            }
            Storage::Mysql(url) => {
                let database = parley_mysql::MysqlDatabase::connect(url, startup_deadline)
                    .await
                    .context("DATABASE_URL: connecting to MySQL")?;
                Ok((Arc::new(database.users()), Arc::new(database.chat_log())))
            }
            Storage::Postgres(url) => {
                let database = parley_postgres::PostgresDatabase::connect(url, startup_deadline)
                    .await
                    .context("DATABASE_URL: connecting to PostgreSQL")?;
                Ok((Arc::new(database.users()), Arc::new(database.chat_log())))
            }
        }
    }

    /// How the storage is named in logs: never with its password.
    pub fn describe(&self) -> String {
        match self {
            Storage::Memory => "memory (forgotten on exit)".to_owned(),
            Storage::SqliteMemory => "SQLite in memory (forgotten on exit)".to_owned(),
            Storage::SqliteFile(path) => format!("SQLite at {}", path.display()),
            Storage::Mysql(url) => {
                let host = url.trim_start_matches("mysql://").rsplit('@').next().unwrap_or_default();
                format!("MySQL at {host}")
            }
            Storage::Postgres(url) => {
                // Parameters (`?sslmode=…`) may carry a password too.
                let location = url.trim_start_matches("postgres://").split('?').next().unwrap_or_default();
                let host = location.rsplit('@').next().unwrap_or_default();
                format!("PostgreSQL at {host}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: Option<&str>) -> anyhow::Result<Storage> {
        Storage::from_url(url, Path::new("/data"))
    }

    #[test]
    fn no_url_means_sqlite_in_the_data_directory() {
        assert_eq!(parse(None).unwrap(), Storage::SqliteFile(PathBuf::from("/data/parley.db")));
        assert_eq!(parse(Some("")).unwrap(), Storage::SqliteFile(PathBuf::from("/data/parley.db")));
    }

    #[test]
    fn the_originals_sqlalchemy_schemes_are_read_as_mysql() {
        for url in [
            "mysql://root:pw@localhost/app",
            "mariadb://root:pw@localhost/app",
            "mysql+mysqlconnector://root:pw@localhost/app",
            "mysql+pymysql://root:pw@localhost/app",
        ] {
            assert_eq!(parse(Some(url)).unwrap(), Storage::Mysql("mysql://root:pw@localhost/app".into()), "{url}");
        }
    }

    #[test]
    fn postgres_and_postgresql_urls_are_read_as_postgres() {
        for url in ["postgres://ann:pw@localhost:5432/app", "postgresql://ann:pw@localhost:5432/app"] {
            assert_eq!(
                parse(Some(url)).unwrap(),
                Storage::Postgres("postgres://ann:pw@localhost:5432/app".into()),
                "{url}"
            );
        }
        assert_eq!(
            parse(Some("PostgreSQL://db/app?sslmode=require")).unwrap(),
            Storage::Postgres("postgres://db/app?sslmode=require".into())
        );
    }

    #[test]
    fn sqlite_and_memory_urls() {
        assert_eq!(parse(Some("sqlite::memory:")).unwrap(), Storage::SqliteMemory);
        assert_eq!(
            parse(Some("sqlite:///var/lib/parley.db")).unwrap(),
            Storage::SqliteFile(PathBuf::from("/var/lib/parley.db"))
        );
        assert_eq!(parse(Some("sqlite://chat.db")).unwrap(), Storage::SqliteFile(PathBuf::from("chat.db")));
        assert_eq!(parse(Some("memory://")).unwrap(), Storage::Memory);
    }

    #[test]
    fn unknown_or_malformed_urls_are_refused_naming_the_variable() {
        for url in ["oracle://localhost/db", "not a url", "mysql://", "postgres://", "postgresql:db", "sqlite://"] {
            let error = parse(Some(url)).unwrap_err().to_string();
            assert!(error.starts_with("DATABASE_URL"), "{url}: {error}");
        }
    }

    #[test]
    fn descriptions_never_show_the_password() {
        let described = Storage::Mysql("mysql://root:secret@db:3306/app".into()).describe();
        assert_eq!(described, "MySQL at db:3306/app");
        let described =
            Storage::Postgres("postgres://ann:s3cr@t@db:5432/app?sslmode=require&password=other".into()).describe();
        assert_eq!(described, "PostgreSQL at db:5432/app");
    }
}
