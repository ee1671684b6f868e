use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use saphan_core::{Problem, ProblemKind, Text};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A pool of connections to the platform database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// The SQLite file, when the database is one (not in memory).
    sqlite_file: Option<Arc<PathBuf>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database_url `{0}` is not understood; use sqlite://path/to/file.db or postgres://user@host:5432/db")]
    BadUrl(String),
    #[error("cannot reach the database at {url}: {source}; check that it runs and that database_url is right")]
    Unreachable {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create the directory {path} for the SQLite database: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the database schema is newer than this build of saphan knows (unknown migration `{0}`); run a newer saphan")]
    SchemaTooNew(String),
    #[error("the database has migrations this build does not ({0} pending); run `saphan migrate`")]
    SchemaBehind(usize),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl StoreError {
    pub fn problem(&self) -> Problem {
        Problem::new(
            ProblemKind::Unavailable,
            "database-unavailable",
            Text::new(
                "ฐานข้อมูลไม่พร้อมใช้งาน โปรดลองใหม่ภายหลัง",
                "The database is not available; try again later",
            ),
        )
    }
}

/// Hides the password in a database URL (userinfo or `password=` parameter) before it reaches a
/// message.
pub(crate) fn redact_url(url: &str) -> String {
    let (url, query) = match url.split_once('?') {
        Some((base, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => pair.to_string(),
                })
                .collect();
            (base, format!("?{}", query.join("&")))
        }
        None => (url, String::new()),
    };
    let base = match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    };
    base + &query
}

impl Db {
    /// Connects, creating the SQLite file (and its directory) if needed.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        connect_timeout: Duration,
    ) -> Result<Db, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::BadUrl(redact_url(url)));
        };
        let (url, sqlite_file) = match backend {
            Backend::Sqlite => sqlite_url_creating_dir(url)?,
            Backend::Postgres => (url.to_string(), None),
        };
        let options: AnyConnectOptions = url
            .parse()
            .map_err(|_| StoreError::BadUrl(redact_url(&url)))?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(connect_timeout)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(SQLITE_PRAGMAS).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Unreachable {
                url: redact_url(&url),
                source,
            })?;
        Ok(Db {
            pool,
            backend,
            sqlite_file: sqlite_file.map(Arc::new),
        })
    }

    /// A blocking connection of its own to the SQLite file behind this pool, set up as the
    /// pool's are: for a component that writes from a thread of its own, off the pool's
    /// per-statement thread hops (the audit log's group commit, which every exchange call
    /// waits for). `None` for PostgreSQL and in-memory SQLite.
    pub fn own_sqlite_connection(&self) -> Option<Result<rusqlite::Connection, StoreError>> {
        let path = self.sqlite_file.as_ref()?;
        Some((|| {
            let conn = rusqlite::Connection::open(path.as_path())?;
            conn.execute_batch(SQLITE_PRAGMAS)?;
            Ok(conn)
        })())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// True when a trivial query succeeds: what `/readyz` asks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// WAL + FULL sync: a commit is durable when it returns, and readers never block the writer.
/// busy_timeout lets writers queue, not fail.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                              PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;";

/// `sqlite://./dir/file.db` → ensures `./dir` exists and asks SQLite to create the file.
/// Returns the URL for sqlx and the file (none in memory).
fn sqlite_url_creating_dir(url: &str) -> Result<(String, Option<PathBuf>), StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| StoreError::BadUrl(url.into()))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(StoreError::BadUrl(url.into()));
    }
    if path != ":memory:" {
        if let Some(dir) = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
    }
    let mut query = query.to_string();
    if !query.contains("mode=") {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str("mode=rwc");
    }
    // Only a plain file path: sqlx decodes `%XX` and honours options (vfs, immutable, a
    // read-only mode) that a second connection opened on the raw path would not.
    let plain = path != ":memory:" && !path.contains('%') && query == "mode=rwc";
    let file = plain.then(|| PathBuf::from(path));
    Ok((format!("sqlite://{path}?{query}"), file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db.example:5432/saphan"),
            "postgres://app:***@db.example:5432/saphan"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(
            redact_url("postgres://db/saphan?user=app&password=s3cret&sslmode=require"),
            "postgres://db/saphan?user=app&password=***&sslmode=require"
        );
    }

    #[test]
    fn sqlite_urls_get_create_mode() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/sub/x.db", dir.path().display());
        let (fixed, file) = sqlite_url_creating_dir(&url).unwrap();
        assert!(fixed.ends_with("/sub/x.db?mode=rwc"));
        assert!(dir.path().join("sub").is_dir());
        assert_eq!(file, Some(dir.path().join("sub/x.db")));
        let (_, file) = sqlite_url_creating_dir("sqlite::memory:").unwrap();
        assert_eq!(file, None);
        let url = format!("sqlite://{}/x.db?mode=ro", dir.path().display());
        assert_eq!(sqlite_url_creating_dir(&url).unwrap().1, None);
        let url = format!("sqlite://{}/a%20b.db", dir.path().display());
        assert_eq!(sqlite_url_creating_dir(&url).unwrap().1, None);
    }
}
