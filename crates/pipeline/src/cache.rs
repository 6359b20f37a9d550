//! A content-addressed cache of finished packages: a repeated request returns the
//! same bytes at once instead of running the models again.
//!
//! The key is a SHA-256 over everything that decides the output: the model weights'
//! digest, the prompt's *text embedding* (so prompts the encoder cannot tell apart,
//! such as the same words with other spacing, share an entry), the negative prompt's,
//! every setting, init and mask pixels, the seed and the modalities. An entry is a
//! folder named by the key holding the media files; it is written to a temporary
//! folder and renamed, so a crash never leaves a half entry that later reads as a hit.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{PipelineError, Result};

/// Builds a cache key from labelled parts (the labels and lengths are hashed too, so
/// parts cannot run into each other).
pub struct KeyBuilder(Sha256);

impl KeyBuilder {
    /// A key of format `version` (bump it when the package format changes).
    pub fn new(version: &str) -> KeyBuilder {
        let mut hasher = Sha256::new();
        hasher.update(version.as_bytes());
        KeyBuilder(hasher)
    }

    /// Adds one part.
    pub fn part(mut self, label: &str, bytes: &[u8]) -> KeyBuilder {
        for piece in [label.as_bytes(), bytes] {
            self.0.update((piece.len() as u64).to_le_bytes());
            self.0.update(piece);
        }
        self
    }

    /// The key, as 64 hex digits.
    pub fn finish(self) -> String {
        hex(&self.0.finalize())
    }
}

/// SHA-256 of `bytes` as hex (weights digests in `meta.json`).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The files of an entry: (name, bytes), sorted by name.
pub type EntryFiles = Vec<(String, Vec<u8>)>;

/// A cache folder.
#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    /// `$MMGEN_CACHE`, else `$XDG_CACHE_HOME/mmgen`, else `$HOME/.cache/mmgen`.
    pub fn default_dir() -> Option<PathBuf> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        var("MMGEN_CACHE")
            .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("mmgen")))
            .or_else(|| var("HOME").map(|d| d.join(".cache").join("mmgen")))
    }

    /// Its folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The files of entry `key` (name, bytes), or None on a miss.
    pub fn get(&self, key: &str) -> Result<Option<EntryFiles>> {
        let entry = self.dir.join(key);
        let listing = match std::fs::read_dir(&entry) {
            Ok(listing) => listing,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(PipelineError::file(&entry, e)),
        };
        let mut files = Vec::new();
        for item in listing {
            let path = item.map_err(|e| PipelineError::file(&entry, e))?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let bytes = std::fs::read(&path).map_err(|e| PipelineError::file(&path, e))?;
            files.push((name, bytes));
        }
        files.sort();
        Ok(Some(files))
    }

    /// Stores `files` as entry `key` (atomically: a temporary folder, then a rename).
    pub fn put(&self, key: &str, files: &[(String, Vec<u8>)]) -> Result<()> {
        let entry = self.dir.join(key);
        let staging = self.dir.join(format!(".{key}.{}.tmp", std::process::id()));
        std::fs::create_dir_all(&staging).map_err(|e| PipelineError::file(&staging, e))?;
        for (name, bytes) in files {
            let path = staging.join(name);
            std::fs::write(&path, bytes).map_err(|e| PipelineError::file(&path, e))?;
        }
        match std::fs::rename(&staging, &entry) {
            Ok(()) => Ok(()),
            // Another process stored the same entry first: the same bytes, keep theirs.
            Err(_) if entry.is_dir() => {
                let _ = std::fs::remove_dir_all(&staging);
                Ok(())
            }
            Err(e) => Err(PipelineError::file(&entry, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_every_part_and_its_boundaries() {
        let key = |a: &[u8], b: &[u8]| KeyBuilder::new("v1").part("a", a).part("b", b).finish();
        assert_eq!(key(b"xy", b"z"), key(b"xy", b"z"));
        assert_ne!(key(b"xy", b"z"), key(b"x", b"yz"));
        assert_ne!(
            key(b"xy", b"z"),
            KeyBuilder::new("v2").part("a", b"xy").part("b", b"z").finish()
        );
        assert_eq!(key(b"", b"").len(), 64);
    }

    #[test]
    fn stores_and_returns_entries() {
        let dir = std::env::temp_dir().join(format!("mmgen-cache-{}", std::process::id()));
        let cache = Cache::new(&dir);
        assert!(cache.get("k").unwrap().is_none());
        let files = vec![
            ("a.png".to_string(), vec![1, 2, 3]),
            ("b.txt".to_string(), b"hi".to_vec()),
        ];
        cache.put("k", &files).unwrap();
        assert_eq!(cache.get("k").unwrap().unwrap(), files);
        cache.put("k", &files).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
