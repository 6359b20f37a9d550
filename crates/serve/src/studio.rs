//! The studio's running state: the store, the bounded queue, the worker threads and
//! each live job's progress, cancellation flag and event channel. Generation runs on
//! the workers (plain threads fed by a channel), never on the async runtime.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::StatusCode;
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::generator::{Generate, GenerateError, Vocab};
use crate::jobs::{JobRecord, JobSpec, JobState, JobView, ProgressView};
use crate::store::{self, Store};

/// How the server runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the database and the jobs' files live.
    pub data: PathBuf,
    /// Clients must send `Authorization: Bearer TOKEN` to /v1 when set.
    pub token: Option<String>,
    /// Worker threads (jobs made at once).
    pub workers: usize,
    /// Jobs that may wait for a worker; one more is answered 429.
    pub queue_bound: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Longest prompt or instruction, in characters.
    pub max_prompt_chars: usize,
}

impl Config {
    /// The defaults, with data in `data`.
    pub fn new(data: impl Into<PathBuf>) -> Config {
        Config {
            data: data.into(),
            token: None,
            workers: 1,
            queue_bound: 64,
            max_body_bytes: 64 * 1024,
            max_prompt_chars: mmgen_pipeline::MAX_PROMPT_CHARS,
        }
    }
}

/// What subscribers of a job hear, in order: progress, then one `Done`.
#[derive(Clone, Debug)]
pub enum JobEvent {
    /// The job moved to another state (queued -> running).
    State(JobState),
    /// A sampler step (or block of audio) is done.
    Progress(ProgressView),
    /// The job ended; the view of how.
    Done(Box<JobView>),
}

/// A job not yet ended.
pub struct Live {
    cancel: Arc<AtomicBool>,
    progress: Mutex<ProgressView>,
    events: broadcast::Sender<JobEvent>,
}

/// Shared by the handlers and the workers.
pub struct Studio {
    /// How it runs.
    pub config: Config,
    /// Jobs, sessions, feedback.
    pub store: Store,
    /// What may be pinned.
    pub vocab: Vocab,
    /// SHA-256 of the token, compared in constant time.
    pub token_digest: Option<[u8; 32]>,
    queue: SyncSender<String>,
    live: Mutex<HashMap<String, Arc<Live>>>,
}

/// The state every handler gets.
pub type AppState = Arc<Studio>;

/// A job's view, with its events when it has not ended.
pub type Subscription = (JobView, Option<broadcast::Receiver<JobEvent>>);

