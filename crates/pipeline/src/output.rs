//! The output folder, written all at once: a package is made in a hidden staging
//! folder beside `out` and moved into place when complete, so a run that fails or is
//! killed leaves the previous complete package or nothing, never a mix.
//!
//! What `out` may hold beforehand: nothing, or an earlier package (replaced whole, so
//! its files never sit beside the new ones). Other files are refused before any work,
//! naming them, unless the caller overwrites; they are then kept, never deleted.

use std::path::{Path, PathBuf};

use crate::error::{PipelineError, Result};

/// What to do with an output folder that holds files of its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputPolicy {
    /// Refuse it (the default).
    #[default]
    Refuse,
    /// Write the package beside those files: files of an earlier package are
    /// replaced, the others kept.
    Overwrite,
}

/// What an output folder held when the request began.
#[derive(Debug)]
enum Previous {
    /// Absent or empty.
    Nothing,
    /// An earlier package and nothing else.
    Package,
    /// Files that are no package's (kept under [`OutputPolicy::Overwrite`]), and
    /// those of an earlier package among them.
    Foreign { package: Vec<String> },
}

/// A package being made: the staging folder beside `out`. Dropped before
/// [`Staging::commit`], it removes itself and leaves `out` as it was.
#[derive(Debug)]
pub struct Staging {
    out: PathBuf,
    dir: PathBuf,
    previous: Previous,
    committed: bool,
}

/// The prefix of the hidden folders a request makes beside `out`.
fn hidden_prefix(out: &Path) -> String {
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    format!(".{name}.mmgen-")
}

/// The files an earlier package's meta.json lists, if `dir` holds one.
fn package_files(dir: &Path) -> Option<Vec<String>> {
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("meta.json")).ok()?).ok()?;
    meta.get("mmgen_version")?;
    let files = meta.get("files")?.as_array()?;
    // Plain names only: a listed path never reaches outside the folder.
    let plain = |name: &str| {
        let mut parts = Path::new(name).components();
        matches!(
            (parts.next(), parts.next()),
            (Some(std::path::Component::Normal(_)), None)
        )
    };
    files
        .iter()
        .map(|f| f.as_str().filter(|n| plain(n)).map(str::to_string))
        .collect()
}

