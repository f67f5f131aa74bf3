//! Call recordings after upload: where the audio is kept, the job that
//! transcribes it, and the status a caller sees.
//!
//! Life of a call: `POST /v1/calls` decodes the upload (refusing bad audio at
//! once), writes it under `<data_dir>/audio/<org>/` (temp file, fsync,
//! rename), inserts the row and enqueues a `transcribe` job keyed by the call
//! id. A runner leases the job, decodes the stored file, runs Whisper on its
//! owner thread and writes the segments in the same transaction that marks
//! the job done. A failure is retried with backoff, then dead-lettered; the
//! last error shows in `GET /v1/calls/{id}`. The transcript's lines go
//! through [`crate::alerts::AlertIngest`] in that same transaction, then
//! [`analyze`] queues the post-call analysis.
//!
//! [`intake`] is the door (checks, durable audio, the row, the job); this
//! module is the transcription job; [`analyze`] the analysis job.

pub mod analyze;
pub mod intake;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::alerts::{AlertIngest, Commit, Line, Origin, Owner, Written};
use crate::config::Config;
use crate::db::Db;
use crate::db::calls::{CallRow, CallSegment, store_transcript};
use crate::error::ApiError;
use crate::jobs::{
    JobFailure, JobFuture, JobHandler, JobOutcome, JobQueue, JobRow, JobState, Lease, NewJob,
};
use crate::speech::{SpeechService, decode_stored, transcribe_options};

/// The queue call transcriptions run on.
pub const TRANSCRIBE_QUEUE: &str = "transcribe";

/// Where a call's audio is stored.
pub fn audio_path(data_dir: &Path, org_id: &str, call_id: &str, ext: &str) -> PathBuf {
    data_dir
        .join("audio")
        .join(org_id)
        .join(format!("{call_id}.{ext}"))
}

/// A file extension for the stored audio: the upload's own (if it is a plain
/// one), else the codec's.
pub fn audio_ext(filename: Option<&str>, codec: &str) -> String {
    let from_name = filename
        .and_then(|f| Path::new(f).extension())
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .filter(|e| (1..=5).contains(&e.len()) && e.chars().all(|c| c.is_ascii_alphanumeric()));
    from_name.unwrap_or_else(|| {
        match codec {
            c if c.starts_with("pcm") => "wav",
            "mp3" => "mp3",
            "aac" => "m4a",
            "flac" => "flac",
            "vorbis" | "opus" => "ogg",
            _ => "bin",
        }
        .to_string()
    })
}

/// Write `bytes` to `path` durably: a temp file beside it, fsync, rename,
/// fsync the directory. A crash leaves either nothing or the whole file.
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("audio path has no directory"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("part");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Remove files a crash left behind (kill -9 between writing a file and
/// the database row that owns it): stored audio no call points to, and
/// resumable-upload parts of uploads that are finished or unknown. Only
/// files older than `min_age` go, so an upload in flight elsewhere is safe.
/// Returns how many files were removed.
pub async fn sweep_stray_files(db: &Db, data_dir: &Path, min_age: std::time::Duration) -> usize {
    let old_enough = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= min_age)
    };
    let files_in = |dir: PathBuf| -> Vec<(String, PathBuf)> {
        let mut out = Vec::new();
        for org in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let org_name = org.file_name().to_string_lossy().into_owned();
            for f in std::fs::read_dir(org.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                out.push((org_name.clone(), f.path()));
            }
        }
        out
    };
    let mut removed = 0;
    for (_, path) in files_in(data_dir.join("audio")) {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        // `call_<id>` or `call_<id>-<suffix>` (a reserved id's own file).
        let call_id = stem.split('-').next().unwrap_or_default();
        if !call_id.starts_with("call_") || !old_enough(&path) {
            continue;
        }
        let owned = match db.get_call(call_id).await {
            Ok(call) => Path::new(&call.audio_path) == path,
            Err(crate::db::DbError::NotFound(_)) => false,
            Err(_) => true, // unsure: keep it
        };
        if !owned && std::fs::remove_file(&path).is_ok() {
            tracing::warn!(path = %path.display(), "removed stored audio no call owns (left by a crash)");
            removed += 1;
        }
    }
    for (org, path) in files_in(data_dir.join("uploads")) {
        let id = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !old_enough(&path) {
            continue;
        }
        let finished = match db.get_upload(&org, &id).await {
            Ok(u) => u.state != "receiving",
            Err(crate::db::DbError::NotFound(_)) => true,
            Err(_) => false,
        };
        if finished && std::fs::remove_file(&path).is_ok() {
            tracing::warn!(path = %path.display(), "removed the part file of a finished upload");
            removed += 1;
        }
    }
    removed
}

