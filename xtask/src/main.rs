//! Project chores, run as `cargo xtask <task>`:
//!
//! - `test`: the whole test suite, the one command the README gives and CI runs. Rust tests on
//!   SQLite and PostgreSQL, then a demo platform is started and checked from outside by
//!   independent tools: the OpenAPI document by PyPI `openapi-spec-validator`, the OpenID
//!   provider by npm `openid-client`, the data exchange by Python `requests` (mTLS, tokens,
//!   GDX; once on SQLite, once on a PostgreSQL demo), the portal by Debian's Chromium with
//!   axe-core. Installs those tools when they are missing.
//! - `bench`: the benchmarks, printing ratios against baselines measured in the same run.
//!
//! Uses only the standard library so that it builds in seconds on a fresh machine.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The workspace root, read when xtask runs: `cargo run` sets `CARGO_MANIFEST_DIR` for the
/// process. (The compile-time value would be wrong when a shared target directory holds an
/// xtask binary built from another checkout.)
fn root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or(manifest_dir)
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(step: &str, command: &mut Command) -> Result<bool> {
    eprintln!("\n==> {step}");
    let status = command
        .status()
        .with_context(|| format!("cannot start: {step}"))?;
    Ok(status.success())
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: cargo xtask test [--no-postgres] [--no-browser]\n       cargo xtask bench\n\n\
         test: Rust tests on SQLite and PostgreSQL ({DEFAULT_POSTGRES}, or SAPHAN_TEST_POSTGRES_URL),\n      \
         then the OpenAPI validator and the headless-Chromium + axe-core checks against a demo platform.\n\
         bench: the audit-log benchmark on SQLite and PostgreSQL."
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("bench") => bench(),
        _ => return usage(),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn postgres_url(args: &[String]) -> Option<String> {
    if args.iter().any(|a| a == "--no-postgres") {
        return None;
    }
    Some(std::env::var("SAPHAN_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES.into()))
}

/// Authorization-code lifetime of the demo that the suites run against.
const CODE_TTL_SECS: &str = "5";

fn test(args: &[String]) -> Result<bool> {
    let root = root();
    let browser = !args.iter().any(|a| a == "--no-browser");
    let postgres = postgres_url(args);
    match &postgres {
        Some(url) => eprintln!("xtask: testing on SQLite and on PostgreSQL ({url})"),
        None => eprintln!("xtask: testing on SQLite only (--no-postgres)"),
    }
    let mut outcomes: Vec<(&str, bool)> = Vec::new();

    let mut rust = cargo();
    rust.current_dir(&root)
        .args(["test", "--workspace", "--all-targets"]);
    match &postgres {
        Some(url) => rust.env("SAPHAN_TEST_POSTGRES_URL", url),
        None => rust.env_remove("SAPHAN_TEST_POSTGRES_URL"),
    };
    outcomes.push((
        "rust tests (SQLite + PostgreSQL)",
        run("cargo test --workspace", &mut rust)?,
    ));

    if !run(
        "build the saphan binary",
        cargo()
            .current_dir(&root)
            .args(["build", "--bin", "saphan"]),
    )? {
        bail!("the saphan binary does not build");
    }
    ensure_python_validator()?;
    ensure_node_packages(
        &root,
        "tests/oidc",
        &["openid-client", "otpauth", "jose", "oidc-provider"],
    )?;
    if browser {
        ensure_browser_tools(&root)?;
    }

    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let binary = target.join("debug").join("saphan");
    let data = tempdir()?;
    let port = free_port()?;
    // An independent upstream OpenID provider (npm oidc-provider, started by the relying-party
    // suite) is configured as the demo's "thaid" sign-in method.
    let upstream_port = free_port()?;
    std::fs::create_dir_all(&data)?;
    let upstream_secret = data.join("upstream-secret");
    std::fs::write(&upstream_secret, format!("{}\n", random_hex()))?;
    let upstream = format!(
        "[{{name=\"thaid\",title_th=\"ไทยดี (ทดสอบ)\",title_en=\"ThaID (test)\",issuer=\"http://localhost:{upstream_port}\",\
         client_id=\"saphan\",client_secret_file=\"{}\",scopes=[\"openid\",\"pid\"],default_ial=\"2.3\",default_aal=2}}]",
        upstream_secret.display()
    );
    // The demo's public address (its OpenID issuer) is `localhost`, as passkeys require.
    let base_url = format!("http://localhost:{port}");
    let tls_port = free_port()?;
    // Notices are e-mailed to an independent SMTP server (aiosmtpd) the one-stop suite runs.
    let smtp_port = free_port()?;
    eprintln!(
        "\n==> start a demo platform at {base_url} (data in {})",
        data.display()
    );
    let mut demo = DemoServer(
        Command::new(&binary)
            .args(["demo", "--data-dir"])
            .arg(&data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env_remove("SAPHAN_DATABASE_URL")
            // Short-lived codes, so the relying-party suite can watch one expire.
            .env("SAPHAN_IDENTITY__CODE_TTL_SECS", CODE_TTL_SECS)
            .env("SAPHAN_IDENTITY__UPSTREAM", &upstream)
            .envs(notice_mail(smtp_port))
            .env(
                "SAPHAN_EXCHANGE__TLS_LISTEN",
                format!("127.0.0.1:{tls_port}"),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start saphan demo")?,
    );
    wait_ready(port, &mut demo.0)?;

    let mut validator = Command::new("python3");
    validator
        .current_dir(&root)
        .arg("tests/openapi/validate.py")
        .env("BASE_URL", &base_url);
    outcomes.push((
        "OpenAPI document (openapi-spec-validator)",
        run("validate /openapi.json", &mut validator)?,
    ));

    let mut relying_party = Command::new("node");
    relying_party
        .current_dir(root.join("tests/oidc"))
        .args(["--test", "--test-reporter=spec"])
        .env("BASE_URL", &base_url)
        .env("SAPHAN_DATA_DIR", &data)
        .env("CODE_TTL_SECS", CODE_TTL_SECS)
        .env("UPSTREAM_PORT", upstream_port.to_string());
    outcomes.push((
        "OpenID Connect relying party (openid-client) and upstream federation (oidc-provider)",
        run("relying-party suite", &mut relying_party)?,
    ));

    ensure_python_packages(&root, "tests/exchange/requirements.txt")?;
    outcomes.push((
        "data exchange from outside (Python requests: mTLS, tokens, GDX, X-Road rules) on SQLite",
        exchange_suite(&root, &base_url, tls_port, &data, demo.0.id())?,
    ));
    outcomes.push((
        "one-stop catalogue from outside (GovStack Registration, openapi-core, jsonschema) on SQLite",
        onestop_suite(&root, &base_url, &data, smtp_port)?,
    ));
    if let Some(url) = &postgres {
        outcomes.push((
            "data exchange and one-stop catalogue from outside on PostgreSQL",
            exchange_on_postgres(&root, &binary, url)?,
        ));
    }

    if browser {
        let artifacts = root.join("ci-artifacts").join("browser");
        let mut node = Command::new("node");
        node.current_dir(root.join("tests/browser"))
            .args(["--test", "--test-reporter=spec"])
            .env("BASE_URL", &base_url)
            .env("SAPHAN_DATA_DIR", &data)
            .env("SAPHAN_ARTIFACTS", &artifacts);
        outcomes.push((
            "portal and sign-in (password + TOTP, passkey) in Chromium + axe-core",
            run("browser tests", &mut node)?,
        ));
        eprintln!("xtask: screenshots are in {}", artifacts.display());
    }

    eprintln!("\n==> stop the demo with SIGTERM (graceful shutdown)");
    outcomes.push(("demo stops gracefully", demo.stop()?));
    let _ = std::fs::remove_dir_all(&data);

    let failed: Vec<_> = outcomes
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| *n)
        .collect();
    eprintln!();
    for (name, ok) in &outcomes {
        eprintln!("{} {name}", if *ok { "ok  " } else { "FAIL" });
    }
    println!(
        "checks: {} passed, {} failed",
        outcomes.len() - failed.len(),
        failed.len()
    );
    Ok(failed.is_empty())
}

/// The exchange's independent suite (tests/exchange, pytest + requests) against a running
/// platform.
fn exchange_suite(
    root: &Path,
    base_url: &str,
    tls_port: u16,
    data: &Path,
    pid: u32,
) -> Result<bool> {
    let mut pytest = Command::new("python3");
    pytest
        .current_dir(root)
        .args([
            "-m",
            "pytest",
            "tests/exchange",
            "-q",
            "-p",
            "no:cacheprovider",
        ])
        .env("BASE_URL", base_url)
        .env("TLS_URL", format!("https://localhost:{tls_port}"))
        .env("SAPHAN_DATA_DIR", data)
        .env("SAPHAN_PID", pid.to_string());
    run("exchange suite", &mut pytest)
}

/// The one-stop suite (tests/onestop, pytest + requests + openapi-core + jsonschema) against a
/// running platform.
fn onestop_suite(root: &Path, base_url: &str, data: &Path, smtp_port: u16) -> Result<bool> {
    let mut pytest = Command::new("python3");
    pytest
        .current_dir(root)
        .args([
            "-m",
            "pytest",
            "tests/onestop",
            "-q",
            "-p",
            "no:cacheprovider",
        ])
        .env("BASE_URL", base_url)
        .env("SAPHAN_DATA_DIR", data)
        .env("SMTP_PORT", smtp_port.to_string());
    run("one-stop suite", &mut pytest)
}

/// The demo's notices go to an SMTP server on `port`, swept every two seconds.
fn notice_mail(port: u16) -> [(&'static str, String); 2] {
    [
        (
            "SAPHAN_ONESTOP__SMTP_URL",
            format!("smtp://127.0.0.1:{port}"),
        ),
        ("SAPHAN_ONESTOP__SWEEP_SECS", "2".to_string()),
    ]
}

/// A second demo platform on a fresh PostgreSQL database, for the exchange and one-stop suites.
fn exchange_on_postgres(root: &Path, binary: &Path, server: &str) -> Result<bool> {
    let name = format!("saphan_test_xtask_{}", &random_hex()[..12]);
    let psql = |sql: &str| {
        Command::new("psql")
            .args([server, "-qAtc", sql])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !psql(&format!("CREATE DATABASE {name}")) {
        bail!("cannot create the PostgreSQL database {name} (is psql installed and {server} up?)");
    }
    let url = match server.rsplit_once('/') {
        Some((prefix, _)) => format!("{prefix}/{name}"),
        None => bail!("{server} is not a postgres:// URL"),
    };
    let data = std::env::temp_dir().join(format!("saphan-xtask-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data)?;
    let (port, tls_port, smtp_port) = (free_port()?, free_port()?, free_port()?);
    eprintln!("\n==> start a demo platform on PostgreSQL ({name}) at http://localhost:{port}");
    let outcome = (|| {
        let mut demo = DemoServer(
            Command::new(binary)
                .args(["demo", "--data-dir"])
                .arg(&data)
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .env("SAPHAN_DATABASE_URL", &url)
                .envs(notice_mail(smtp_port))
                .env(
                    "SAPHAN_EXCHANGE__TLS_LISTEN",
                    format!("127.0.0.1:{tls_port}"),
                )
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .context("cannot start saphan demo on PostgreSQL")?,
        );
        wait_ready(port, &mut demo.0)?;
        let base_url = format!("http://localhost:{port}");
        let exchange = exchange_suite(root, &base_url, tls_port, &data, demo.0.id())?;
        let onestop = onestop_suite(root, &base_url, &data, smtp_port)?;
        Ok::<_, anyhow::Error>(exchange && onestop && demo.stop()?)
    })();
    let _ = std::fs::remove_dir_all(&data);
    psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    outcome
}

/// Installs a Python suite's requirements unless they import already.
fn ensure_python_packages(root: &Path, requirements: &str) -> Result<()> {
    let present = Command::new("python3")
        .args([
            "-c",
            "import pytest, requests, jwt, cryptography, openapi_core, yaml, jsonschema, aiosmtpd",
        ])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if present {
        return Ok(());
    }
    let file = root.join(requirements);
    let plain = run(
        "pip install the exchange suite's requirements",
        Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "-r"])
            .arg(&file),
    )?;
    if !plain
        && !run(
            "pip install --user the exchange suite's requirements",
            Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--user",
                    "--break-system-packages",
                    "-r",
                ])
                .arg(&file),
        )?
    {
        bail!("cannot install {requirements} with pip");
    }
    Ok(())
}

fn bench() -> Result<bool> {
    let root = root();
    let mut ok = true;
    for (name, package, bench) in [
        ("audit-log append benchmark", "saphan-audit", "append"),
        ("sign-in benchmark", "saphan-web", "signin"),
        (
            "population generation benchmark",
            "saphan-population",
            "generation",
        ),
    ] {
        let mut command = cargo();
        command
            .current_dir(&root)
            .args(["bench", "-p", package, "--bench", bench]);
        if std::env::var_os("SAPHAN_BENCH_POSTGRES_URL").is_none() {
            command.env("SAPHAN_BENCH_POSTGRES_URL", DEFAULT_POSTGRES);
        }
        ok &= run(name, &mut command)?;
    }
    // The gateway benchmark runs the release binary against nginx, and a bare proxy on the same
    // HTTP stack (see bench/exchange.py).
    // Two builds: one command would turn on the example's dev-dependency features in the
    // binary too, and the binary measured must be the one shipped.
    if run(
        "build the release binary",
        cargo()
            .current_dir(&root)
            .args(["build", "--release", "--bin", "saphan"]),
    )? && run(
        "build the bare-proxy example",
        cargo().current_dir(&root).args([
            "build",
            "--release",
            "-p",
            "saphan-web",
            "--example",
            "bare_proxy",
        ]),
    )? {
        ensure_python_packages(&root, "tests/exchange/requirements.txt")?;
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target"));
        ok &= run(
            "exchange gateway benchmark",
            Command::new("python3")
                .current_dir(&root)
                .arg("bench/exchange.py")
                .arg("--bin")
                .arg(target.join("release").join("saphan"))
                .arg("--bare")
                .arg(target.join("release").join("examples").join("bare_proxy"))
                .arg("--postgres")
                .arg(
                    std::env::var("SAPHAN_BENCH_POSTGRES_URL")
                        .unwrap_or_else(|_| DEFAULT_POSTGRES.into()),
                ),
        )?;
        ok &= run(
            "registry benchmark (person-by-id through the exchange against direct)",
            Command::new("python3")
                .current_dir(&root)
                .arg("bench/registry.py")
                .arg("--bin")
                .arg(target.join("release").join("saphan"))
                .arg("--postgres")
                .arg(
                    std::env::var("SAPHAN_BENCH_POSTGRES_URL")
                        .unwrap_or_else(|_| DEFAULT_POSTGRES.into()),
                ),
        )?;
        ok &= run(
            "portal benchmark (200 concurrent users against the same pages as static nginx files)",
            Command::new("python3")
                .current_dir(&root)
                .arg("bench/portal.py")
                .arg("--bin")
                .arg(target.join("release").join("saphan"))
                .arg("--postgres")
                .arg(
                    std::env::var("SAPHAN_BENCH_POSTGRES_URL")
                        .unwrap_or_else(|_| DEFAULT_POSTGRES.into()),
                ),
        )?;
    } else {
        ok = false;
    }
    Ok(ok)
}

/// Kills the demo if a step fails before it is stopped gracefully.
struct DemoServer(Child);

impl DemoServer {
    fn stop(&mut self) -> Result<bool> {
        let pid = self.0.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .context("cannot send SIGTERM")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.0.try_wait()? {
                return Ok(status.success());
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn tempdir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("saphan-xtask-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// 128 random bits as hex, from the OS.
fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if read.is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = nanos.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_ready(port: u16, child: &mut Child) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("saphan demo exited before it was ready ({status})");
        }
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let request = format!(
                "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
            );
            let mut response = String::new();
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_string(&mut response).is_ok()
                && response.starts_with("HTTP/1.1 200")
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("saphan demo did not become ready on port {port} within 120 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ensure_python_validator() -> Result<()> {
    let present = Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .stderr(Stdio::null())
        .status()
        .context("python3 is needed for the OpenAPI validator")?
        .success();
    if !present
        && !run(
            "install openapi-spec-validator",
            Command::new("python3").args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "openapi-spec-validator",
            ]),
        )?
    {
        bail!(
            "cannot install openapi-spec-validator (python3 -m pip install openapi-spec-validator)"
        );
    }
    Ok(())
}

fn ensure_browser_tools(root: &Path) -> Result<()> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.starts_with(b"0"))
            .unwrap_or(false);
        if !is_root {
            bail!("Chromium is missing: install Debian's `chromium` package (sudo apt-get install chromium) or set CHROMIUM");
        }
        run(
            "apt-get update",
            Command::new("apt-get").args(["update", "-qq"]),
        )?;
        if !run(
            "install chromium",
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "chromium"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )? {
            bail!("cannot install Chromium with apt-get");
        }
    }
    ensure_node_packages(
        root,
        "tests/browser",
        &["playwright-core", "axe-core", "otpauth"],
    )
}

/// Runs `npm ci` in `dir` unless every package in `needed` is already installed there.
fn ensure_node_packages(root: &Path, dir: &str, needed: &[&str]) -> Result<()> {
    let dir_path = root.join(dir);
    let installed = needed
        .iter()
        .all(|p| dir_path.join("node_modules").join(p).exists());
    if !installed
        && !run(
            &format!("npm ci in {dir} ({})", needed.join(", ")),
            Command::new("npm")
                .current_dir(&dir_path)
                .args(["ci", "--no-audit", "--no-fund"]),
        )?
    {
        bail!("npm ci failed in {dir}");
    }
    Ok(())
}