/// Checks `out` (a folder that is absent, empty, or holds an earlier package; other
/// files only under `policy` Overwrite) and reports what it holds.
fn inspect(out: &Path, policy: OutputPolicy) -> Result<Previous> {
    if !out.exists() {
        return Ok(Previous::Nothing);
    }
    if !out.is_dir() {
        return Err(PipelineError::Invalid(format!(
            "the output folder {} is a file; give a folder (it will hold image.png, meta.json, ...)",
            out.display()
        )));
    }
    let listing = std::fs::read_dir(out).map_err(|e| PipelineError::file(out, e))?;
    let mut names = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|e| PipelineError::file(out, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    if names.is_empty() {
        return Ok(Previous::Nothing);
    }
    let package = package_files(out).unwrap_or_default();
    let foreign: Vec<&String> = names.iter().filter(|n| !package.contains(n)).collect();
    if foreign.is_empty() {
        return Ok(Previous::Package);
    }
    if policy == OutputPolicy::Refuse {
        let shown: Vec<&str> = foreign.iter().take(5).map(|s| s.as_str()).collect();
        let more = foreign.len().saturating_sub(shown.len());
        return Err(PipelineError::Invalid(format!(
            "the output folder {} holds files that are not an mmgen package ({}{}); give an empty or new folder, or overwrite (--overwrite) to write the package beside them (they are kept)",
            out.display(),
            shown.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        )));
    }
    Ok(Previous::Foreign { package })
}

/// Checks `out` as [`Staging::begin`] does, without making anything.
pub fn check_out(out: &Path, policy: OutputPolicy) -> Result<()> {
    inspect(out, policy)?;
    // The staging folder goes beside `out`: the nearest folder that exists on the
    // way there must take new entries.
    let mut existing = parent_of(out);
    while !existing.exists() {
        existing = parent_of(&existing);
    }
    if !existing.is_dir() {
        return Err(PipelineError::file(
            &existing,
            "is a file, so the output folder cannot be made under it",
        ));
    }
    write_probe(&existing).map_err(|e| PipelineError::file(&existing, format!("cannot be written ({e})")))
}

/// The folder holding `path` (`.` for a bare name).
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether `dir` takes new files: writes and removes an empty hidden one.
pub(crate) fn write_probe(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".mmgen-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Removes staging folders that killed runs left beside `out` (their process is gone).
fn remove_abandoned(parent: &Path, prefix: &str) {
    let Ok(listing) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in listing.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let pid = rest.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
        // Only where the process table can be read (Linux): elsewhere they stay.
        if let Some(pid) = pid {
            if Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

impl Staging {
    /// Checks `out` and makes the staging folder beside it, before any work: a folder
    /// that cannot be written fails here, not after generating.
    pub fn begin(out: &Path, policy: OutputPolicy) -> Result<Staging> {
        let previous = inspect(out, policy)?;
        let parent = parent_of(out);
        std::fs::create_dir_all(&parent).map_err(|e| PipelineError::file(&parent, e))?;
        let prefix = hidden_prefix(out);
        remove_abandoned(&parent, &prefix);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = parent.join(format!("{prefix}new-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir)
            .map_err(|e| PipelineError::file(out, format!("cannot write the package beside this folder ({e})")))?;
        Ok(Staging {
            out: out.to_path_buf(),
            dir,
            previous,
            committed: false,
        })
    }

    /// Where the package's files are written until [`Self::commit`].
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Moves the finished package (`files`, meta.json among them) into `out`.
    pub fn commit(mut self, files: &[String]) -> Result<()> {
        let out = self.out.clone();
        let moved = |e: std::io::Error| PipelineError::file(&out, format!("cannot move the package into place ({e})"));
        match &self.previous {
            Previous::Nothing => {
                // Empty or absent: the staging folder becomes it.
                let _ = std::fs::remove_dir(&out);
                std::fs::rename(&self.dir, &out).map_err(moved)?;
            }
            Previous::Package => {
                // The earlier package steps aside, the new one takes its place, then
                // the earlier one goes.
                let old = self
                    .dir
                    .with_file_name(format!("{}old-{}", hidden_prefix(&out), std::process::id()));
                let _ = std::fs::remove_dir_all(&old);
                std::fs::rename(&out, &old).map_err(moved)?;
                if let Err(e) = std::fs::rename(&self.dir, &out) {
                    let _ = std::fs::rename(&old, &out);
                    return Err(moved(e));
                }
                let _ = std::fs::remove_dir_all(&old);
            }
            Previous::Foreign { package } => {
                // File by file beside the user's files, meta.json last as the mark
                // of a complete package; the earlier package's other files go.
                let mut order: Vec<&String> = files.iter().filter(|f| f.as_str() != "meta.json").collect();
                order.extend(files.iter().filter(|f| f.as_str() == "meta.json"));
                for stale in package.iter().filter(|f| !files.contains(f)) {
                    let _ = std::fs::remove_file(out.join(stale));
                }
                for name in order {
                    std::fs::rename(self.dir.join(name), out.join(name)).map_err(moved)?;
                }
                let _ = std::fs::remove_dir_all(&self.dir);
            }
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mmgen-output-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn package(dir: &Path, files: &[&str]) {
        let mut listed: Vec<&str> = files.to_vec();
        listed.push("meta.json");
        for f in files {
            std::fs::write(dir.join(f), f.as_bytes()).unwrap();
        }
        let meta = serde_json::json!({"mmgen_version": "test", "files": listed});
        std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn a_new_package_replaces_an_earlier_one_whole() {
        let out = temp("replace");
        std::fs::create_dir_all(&out).unwrap();
        package(&out, &["audio.wav", "image.png"]);
        let staging = Staging::begin(&out, OutputPolicy::Refuse).unwrap();
        package(staging.dir(), &["image.png"]);
        staging
            .commit(&["image.png".to_string(), "meta.json".to_string()])
            .unwrap();
        assert_eq!(names(&out), ["image.png", "meta.json"], "no stale audio.wav");
        assert!(
            !names(out.parent().unwrap())
                .iter()
                .any(|n| n.starts_with(&hidden_prefix(&out))),
            "no hidden folder left"
        );
        let _ = std::fs::remove_dir_all(&out);
    }

    #[test]
    fn other_files_are_refused_or_kept() {
        let out = temp("foreign");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("notes.txt"), "mine").unwrap();
        let err = Staging::begin(&out, OutputPolicy::Refuse).unwrap_err().to_string();
        assert!(err.contains("notes.txt") && err.contains("overwrite"), "{err}");
        assert_eq!(names(&out), ["notes.txt"], "untouched");
        let staging = Staging::begin(&out, OutputPolicy::Overwrite).unwrap();
        package(staging.dir(), &["image.png"]);
        staging
            .commit(&["image.png".to_string(), "meta.json".to_string()])
            .unwrap();
        assert_eq!(names(&out), ["image.png", "meta.json", "notes.txt"]);
        assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "mine");
        let _ = std::fs::remove_dir_all(&out);
    }

    #[test]
    fn an_abandoned_package_leaves_nothing() {
        let out = temp("abandoned");
        let staging = Staging::begin(&out, OutputPolicy::Refuse).unwrap();
        std::fs::write(staging.dir().join("image.png"), b"half").unwrap();
        drop(staging);
        assert!(!out.exists());
        assert!(!names(out.parent().unwrap())
            .iter()
            .any(|n| n.starts_with(&hidden_prefix(&out))));
    }

    #[test]
    fn a_file_is_not_an_output_folder() {
        let out = temp("file");
        std::fs::write(&out, "x").unwrap();
        let err = check_out(&out, OutputPolicy::Refuse).unwrap_err().to_string();
        assert!(err.contains("is a file; give a folder"), "{err}");
        let _ = std::fs::remove_file(&out);
    }
}
