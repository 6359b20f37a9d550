//! A real server process killed with SIGKILL mid-job and started again on the same
//! data: no completed job is lost, and the job it was running is failed with a reason.
//! The server is this test binary itself, run again as `child_server`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Scripted;

const CHILD_DATA: &str = "MMGEN_SERVE_TEST_CHILD_DATA";

#[test]
#[ignore = "the server process of a_server_killed_mid_job_loses_no_completed_job, which runs it"]
fn child_server() {
    let data = std::env::var(CHILD_DATA).expect("run by a_server_killed_mid_job_loses_no_completed_job");
    let config = mmgen_serve::Config::new(data);
    mmgen_serve::serve("127.0.0.1:0".parse().unwrap(), config, Arc::new(Scripted::quick(3))).unwrap();
}

/// The server process, killed with SIGKILL when dropped.
struct Server(Child);

impl Server {
    /// SIGKILL: no shutdown of any kind.
    fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the server on `data`; returns it and its address.
fn start(data: &Path) -> (Server, SocketAddr) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_server",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_DATA, data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(addr) = line.split("listening on http://").nth(1) {
            return (server, addr.trim().parse().unwrap());
        }
    }
    panic!("the server ended without listening");
}

/// One HTTP/1.1 exchange: (status, body).
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&answer[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut payload = answer[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        payload = unchunk(&payload);
    }
    (status, payload)
}

fn unchunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&body[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[end + 2..end + 2 + size]);
        body = &body[end + 4 + size..];
    }
}

fn job(addr: SocketAddr, id: &str) -> serde_json::Value {
    let (status, body) = http(addr, "GET", &format!("/v1/jobs/{id}"), None);
    assert_eq!(status, 200);
    serde_json::from_slice(&body).unwrap()
}

fn submit(addr: SocketAddr, prompt: &str) -> String {
    let (status, body) = http(addr, "POST", "/v1/jobs", Some(&format!("{{\"prompt\": \"{prompt}\"}}")));
    assert_eq!(status, 202);
    serde_json::from_slice::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn wait_state(addr: SocketAddr, id: &str, state: &str) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let view = job(addr, id);
        if view["state"] == state {
            return view;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "job {id} stuck at {view}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_server_killed_mid_job_loses_no_completed_job() {
    let data = std::env::temp_dir().join(format!("mmgen-serve-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let (server, addr) = start(&data);
    let done = submit(addr, "two red circles");
    wait_state(addr, &done, "completed");
    let running = submit(addr, "hold this one");
    wait_state(addr, &running, "running");
    let queued = submit(addr, "a blue star");
    server.kill();

    let (server, addr) = start(&data);
    let view = job(addr, &done);
    assert_eq!(view["state"], "completed", "{view}");
    let (status, png) = http(addr, "GET", &format!("/v1/jobs/{done}/files/image.png"), None);
    assert_eq!(status, 200);
    assert_eq!(&png[1..4], b"PNG");
    let view = job(addr, &running);
    assert_eq!(view["state"], "failed");
    assert!(view["error"].as_str().unwrap().contains("stopped while"), "{view}");
    // What still waited in the queue is made after the restart.
    wait_state(addr, &queued, "completed");
    server.kill();
    let _ = std::fs::remove_dir_all(&data);
}
