//! `saphan serve` as an operator runs it: two nodes on one database serve the same platform (a
//! session made on one is honoured by the other; both write one audit chain), and SIGTERM lets
//! in-flight requests finish before the node exits cleanly.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{assert_success, backends, Node};

const ADMIN_TOKEN: &str = "serve-test-admin-token-0123456789";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(node: &Node, port: u16) -> Child {
    node.command(&["serve"])
        .env("SAPHAN_LISTEN", format!("127.0.0.1:{port}"))
        .env("SAPHAN_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_ready(client: &reqwest::Client, port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("node on port {port} exited early with {status:?}");
        }
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            if r.status().is_success() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node on port {port} never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sigterm(child: &Child) {
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_serve_one_platform_and_shut_down_gracefully() {
    for backend in backends() {
        let node = Node::new(&backend).await;
        node.prepare();
        let (port_a, port_b) = (free_port(), free_port());
        let mut a = start(&node, port_a);
        let mut b = start(&node, port_b);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        wait_ready(&client, port_a, &mut a).await;
        wait_ready(&client, port_b, &mut b).await;

        // Sign in on A; B honours the session (no node-local state).
        let login = client
            .post(format!("http://127.0.0.1:{port_a}/admin/login"))
            .form(&[("token", ADMIN_TOKEN)])
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 303);
        let cookie = login.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let console = client
            .get(format!("http://127.0.0.1:{port_b}/admin?lang=en"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(console.contains("Platform keys"), "{console}");

        // Both nodes append to one chain.
        for port in [port_a, port_b, port_a, port_b] {
            let r = client
                .post(format!("http://127.0.0.1:{port}/admin/login"))
                .form(&[("token", ADMIN_TOKEN)])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 303);
        }

        // A failed sign-in takes ~500 ms; SIGTERM arrives while it is in flight.
        let slow = tokio::spawn({
            let client = client.clone();
            async move {
                client
                    .post(format!("http://127.0.0.1:{port_a}/admin/login"))
                    .form(&[("token", "wrong")])
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            }
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        sigterm(&a);
        assert_eq!(
            slow.await.unwrap().expect("in-flight request completed"),
            401
        );
        let status = a.wait().unwrap();
        assert!(status.success(), "node A exited with {status:?}");
        // New connections are refused once it has stopped.
        assert!(client
            .get(format!("http://127.0.0.1:{port_a}/healthz"))
            .send()
            .await
            .is_err());

        sigterm(&b);
        assert!(b.wait().unwrap().success());

        let verify = node.run(&["audit", "verify"]);
        assert_success(&verify);
        let text = String::from_utf8_lossy(&verify.stdout).to_string();
        assert!(text.starts_with("OK: "), "{text}");
        let records: u64 = text[4..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            records >= 7,
            "6 sign-ins and at least one checkpoint record: {text}"
        );
        assert!(
            !text.contains("not yet in a signed checkpoint"),
            "shutdown signs the tail: {text}"
        );
        node.cleanup().await;
    }
}