/// A fresh random id (128 bits, hex).
pub fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl Studio {
    /// Opens the store in `config.data`, fails the jobs a previous server left running,
    /// queues again those it left queued, and starts the workers over `generator`.
    pub fn start(config: Config, generator: Arc<dyn Generate>) -> Result<AppState, String> {
        if config.workers == 0 || config.queue_bound == 0 {
            return Err("workers and queue bound must be at least 1".into());
        }
        std::fs::create_dir_all(config.data.join("jobs"))
            .map_err(|e| format!("--data {}: cannot create it: {e}", config.data.display()))?;
        let store = Store::open(&config.data.join("studio.sqlite")).map_err(|e| e.to_string())?;
        Self::with_store(config, store, generator)
    }

    /// [`Self::start`] over a given store (tests use an in-memory one).
    pub fn with_store(config: Config, store: Store, generator: Arc<dyn Generate>) -> Result<AppState, String> {
        let recovered = store.recover().map_err(|e| e.to_string())?;
        for id in recovered.iter().skip(config.queue_bound) {
            store
                .finish(
                    id,
                    JobState::Failed,
                    &[],
                    None,
                    Some("the queue was full when the server restarted"),
                    0.0,
                )
                .map_err(|e| e.to_string())?;
        }
        let (queue, receiver) = sync_channel(config.queue_bound);
        let token_digest = config.token.as_deref().map(digest);
        let studio = Arc::new(Studio {
            vocab: generator.vocab(),
            config,
            store,
            token_digest,
            queue,
            live: Mutex::new(HashMap::new()),
        });
        for id in recovered.into_iter().take(studio.config.queue_bound) {
            studio.live_insert(&id);
            studio.queue.try_send(id).map_err(|e| e.to_string())?;
        }
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..studio.config.workers {
            let (studio, receiver, generator) = (studio.clone(), receiver.clone(), generator.clone());
            std::thread::Builder::new()
                .name(format!("mmgen-worker-{i}"))
                .spawn(move || work(&studio, &receiver, generator.as_ref()))
                .map_err(|e| format!("cannot start a worker thread: {e}"))?;
        }
        Ok(studio)
    }

    fn live_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Live>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live_insert(&self, id: &str) -> Arc<Live> {
        let live = Arc::new(Live {
            cancel: Arc::new(AtomicBool::new(false)),
            progress: Mutex::new(ProgressView::default()),
            events: broadcast::channel(1024).0,
        });
        self.live_map().insert(id.to_string(), live.clone());
        live
    }

    fn live(&self, id: &str) -> Option<Arc<Live>> {
        self.live_map().get(id).cloned()
    }

    /// Seconds a client should wait before trying again when the queue is full.
    fn retry_after(&self) -> u64 {
        let mean = self.store.mean_job_seconds().ok().flatten().unwrap_or(5.0);
        let waiting = self.config.queue_bound as f64 / self.config.workers as f64;
        (mean * waiting).ceil().max(1.0) as u64
    }

    /// Stores `job` (queued) and queues it; 429 with Retry-After when the queue is full
    /// (the job is then forgotten). `insert` stores it (with its turn, for a session).
    pub fn submit(&self, job: &JobRecord, insert: impl FnOnce() -> store::Result<()>) -> Result<(), ApiError> {
        insert()?;
        self.live_insert(&job.id);
        match self.queue.try_send(job.id.clone()) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.live_map().remove(&job.id);
                self.store.delete_job(&job.id)?;
                Err(match e {
                    TrySendError::Full(_) => ApiError {
                        retry_after: Some(self.retry_after()),
                        ..ApiError::new(
                            StatusCode::TOO_MANY_REQUESTS,
                            format!(
                                "the queue is full ({} jobs waiting); try again later",
                                self.config.queue_bound
                            ),
                        )
                    },
                    TrySendError::Disconnected(_) => ApiError::internal("the workers have stopped"),
                })
            }
        }
    }

    /// The view of job `id`.
    pub fn view(&self, id: &str) -> Result<Option<JobView>, ApiError> {
        let Some(job) = self.store.job(id)? else {
            return Ok(None);
        };
        let progress = self
            .live(id)
            .map(|l| l.progress.lock().unwrap_or_else(|p| p.into_inner()).clone());
        Ok(Some(JobView::of(&job, progress)))
    }

    /// Subscribes to job `id`'s events, then reads its view: a subscriber never misses
    /// the end of a job that had not ended when it subscribed.
    pub fn subscribe(&self, id: &str) -> Result<Option<Subscription>, ApiError> {
        let events = self.live(id).map(|l| l.events.subscribe());
        Ok(self.view(id)?.map(|view| {
            let events = if view.state.is_final() { None } else { events };
            (view, events)
        }))
    }

    /// Waits until job `id` ends and returns its view.
    pub async fn wait(&self, id: &str) -> Result<JobView, ApiError> {
        let (view, events) = self
            .subscribe(id)?
            .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
        let Some(mut events) = events else {
            return Ok(view);
        };
        loop {
            match events.recv().await {
                Ok(JobEvent::Done(view)) => return Ok(*view),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    return self
                        .view(id)?
                        .ok_or_else(|| ApiError::not_found(format!("no job {id}")));
                }
            }
        }
    }

    /// Cancels job `id`: a queued job at once, a running one between two steps.
    /// Returns its view (a running one still shows `running`).
    pub fn cancel(&self, id: &str) -> Result<JobView, ApiError> {
        let job = self
            .store
            .job(id)?
            .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
        if job.state.is_final() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("job {id} has already ended ({}); nothing to cancel", job.state.name()),
            ));
        }
        if self.store.cancel_queued(id)? {
            let view = self
                .view(id)?
                .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
            let removed = self.live_map().remove(id);
            if let Some(live) = removed {
                let _ = live.events.send(JobEvent::Done(Box::new(view.clone())));
            }
            return Ok(view);
        }
        if let Some(live) = self.live(id) {
            live.cancel.store(true, Ordering::Relaxed);
        }
        self.view(id)?
            .ok_or_else(|| ApiError::not_found(format!("no job {id}")))
    }

    /// The folder of job `id`'s files.
    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.config.data.join("jobs").join(id)
    }
}

