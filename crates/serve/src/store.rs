//! The studio's state in SQLite: jobs, sessions with their turns, and feedback. Files
//! live on disk beside it (`DATA/jobs/ID/`). The database is in WAL mode, so that a
//! server killed at any moment loses no committed row; [`Store::recover`] then marks
//! the jobs that were running as failed and hands back those still queued.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use crate::jobs::{JobRecord, JobState};

/// Why a job that was running when the server stopped is failed on restart.
pub const STOPPED_WHILE_RUNNING: &str = "the server stopped while this job was running; submit it again to make it";

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("the studio's database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Another request added this turn first.
    #[error("turn {turn} of session {session} was added by another request at the same time; send it again")]
    TurnTaken {
        /// The session.
        session: String,
        /// The turn number.
        turn: u32,
    },
    /// A stored JSON column did not parse.
    #[error("the studio's database holds a bad record: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result with [`StoreError`].
pub type Result<T> = std::result::Result<T, StoreError>;

/// A session as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionRecord {
    /// Its id.
    pub id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// The seed of every turn, so that an edit re-renders with the same noise.
    pub seed: u64,
    /// Pinned style name, if any.
    pub style: Option<String>,
    /// Pinned background name, if any.
    pub background: Option<String>,
}

/// One turn of a session.
#[derive(Clone, Debug, PartialEq)]
pub struct TurnRecord {
    /// 1 for the first turn.
    pub turn: u32,
    /// What the user wrote.
    pub instruction: String,
    /// The job that made it.
    pub job_id: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// One piece of feedback.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedbackRecord {
    /// The job it is about.
    pub job_id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// "up" or "down".
    pub thumbs: Option<String>,
    /// 1 to 5.
    pub rating: Option<u8>,
    /// Free text.
    pub comment: Option<String>,
}

/// The database behind one lock: every query is a few rows on a local file.
pub struct Store {
    db: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    state TEXT NOT NULL,
    request TEXT NOT NULL,
    session_id TEXT,
    turn INTEGER,
    files TEXT NOT NULL DEFAULT '[]',
    meta TEXT,
    error TEXT,
    started_at INTEGER,
    finished_at INTEGER,
    seconds REAL
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    style TEXT,
    background TEXT
);
CREATE TABLE IF NOT EXISTS turns (
    session_id TEXT NOT NULL,
    turn INTEGER NOT NULL,
    instruction TEXT NOT NULL,
    job_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (session_id, turn)
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    thumbs TEXT,
    rating INTEGER,
    comment TEXT
);
";

const JOB_COLUMNS: &str =
    "id, created_at, state, request, session_id, turn, files, meta, error, started_at, finished_at, seconds";

fn job_from_row(row: &rusqlite::Row) -> rusqlite::Result<(JobRecord, String, String, Option<String>)> {
    let state: String = row.get(2)?;
    Ok((
        JobRecord {
            id: row.get(0)?,
            created_at: row.get(1)?,
            state: JobState::from_name(&state).unwrap_or(JobState::Failed),
            request: serde_json::Value::Null,
            session_id: row.get(4)?,
            turn: row.get(5)?,
            files: Vec::new(),
            meta: None,
            error: row.get(8)?,
            started_at: row.get(9)?,
            finished_at: row.get(10)?,
            seconds: row.get(11)?,
        },
        row.get(3)?,
        row.get(6)?,
        row.get(7)?,
    ))
}

