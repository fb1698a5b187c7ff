//! Download policies end to end (issue 3): pandav in-process in front of a test
//! upstream, spoken to over HTTP by reqwest, curl, ffmpeg/ffprobe and rclone.
//!
//! `PANDAV_TEST_LOG=1` echoes pandav's log to stderr; `PANDAV_SKIP_TOOLS=1` skips the
//! tests whose external tool is missing instead of failing them.

#[path = "download/harness.rs"]
mod harness;

#[path = "download/cache.rs"]
mod cache;
#[path = "download/matrix.rs"]
mod matrix;
#[path = "download/media.rs"]
mod media;
#[path = "download/resume.rs"]
mod resume;
#[path = "download/semantics.rs"]
mod semantics;
#[path = "download/signed.rs"]
mod signed;
#[path = "download/upstream_selftest.rs"]
mod upstream_selftest;
