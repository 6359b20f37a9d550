//! The studio in a real browser: `mmgen serve` on the shipped models, Chromium driven
//! through WebDriver (chromedriver, fantoccini). The page makes an image from a prompt
//! with live progress, then an edit turn, and keeps the first turn on screen.
//!
//! `.ci/run` installs Debian's chromium and chromium-driver and sets
//! MMGEN_REQUIRE_BROWSER, so that CI fails rather than skips when they are missing.
//! Screenshots of each step go to $MMGEN_STUDIO_SCREENSHOTS (docs/studio/ holds the
//! committed ones) or a temporary folder.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

/// A child process killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chromedriver() -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join("chromedriver"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `mmgen serve` on the shipped models and a fresh data folder.
fn start_server(data: &Path) -> (Killed, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mmgen"))
        .args(["serve", "--addr", "127.0.0.1:0", "--no-cache", "--data"])
        .arg(data)
        .current_dir(workspace())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Killed(child);
    for line in BufReader::new(stdout).lines() {
        if let Some(addr) = line.unwrap().split("listening on http://").nth(1) {
            return (server, addr.trim().parse().unwrap());
        }
    }
    panic!("mmgen serve ended without listening");
}

async fn connect(driver: &Path) -> (Killed, Client) {
    let port = free_port();
    let process = Killed(
        Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let profile = std::env::temp_dir().join(format!("mmgen-chromium-{}", std::process::id()));
    let mut capabilities = serde_json::Map::new();
    // Headless, and quiet: this machine's network is closed, so no background traffic.
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({"args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--window-size=1000,1100",
            format!("--user-data-dir={}", profile.display()),
        ]}),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    (process, client)
}

async fn screenshot(client: &Client, dir: &Path, name: &str) {
    let png = client.screenshot().await.unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

/// Waits (up to `seconds`) until the page's script `check` returns true.
async fn wait_until(client: &Client, seconds: u64, what: &str, check: &str) {
    let start = Instant::now();
    loop {
        let value = client.execute(check, vec![]).await.unwrap();
        if value.as_bool() == Some(true) {
            return;
        }
        let state = client
            .execute("return document.querySelector('#turns').innerText + ' | ' + document.querySelector('#status').innerText", vec![])
            .await
            .unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(seconds),
            "waited for {what}; the page shows: {state}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A turn's image has loaded (its natural width is known).
fn turn_image_loaded(turn: usize) -> String {
    format!(
        "const t = document.querySelectorAll('#turns .turn')[{turn}]; \
         const img = t && t.querySelector('img.result'); return !!(img && img.complete && img.naturalWidth > 0);"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_studio_page_makes_an_image_then_an_edit_in_a_real_browser() {
    let Some(driver) = chromedriver() else {
        assert!(
            std::env::var_os("MMGEN_REQUIRE_BROWSER").is_none(),
            "chromedriver is not on PATH: install Debian's chromium and chromium-driver (.ci/run does)"
        );
        eprintln!("skipped: chromedriver is not on PATH (install chromium and chromium-driver)");
        return;
    };
    let shots = std::env::var_os("MMGEN_STUDIO_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("mmgen-studio-screenshots"));
    std::fs::create_dir_all(&shots).unwrap();
    let data = std::env::temp_dir().join(format!("mmgen-studio-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let (_server, addr) = start_server(&data);
    let (_driver, client) = connect(&driver).await;

    // 1. The page.
    client.goto(&format!("http://{addr}/")).await.unwrap();
    wait_until(
        &client,
        10,
        "the vocabulary",
        "return document.querySelectorAll('#style option').length > 1",
    )
    .await;
    // Every text the progress line shows, recorded as it changes.
    client
        .execute(
            "window.stages = []; new MutationObserver(() => document.querySelectorAll('#turns .stage')\
             .forEach(s => window.stages.push(s.textContent))).observe(document.querySelector('#turns'), \
             {subtree: true, childList: true, characterData: true});",
            vec![],
        )
        .await
        .unwrap();
    screenshot(&client, &shots, "1-page.png").await;

    // 2. A prompt: progress, then an image.
    let prompt = client.find(Locator::Css("#prompt")).await.unwrap();
    prompt.send_keys("two red circles on a grassy field").await.unwrap();
    client.find(Locator::Css("#send")).await.unwrap().click().await.unwrap();
    wait_until(
        &client,
        60,
        "the first turn's progress",
        "return window.stages.some(s => /image \\d+\\/\\d+/.test(s))",
    )
    .await;
    screenshot(&client, &shots, "2-progress.png").await;
    wait_until(&client, 120, "the first image", &turn_image_loaded(0)).await;
    let stages = client.execute("return window.stages", vec![]).await.unwrap();
    let steps: Vec<u64> = stages
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str()?.strip_prefix("image ")?.split('/').next()?.parse().ok())
        .collect();
    assert!(
        steps.len() >= 2 && steps.windows(2).all(|w| w[0] <= w[1]),
        "progress went forward: {stages}"
    );
    screenshot(&client, &shots, "3-image.png").await;

    // 3. An edit turn, read by the scene editor: a second image, what the editor read,
    // and the first turn still shown.
    let prompt = client.find(Locator::Css("#prompt")).await.unwrap();
    prompt.send_keys("now as pixel art").await.unwrap();
    client.find(Locator::Css("#send")).await.unwrap().click().await.unwrap();
    wait_until(&client, 120, "the edit's image", &turn_image_loaded(1)).await;
    let turns = client.find_all(Locator::Css("#turns .turn")).await.unwrap();
    assert_eq!(turns.len(), 2);
    let first = turns[0]
        .find(Locator::Css(".instruction"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(first, "two red circles on a grassy field");
    assert!(
        client.execute(&turn_image_loaded(0), vec![]).await.unwrap().as_bool() == Some(true),
        "the first turn's image is still there"
    );
    let sources = client
        .execute(
            "return [...document.querySelectorAll('#turns img.result')].map(i => i.src)",
            vec![],
        )
        .await
        .unwrap();
    let sources = sources.as_array().unwrap();
    assert_eq!(sources.len(), 2);
    assert_ne!(sources[0], sources[1], "each turn shows its own image");
    let read = turns[1]
        .find(Locator::Css(".edit"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        read.starts_with("edit: "),
        "the second turn says what the editor read: {read}"
    );
    screenshot(&client, &shots, "4-edit.png").await;
    client.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&data);
}
