//! The JSONL sink: one activity per line, appended to a file (fsynced per write) or written
//! to standard output (`-`). For debugging and piping.

use std::io::Write;
use std::path::PathBuf;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{AttemptOutcome, Sink};
use crate::activity::Activity;

/// Where lines go.
#[derive(Debug)]
enum Target {
    Stdout,
    File(std::fs::File),
}

/// Appends activities as JSON lines.
#[derive(Debug)]
pub struct JsonlSink {
    target: Arc<Mutex<Target>>,
    path: Option<PathBuf>,
}

impl JsonlSink {
    /// Opens `path` for appending (created when missing), or standard output for `-`.
    ///
    /// # Errors
    /// A message when the file cannot be opened.
    pub fn open(path: &str) -> Result<Self, String> {
        if path == "-" {
            return Ok(Self {
                target: Arc::new(Mutex::new(Target::Stdout)),
                path: None,
            });
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open {path}: {e}"))?;
        Ok(Self {
            target: Arc::new(Mutex::new(Target::File(file))),
            path: Some(PathBuf::from(path)),
        })
    }

    /// The file written, `None` for standard output.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }
}

#[async_trait]
impl Sink for JsonlSink {
    async fn send(&self, activity: &Activity) -> AttemptOutcome {
        let mut line = match super::body(activity) {
            Ok(b) => b,
            Err(e) => return AttemptOutcome::error(format!("cannot serialize: {e}")),
        };
        line.push(b'\n');
        let target = Arc::clone(&self.target);
        let result = tokio::task::spawn_blocking(move || {
            let mut target = target
                .lock()
                .map_err(|_| std::io::Error::other("a previous write panicked"))?;
            match &mut *target {
                Target::Stdout => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&line).and_then(|()| out.flush())
                }
                Target::File(f) => f.write_all(&line).and_then(|()| f.sync_data()),
            }
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        match result {
            Ok(()) => AttemptOutcome::Delivered,
            Err(e) => AttemptOutcome::error(format!("write failed: {e}")),
        }
    }
}