/// Enqueue (once) the transcription of a call and remember the job.
pub async fn enqueue_transcription(jobs: &JobQueue, call: &CallRow) -> Result<i64, ApiError> {
    let enq = jobs
        .enqueue(
            NewJob::new(TRANSCRIBE_QUEUE, json!({ "call_id": call.id }))
                .org(&call.org_id)
                .idempotency_key(format!("call:{}", call.id)),
        )
        .await?;
    if call.job_id != Some(enq.id) {
        jobs.db().set_call_job(&call.id, enq.id).await?;
    }
    Ok(enq.id)
}

/// Calls stored without a job (a crash between the insert and the enqueue)
/// get one. Run at startup.
pub async fn requeue_orphans(db: &Db, jobs: &JobQueue) -> Result<usize, ApiError> {
    let orphans = db.calls_without_job().await?;
    for call in &orphans {
        enqueue_transcription(jobs, call).await?;
    }
    Ok(orphans.len())
}

/// Where a call's transcription is, as the API reports it.
#[derive(Debug, Clone, Serialize)]
pub struct CallStatus {
    /// `queued`, `retrying`, `transcribing`, `transcribed` or `failed`.
    pub status: &'static str,
    pub attempts: i64,
    pub max_attempts: i64,
    /// Why the last attempt failed (kept after a later success too).
    pub last_error: Option<String>,
    /// When a retry is due (RFC 3339), while `retrying`.
    pub next_attempt_at: Option<String>,
}

/// The status of a call from its job row (`None`: no job yet).
pub fn call_status(job: Option<&JobRow>) -> CallStatus {
    let Some(job) = job else {
        return CallStatus {
            status: "queued",
            attempts: 0,
            max_attempts: 0,
            last_error: None,
            next_attempt_at: None,
        };
    };
    let status = match job.state {
        JobState::Queued if job.attempts > 0 => "retrying",
        JobState::Queued => "queued",
        JobState::Running => "transcribing",
        JobState::Done => "transcribed",
        JobState::Dead => "failed",
    };
    CallStatus {
        status,
        attempts: job.attempts,
        max_attempts: job.max_attempts,
        last_error: job.last_error.clone(),
        next_attempt_at: (status == "retrying").then(|| crate::time::rfc3339(job.run_at)),
    }
}

/// Transcribes calls: the handler of the `transcribe` queue.
#[derive(Debug)]
pub struct TranscribeCalls {
    pub config: Arc<Config>,
    pub speech: SpeechService,
    /// Risk-checks the transcript; alerts are written with it.
    pub screening: crate::alerts::screening::Screening,
    pub alerts: crate::alerts::AlertHub,
    pub jobs: JobQueue,
}