/// SHA-256 of a token: comparing digests takes the same time whatever the token's length.
pub fn digest(token: &str) -> [u8; 32] {
    let hex = mmgen_pipeline::cache::sha256_hex(token.as_bytes());
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    out
}

/// Equal digests, compared without an early exit.
pub fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A worker: takes job ids off the queue until the queue closes.
fn work(studio: &Studio, receiver: &Mutex<Receiver<String>>, generator: &dyn Generate) {
    loop {
        let next = receiver.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(id) = next else { return };
        if let Err(e) = run_job(studio, &id, generator) {
            // The store failed: say so on the job if it can still be written.
            let _ = studio
                .store
                .finish(&id, JobState::Failed, &[], None, Some(&e.to_string()), 0.0);
        }
        // Out of the map (its lock released) before the view, which takes the lock again.
        let removed = studio.live_map().remove(&id);
        if let Some(live) = removed {
            if let Ok(Some(view)) = studio.view(&id) {
                let _ = live.events.send(JobEvent::Done(Box::new(view)));
            }
        }
    }
}

fn run_job(studio: &Studio, id: &str, generator: &dyn Generate) -> store::Result<()> {
    if !studio.store.start_job(id)? {
        return Ok(()); // cancelled while it waited
    }
    let Some(job) = studio.store.job(id)? else {
        return Ok(());
    };
    let live = studio.live(id).unwrap_or_else(|| studio.live_insert(id));
    let _ = live.events.send(JobEvent::State(JobState::Running));
    let start = Instant::now();
    let out = studio.job_dir(id);
    let outcome = match serde_json::from_value::<JobSpec>(job.request.clone()) {
        Ok(spec) => make(&spec, &out, generator, &live),
        Err(e) => Err(GenerateError::Failed(format!("the stored request does not parse: {e}"))),
    };
    let seconds = start.elapsed().as_secs_f64();
    match outcome {
        Ok(made) => studio
            .store
            .finish(id, JobState::Completed, &made.files, Some(&made.meta), None, seconds),
        Err(GenerateError::Cancelled) => {
            let _ = std::fs::remove_dir_all(&out);
            studio.store.finish(id, JobState::Cancelled, &[], None, None, seconds)
        }
        Err(GenerateError::Failed(why)) => {
            let _ = std::fs::remove_dir_all(&out);
            studio
                .store
                .finish(id, JobState::Failed, &[], None, Some(&why), seconds)
        }
    }
}

/// Runs the generator with the job's cancellation flag, its progress reported to the
/// live view and the subscribers; a panic fails the job instead of the worker.
fn make(
    spec: &JobSpec,
    out: &Path,
    generator: &dyn Generate,
    live: &Live,
) -> Result<crate::generator::Made, GenerateError> {
    let run = || {
        mmgen_diffusion::cancel::cancellable(live.cancel.clone(), || {
            generator.generate(spec, out, &mut |stage, done, total| {
                let progress = ProgressView {
                    stage: stage.to_string(),
                    done,
                    total,
                };
                *live.progress.lock().unwrap_or_else(|p| p.into_inner()) = progress.clone();
                let _ = live.events.send(JobEvent::Progress(progress));
            })
        })
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(outcome) => outcome,
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            Err(GenerateError::Failed(format!("the generator panicked: {why}")))
        }
    }
}
