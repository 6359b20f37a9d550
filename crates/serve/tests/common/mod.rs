//! What the studio's tests share: a scripted generator (steps that wait for the test's
//! permits and stop when cancelled, as a sampler loop does) and a request helper over
//! `tower::ServiceExt::oneshot`.

#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use mmgen_serve::generator::{GenerateError, Made, Vocab};
use mmgen_serve::jobs::JobSpec;
use mmgen_serve::Generate;
use tower::ServiceExt;

/// Permits for the scripted generator's steps; `None` lets every step run at once.
#[derive(Default)]
pub struct Gate {
    permits: Mutex<Option<usize>>,
    changed: Condvar,
}

impl Gate {
    /// A gate that holds every step until [`Gate::release`].
    pub fn closed() -> Arc<Gate> {
        Arc::new(Gate {
            permits: Mutex::new(Some(0)),
            changed: Condvar::new(),
        })
    }

    /// Lets `n` more steps run.
    pub fn release(&self, n: usize) {
        let mut permits = self.permits.lock().unwrap();
        *permits = Some(permits.unwrap_or(0) + n);
        self.changed.notify_all();
    }

    /// Lets every step run from now on.
    pub fn open(&self) {
        *self.permits.lock().unwrap() = None;
        self.changed.notify_all();
    }

    /// Waits for a permit (10 ms at a time, so that a cancelled job stops waiting).
    fn take(&self) -> bool {
        let mut permits = self.permits.lock().unwrap();
        match *permits {
            None => true,
            Some(0) => {
                permits = self.changed.wait_timeout(permits, Duration::from_millis(10)).unwrap().0;
                match *permits {
                    None => true,
                    Some(0) => false,
                    Some(n) => {
                        *permits = Some(n - 1);
                        true
                    }
                }
            }
            Some(n) => {
                *permits = Some(n - 1);
                true
            }
        }
    }
}

/// A generator of `steps` progress steps, then a 4x4 PNG, caption.txt and meta.json
/// holding the request. A prompt holding "fail" fails; one holding "panic" panics; one
/// holding "hold" runs until it is cancelled.
pub struct Scripted {
    pub steps: usize,
    pub gate: Arc<Gate>,
}

impl Scripted {
    /// A generator whose steps run at once.
    pub fn quick(steps: usize) -> Scripted {
        Scripted {
            steps,
            gate: Arc::new(Gate::default()),
        }
    }
}

impl Generate for Scripted {
    fn vocab(&self) -> Vocab {
        Vocab {
            styles: vec!["flat".into(), "pixel_art".into()],
            backgrounds: vec!["grass_field".into(), "snow".into()],
        }
    }

    fn generate(
        &self,
        job: &JobSpec,
        out: &Path,
        progress: &mut dyn FnMut(&str, usize, usize),
    ) -> Result<Made, GenerateError> {
        if job.prompt.contains("panic") {
            panic!("asked to panic");
        }
        while job.prompt.contains("hold") {
            if mmgen_diffusion::cancel::check().is_err() {
                return Err(GenerateError::Cancelled);
            }
            progress("image", 0, self.steps);
            std::thread::sleep(Duration::from_millis(10));
        }
        for step in 1..=self.steps {
            loop {
                if mmgen_diffusion::cancel::check().is_err() {
                    return Err(GenerateError::Cancelled);
                }
                if self.gate.take() {
                    break;
                }
            }
            progress("image", step, self.steps);
        }
        if job.prompt.contains("fail") {
            return Err(GenerateError::Failed("asked to fail".into()));
        }
        std::fs::create_dir_all(out).map_err(|e| GenerateError::Failed(e.to_string()))?;
        let shade = (job.seed % 256) as u8;
        image::RgbImage::from_pixel(4, 4, image::Rgb([shade, 0, 0]))
            .save(out.join("image.png"))
            .map_err(|e| GenerateError::Failed(e.to_string()))?;
        std::fs::write(out.join("caption.txt"), &job.prompt).map_err(|e| GenerateError::Failed(e.to_string()))?;
        let meta = serde_json::json!({"prompt": job.prompt, "seed": job.seed, "style": job.style,
            "scene_plan": {"style": job.style, "background": job.background}});
        std::fs::write(out.join("meta.json"), meta.to_string()).map_err(|e| GenerateError::Failed(e.to_string()))?;
        Ok(Made {
            files: vec!["image.png".into(), "caption.txt".into(), "meta.json".into()],
            meta,
        })
    }
}

/// An answer: status, headers and body.
pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The field a JSON error names.
    pub fn error_field(&self) -> Option<String> {
        self.json()["error"]["field"].as_str().map(str::to_string)
    }
}

/// Sends one request to `router`.
pub async fn send(router: &Router, method: &str, uri: &str, body: Option<serde_json::Value>) -> Answer {
    send_with(
        router,
        method,
        uri,
        body.map(|b| b.to_string()),
        &[("content-type", "application/json")],
    )
    .await
}

/// Sends one request with a raw body and the given headers.
pub async fn send_with(
    router: &Router,
    method: &str,
    uri: &str,
    body: Option<String>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(body.map_or_else(Body::empty, Body::from)).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes().to_vec(),
    }
}

/// Polls job `id` until `done` holds of its view (10 s at most).
pub async fn wait_for(router: &Router, id: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let view = send(router, "GET", &format!("/v1/jobs/{id}"), None).await.json();
        if done(&view) {
            return view;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "job {id} stuck at {view}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Polls job `id` until it is in `state`.
pub async fn wait_state(router: &Router, id: &str, state: &str) -> serde_json::Value {
    wait_for(router, id, |v| v["state"] == state).await
}