impl TranscribeCalls {
    async fn work(&self, queue: &JobQueue, lease: &Lease) -> Result<JobOutcome, JobFailure> {
        let call_id = lease
            .payload
            .get("call_id")
            .and_then(|v| v.as_str())
            .ok_or_else(|| JobFailure::permanent("the job has no call_id"))?
            .to_string();
        let call = match queue.db().get_call(&call_id).await {
            Ok(c) => c,
            Err(crate::db::DbError::NotFound(m)) => return Err(JobFailure::permanent(m)),
            Err(e) => return Err(JobFailure::retry(e.to_string())),
        };
        let path = PathBuf::from(&call.audio_path);
        if !path.is_file() {
            return Err(JobFailure::permanent(format!(
                "the recording's audio file is missing ({}); upload the call again",
                path.display()
            )));
        }
        let audio = decode_stored(&self.config, &path).await.map_err(|e| {
            JobFailure::permanent(format!("cannot decode the stored recording: {e}"))
        })?;
        let opts = transcribe_options(&self.config, call.language.clone());
        let transcript = self
            .speech
            .transcribe(audio, call.channel_layout, opts)
            .await
            .map_err(|e| JobFailure::retry(format!("transcription failed: {e}")))?;
        let segments: Vec<CallSegment> = transcript
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| CallSegment {
                seq: i as i64,
                start_ms: (s.start_s * 1000.0).round() as i64,
                end_ms: (s.end_s * 1000.0).round() as i64,
                channel: s.channel.map(|c| c as i64),
                speaker: call.channel_layout.speaker(s.channel),
                text: s.text.trim().to_string(),
                avg_logprob: s.avg_logprob,
            })
            .filter(|s| !s.text.is_empty())
            .collect();
        let summary = json!({
            "segments": segments.len(),
            "language": transcript.language,
            "duration_s": transcript.duration_s,
        });
        let language = transcript.language.clone();
        let model = self.speech.model().to_string();
        let ingest = self.ingest(queue);
        let lines: Vec<Line<'_>> = segments
            .iter()
            .map(|s| Line {
                origin: Origin::Call {
                    call_id: call.id.clone(),
                    segment_seq: s.seq,
                    start_ms: s.start_ms,
                    end_ms: s.end_ms,
                },
                speaker: s.speaker,
                text: &s.text,
            })
            .collect();
        let owner = Owner {
            org_id: &call.org_id,
            rep_user_id: &call.rep_user_id,
            team_id: call.team_id.as_deref(),
        };
        let checked = ingest
            .check(owner, &lines)
            .await
            .map_err(|e| JobFailure::retry(format!("risk check failed: {e}")))?;
        drop(lines);
        let commit = Commit::CompleteJob {
            queue,
            lease,
            result: Some(summary),
        };
        ingest
            .commit(
                checked,
                commit,
                Box::new(move |tx| {
                    Box::pin(async move {
                        store_transcript(tx, &call_id, &language, &model, &segments).await?;
                        Ok(Written::all(()))
                    })
                }),
            )
            .await
            .map_err(|e| JobFailure::retry(e.to_string()))?;
        // Analysis follows the transcript (its own queue; a stop in between
        // is repaired by `requeue_missing` at startup).
        if let Err(err) = crate::calls::analyze::enqueue(&self.jobs, &call).await {
            tracing::warn!(error = %err, call = %call.id, "analysis not queued yet");
        }
        Ok(JobOutcome::AlreadyCompleted)
    }
}

impl TranscribeCalls {
    /// The alert path, with this handler's engine, hub and queue.
    fn ingest<'a>(&'a self, queue: &'a JobQueue) -> AlertIngest<'a> {
        AlertIngest {
            db: queue.db(),
            screening: &self.screening,
            hub: &self.alerts,
            jobs: &self.jobs,
            config: &self.config.alerts,
        }
    }
}

impl JobHandler for TranscribeCalls {
    fn queue(&self) -> &str {
        TRANSCRIBE_QUEUE
    }

    fn run<'a>(
        &'a self,
        queue: &'a JobQueue,
        lease: &'a Lease,
        _cancel: CancellationToken,
    ) -> JobFuture<'a> {
        Box::pin(self.work(queue, lease))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_audio_keeps_a_plain_extension() {
        assert_eq!(audio_ext(Some("call.AMR"), "amr_nb"), "amr");
        assert_eq!(audio_ext(Some("../../etc/passwd"), "pcm_s16le"), "wav");
        assert_eq!(audio_ext(Some("x.tar.gz;rm"), "mp3"), "mp3");
        assert_eq!(audio_ext(None, "aac"), "m4a");
        assert_eq!(audio_ext(None, "weird"), "bin");
    }

    #[tokio::test]
    async fn files_no_row_owns_are_swept() {
        let t = crate::db::testing::sqlite().await;
        let dir = tempfile::tempdir().unwrap();
        let audio = dir.path().join("audio/org_1");
        let uploads = dir.path().join("uploads/org_1");
        std::fs::create_dir_all(&audio).unwrap();
        std::fs::create_dir_all(&uploads).unwrap();
        std::fs::write(audio.join("call_gone.wav"), b"x").unwrap();
        std::fs::write(audio.join("call_gone-1a2b3c4d.wav"), b"x").unwrap();
        std::fs::write(audio.join("notes.txt"), b"x").unwrap();
        std::fs::write(uploads.join("upl_gone.part"), b"x").unwrap();
        // Too young: kept.
        assert_eq!(
            sweep_stray_files(&t.db, dir.path(), std::time::Duration::from_secs(3600)).await,
            0
        );
        assert_eq!(
            sweep_stray_files(&t.db, dir.path(), std::time::Duration::ZERO).await,
            3
        );
        assert!(audio.join("notes.txt").exists());
        assert!(!uploads.join("upl_gone.part").exists());
    }

    #[test]
    fn a_file_is_written_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let p = audio_path(dir.path(), "org_1", "call_1", "wav");
        write_durably(&p, b"RIFF").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"RIFF");
        assert!(!p.with_extension("part").exists());
    }
}
