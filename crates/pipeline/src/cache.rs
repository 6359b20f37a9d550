//! A content-addressed cache of finished packages: a repeated request returns the
//! same bytes at once instead of running the models again.
//!
//! The key is a SHA-256 over everything that decides the output: every file of each
//! model folder that is read (config, tokenizer, weights), the prompt's text and its
//! embedding, the negative prompt's, every setting, init and mask pixels, the seed and
//! the modalities. An entry is a folder named by the key holding the media files and
//! a manifest of their digests; it is written to a temporary folder and renamed, so a
//! crash never leaves a half entry, and it is verified on every read: an entry whose
//! files were changed or lost is dropped and made again.

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

/// The manifest in every entry: each file's SHA-256.
const MANIFEST: &str = "entry.json";

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    /// A verified entry.
    Hit(EntryFiles),
    /// No entry.
    Miss,
    /// An entry that failed verification (why), now removed.
    Broken(String),
}

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

    /// Entry `key`, verified against its manifest. A broken entry is removed (a
    /// failed removal only means it is checked again next time).
    pub fn get(&self, key: &str) -> Lookup {
        let entry = self.dir.join(key);
        if !entry.exists() {
            return Lookup::Miss;
        }
        match read_verified(&entry) {
            Ok(files) => Lookup::Hit(files),
            Err(why) => {
                let _ = std::fs::remove_dir_all(&entry);
                Lookup::Broken(format!(
                    "cache entry {}: {why}; dropped, and made again",
                    entry.display()
                ))
            }
        }
    }

    /// Whether the cache folder can be written: checked before any work, so that a
    /// cache that cannot store the result is known (and only warned about) up front.
    pub fn check_writable(&self) -> Result<()> {
        let fail =
            |e: std::io::Error| PipelineError::file(&self.dir, format!("the cache folder cannot be written ({e})"));
        if self.dir.exists() && !self.dir.is_dir() {
            return Err(PipelineError::file(&self.dir, "the cache is a file, not a folder"));
        }
        std::fs::create_dir_all(&self.dir).map_err(fail)?;
        crate::output::write_probe(&self.dir).map_err(fail)?;
        Ok(())
    }

    /// Stores `files` as entry `key` (atomically: a temporary folder, then a rename),
    /// with their digests.
    pub fn put(&self, key: &str, files: &[(String, Vec<u8>)]) -> Result<()> {
        let entry = self.dir.join(key);
        let staging = self.dir.join(format!(".{key}.{}.tmp", std::process::id()));
        std::fs::create_dir_all(&staging).map_err(|e| PipelineError::file(&staging, e))?;
        let mut digests = serde_json::Map::new();
        for (name, bytes) in files {
            let path = staging.join(name);
            std::fs::write(&path, bytes).map_err(|e| PipelineError::file(&path, e))?;
            digests.insert(name.clone(), sha256_hex(bytes).into());
        }
        let manifest = staging.join(MANIFEST);
        let text = serde_json::json!({ "sha256": digests }).to_string();
        std::fs::write(&manifest, text).map_err(|e| PipelineError::file(&manifest, e))?;
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

/// The files of an entry folder, each checked against the manifest; why not, else.
fn read_verified(entry: &Path) -> std::result::Result<EntryFiles, String> {
    let manifest = std::fs::read(entry.join(MANIFEST)).map_err(|e| format!("no readable {MANIFEST} ({e})"))?;
    let manifest: serde_json::Value =
        serde_json::from_slice(&manifest).map_err(|e| format!("{MANIFEST} is not JSON ({e})"))?;
    let digests = manifest
        .get("sha256")
        .and_then(|d| d.as_object())
        .ok_or_else(|| format!("{MANIFEST} lists no digests"))?;
    let listing = std::fs::read_dir(entry).map_err(|e| e.to_string())?;
    let mut present = Vec::new();
    for item in listing {
        let name = item
            .map_err(|e| e.to_string())?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name != MANIFEST {
            present.push(name);
        }
    }
    if let Some(extra) = present.iter().find(|n| !digests.contains_key(*n)) {
        return Err(format!("{extra} is not in its manifest"));
    }
    let mut files = Vec::new();
    for (name, digest) in digests {
        let path = entry.join(name);
        let bytes = std::fs::read(&path).map_err(|e| format!("{name} cannot be read ({e})"))?;
        if Some(sha256_hex(&bytes).as_str()) != digest.as_str() {
            return Err(format!("{name} does not match its digest"));
        }
        files.push((name.clone(), bytes));
    }
    files.sort();
    Ok(files)
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
        assert!(matches!(cache.get("k"), Lookup::Miss));
        let files = vec![
            ("a.png".to_string(), vec![1, 2, 3]),
            ("b.txt".to_string(), b"hi".to_vec()),
        ];
        cache.check_writable().unwrap();
        cache.put("k", &files).unwrap();
        assert!(matches!(cache.get("k"), Lookup::Hit(f) if f == files));
        cache.put("k", &files).unwrap();
        // A changed, a lost and an added file each break the entry, which then goes.
        let breakages: [&dyn Fn(&Path); 3] = [
            &|e| std::fs::write(e.join("a.png"), [1, 2]).unwrap(),
            &|e| std::fs::remove_file(e.join("b.txt")).unwrap(),
            &|e| std::fs::write(e.join("c.gif"), [0]).unwrap(),
        ];
        for (i, breakage) in breakages.iter().enumerate() {
            cache.put("k", &files).unwrap();
            breakage(&dir.join("k"));
            match cache.get("k") {
                Lookup::Broken(why) => assert!(why.contains("dropped"), "{why}"),
                other => panic!("breakage {i}: {other:?}"),
            }
            assert!(matches!(cache.get("k"), Lookup::Miss), "breakage {i}: removed");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
