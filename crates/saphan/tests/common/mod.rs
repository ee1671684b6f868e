//! Running the real `saphan` binary in tests: a node's files in a temporary directory, a
//! database on SQLite or on a fresh PostgreSQL database.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use saphan_store::testing::{postgres_server_url, PostgresTestDb};

pub const PASSPHRASE: &str = "integration-test-passphrase";

/// One platform node's files, and its database.
pub struct Node {
    pub dir: tempfile::TempDir,
    pub database_url: String,
    pg: Option<PostgresTestDb>,
}

pub enum Backend {
    Sqlite,
    Postgres,
}

/// The backends to run on: SQLite always, PostgreSQL when the test server is configured.
pub fn backends() -> Vec<Backend> {
    let mut b = vec![Backend::Sqlite];
    if postgres_server_url().is_some() {
        b.push(Backend::Postgres);
    }
    b
}

impl Node {
    pub async fn new(backend: &Backend) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, pg) = match backend {
            Backend::Sqlite => (format!("sqlite://{}/saphan.db", dir.path().display()), None),
            Backend::Postgres => {
                let pg = PostgresTestDb::create(&postgres_server_url().unwrap()).await;
                (pg.url.clone(), Some(pg))
            }
        };
        let node = Node {
            dir,
            database_url,
            pg,
        };
        node.write_config("");
        node
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("saphan.toml")
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes saphan.toml with this node's database and data directory, plus `extra` lines.
    pub fn write_config(&self, extra: &str) {
        std::fs::write(
            self.config_path(),
            format!(
                "database_url = \"{}\"\ndata_dir = \"{}\"\n{extra}\n",
                self.database_url,
                self.dir.path().display()
            ),
        )
        .unwrap();
    }

    /// `saphan --config <node>/saphan.toml ARGS`, with the passphrase in the environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = saphan();
        c.arg("--config").arg(self.config_path()).args(args);
        c.env("SAPHAN_KEY_PASSPHRASE", PASSPHRASE);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Migrates and creates the key store: a node ready to serve.
    pub fn prepare(&self) {
        assert_success(&self.run(&["migrate"]));
        assert_success(&self.run(&["keys", "init"]));
    }

    pub async fn cleanup(self) {
        if let Some(pg) = self.pg {
            pg.drop_now().await;
        }
    }
}

/// The `saphan` binary with none of the caller's `SAPHAN_*` variables, quiet logs.
pub fn saphan() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_saphan"));
    for (key, _) in std::env::vars() {
        if key.starts_with("SAPHAN_") {
            c.env_remove(key);
        }
    }
    c.env("RUST_LOG", "warn");
    c
}

pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A failing command said one clear line and no panic.
pub fn assert_one_clear_error(out: &Output, expect: &[&str]) -> String {
    assert!(
        !out.status.success(),
        "expected failure, got success: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one error line expected, got:\n{stderr}"
    );
    assert!(lines[0].starts_with("saphan: "), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
    for e in expect {
        assert!(stderr.contains(e), "expected `{e}` in: {stderr}");
    }
    stderr
}