fn finish_job(parts: (JobRecord, String, String, Option<String>)) -> Result<JobRecord> {
    let (mut job, request, files, meta) = parts;
    job.request = serde_json::from_str(&request)?;
    job.files = serde_json::from_str(&files)?;
    job.meta = meta.map(|m| serde_json::from_str(&m)).transpose()?;
    Ok(job)
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Store {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        let db = Connection::open(path)?;
        // WAL with NORMAL sync survives a killed process (not a power cut) and lets
        // readers run beside the writer.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        db.execute_batch(SCHEMA)?;
        Ok(Store { db: Mutex::new(db) })
    }

    /// An in-memory database (tests).
    pub fn in_memory() -> Result<Store> {
        let db = Connection::open_in_memory()?;
        db.execute_batch(SCHEMA)?;
        Ok(Store { db: Mutex::new(db) })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (every write is one
        // statement), so a poisoned lock is still usable.
        self.db.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// After a restart: jobs that were running are failed with
    /// [`STOPPED_WHILE_RUNNING`]; the ids of those still queued come back, oldest
    /// first, to be queued again.
    pub fn recover(&self) -> Result<Vec<String>> {
        let db = self.db();
        db.execute(
            "UPDATE jobs SET state = 'failed', error = ?1, finished_at = ?2 WHERE state = 'running'",
            params![STOPPED_WHILE_RUNNING, now()],
        )?;
        let mut query = db.prepare("SELECT id FROM jobs WHERE state = 'queued' ORDER BY created_at, rowid")?;
        let ids = query
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(ids)
    }

    /// Stores a new queued job.
    pub fn insert_job(&self, job: &JobRecord) -> Result<()> {
        insert_job_on(&self.db(), job)
    }

    /// A job by id.
    pub fn job(&self, id: &str) -> Result<Option<JobRecord>> {
        let db = self.db();
        let parts = db
            .query_row(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
                [id],
                job_from_row,
            )
            .optional()?;
        parts.map(finish_job).transpose()
    }

    /// Moves a queued job to running; false when it was no longer queued (cancelled).
    pub fn start_job(&self, id: &str) -> Result<bool> {
        let changed = self.db().execute(
            "UPDATE jobs SET state = 'running', started_at = ?2 WHERE id = ?1 AND state = 'queued'",
            params![id, now()],
        )?;
        Ok(changed == 1)
    }

    /// Marks a queued job cancelled; false when it was not queued.
    pub fn cancel_queued(&self, id: &str) -> Result<bool> {
        let changed = self.db().execute(
            "UPDATE jobs SET state = 'cancelled', finished_at = ?2 WHERE id = ?1 AND state = 'queued'",
            params![id, now()],
        )?;
        Ok(changed == 1)
    }

    /// Records how a job ended.
    pub fn finish(
        &self,
        id: &str,
        state: JobState,
        files: &[String],
        meta: Option<&serde_json::Value>,
        error: Option<&str>,
        seconds: f64,
    ) -> Result<()> {
        let meta = meta.map(serde_json::to_string).transpose()?;
        self.db().execute(
            "UPDATE jobs SET state = ?2, files = ?3, meta = ?4, error = ?5, finished_at = ?6, seconds = ?7 WHERE id = ?1",
            params![id, state.name(), serde_json::to_string(files)?, meta, error, now(), seconds],
        )?;
        Ok(())
    }

    /// Mean seconds of the last completed jobs (None before the first).
    pub fn mean_job_seconds(&self) -> Result<Option<f64>> {
        Ok(self.db().query_row(
            "SELECT AVG(seconds) FROM (SELECT seconds FROM jobs WHERE state = 'completed' AND seconds IS NOT NULL ORDER BY finished_at DESC LIMIT 20)",
            [],
            |row| row.get(0),
        )?)
    }

    /// Stores a new session.
    pub fn insert_session(&self, session: &SessionRecord) -> Result<()> {
        self.db().execute(
            "INSERT INTO sessions (id, created_at, seed, style, background) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                session.id,
                session.created_at,
                session.seed as i64,
                session.style,
                session.background
            ],
        )?;
        Ok(())
    }

    /// A session by id.
    pub fn session(&self, id: &str) -> Result<Option<SessionRecord>> {
        Ok(self
            .db()
            .query_row(
                "SELECT id, created_at, seed, style, background FROM sessions WHERE id = ?1",
                [id],
                |row| {
                    Ok(SessionRecord {
                        id: row.get(0)?,
                        created_at: row.get(1)?,
                        seed: row.get::<_, i64>(2)? as u64,
                        style: row.get(3)?,
                        background: row.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// Replaces a session's pinned style and background.
    pub fn pin(&self, id: &str, style: Option<&str>, background: Option<&str>) -> Result<()> {
        self.db().execute(
            "UPDATE sessions SET style = ?2, background = ?3 WHERE id = ?1",
            params![id, style, background],
        )?;
        Ok(())
    }

    /// A session's turns, first first.
    pub fn turns(&self, session_id: &str) -> Result<Vec<TurnRecord>> {
        let db = self.db();
        let mut query =
            db.prepare("SELECT turn, instruction, job_id, created_at FROM turns WHERE session_id = ?1 ORDER BY turn")?;
        let turns = query
            .query_map([session_id], |row| {
                Ok(TurnRecord {
                    turn: row.get(0)?,
                    instruction: row.get(1)?,
                    job_id: row.get(2)?,
                    created_at: row.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(turns)
    }

    /// Stores a turn and its queued job together.
    pub fn insert_turn(&self, session_id: &str, turn: &TurnRecord, job: &JobRecord) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction()?;
        insert_job_on(&tx, job)?;
        let inserted = tx.execute(
            "INSERT INTO turns (session_id, turn, instruction, job_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![session_id, turn.turn, turn.instruction, turn.job_id, turn.created_at],
        );
        match inserted {
            Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                return Err(StoreError::TurnTaken {
                    session: session_id.to_string(),
                    turn: turn.turn,
                })
            }
            other => other?,
        };
        tx.commit()?;
        Ok(())
    }

    /// Removes a job that could not be queued, and the turn it was made for.
    pub fn delete_job(&self, id: &str) -> Result<()> {
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute("DELETE FROM turns WHERE job_id = ?1", [id])?;
        tx.execute("DELETE FROM jobs WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    /// Stores feedback on a job.
    pub fn insert_feedback(&self, feedback: &FeedbackRecord) -> Result<()> {
        self.db().execute(
            "INSERT INTO feedback (job_id, created_at, thumbs, rating, comment) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                feedback.job_id,
                feedback.created_at,
                feedback.thumbs,
                feedback.rating,
                feedback.comment
            ],
        )?;
        Ok(())
    }

    /// Every piece of feedback with its job, oldest first.
    pub fn feedback(&self) -> Result<Vec<(FeedbackRecord, JobRecord)>> {
        let db = self.db();
        let mut query = db.prepare("SELECT job_id, created_at, thumbs, rating, comment FROM feedback ORDER BY id")?;
        let rows = query
            .query_map([], |row| {
                Ok(FeedbackRecord {
                    job_id: row.get(0)?,
                    created_at: row.get(1)?,
                    thumbs: row.get(2)?,
                    rating: row.get(3)?,
                    comment: row.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        drop(query);
        drop(db);
        let mut out = Vec::with_capacity(rows.len());
        for feedback in rows {
            if let Some(job) = self.job(&feedback.job_id)? {
                out.push((feedback, job));
            }
        }
        Ok(out)
    }
}

/// Inserts a queued job on `db` (a connection, or a transaction through its deref).
fn insert_job_on(db: &rusqlite::Connection, job: &JobRecord) -> Result<()> {
    db.execute(
        "INSERT INTO jobs (id, created_at, state, request, session_id, turn) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            job.id,
            job.created_at,
            job.state.name(),
            serde_json::to_string(&job.request)?,
            job.session_id,
            job.turn
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, state: JobState) -> JobRecord {
        JobRecord {
            id: id.into(),
            created_at: now(),
            state,
            request: serde_json::json!({"prompt": "a red star"}),
            session_id: None,
            turn: None,
            files: vec![],
            meta: None,
            error: None,
            started_at: None,
            finished_at: None,
            seconds: None,
        }
    }

    #[test]
    fn recovery_fails_running_jobs_and_returns_queued_ones() {
        let dir = std::env::temp_dir().join(format!("mmgen-store-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("studio.sqlite");
        {
            let store = Store::open(&path).unwrap();
            for (id, state) in [
                ("a", JobState::Queued),
                ("b", JobState::Queued),
                ("c", JobState::Queued),
            ] {
                store.insert_job(&job(id, state)).unwrap();
            }
            assert!(store.start_job("a").unwrap());
            assert!(store.start_job("c").unwrap());
            store
                .finish("c", JobState::Completed, &["image.png".into()], None, None, 1.5)
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.recover().unwrap(), vec!["b".to_string()]);
        let a = store.job("a").unwrap().unwrap();
        assert_eq!(a.state, JobState::Failed);
        assert_eq!(a.error.as_deref(), Some(STOPPED_WHILE_RUNNING));
        let c = store.job("c").unwrap().unwrap();
        assert_eq!((c.state, c.files), (JobState::Completed, vec!["image.png".to_string()]));
        assert_eq!(store.mean_job_seconds().unwrap(), Some(1.5));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_cancelled_queued_job_is_not_started() {
        let store = Store::in_memory().unwrap();
        store.insert_job(&job("a", JobState::Queued)).unwrap();
        assert!(store.cancel_queued("a").unwrap());
        assert!(!store.start_job("a").unwrap());
        assert!(!store.cancel_queued("a").unwrap());
        assert_eq!(store.job("a").unwrap().unwrap().state, JobState::Cancelled);
    }
}
