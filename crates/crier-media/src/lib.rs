//! Media bytes: where they live and what they are.
//!
//! - [`Storage`]: the embedded default keeps the bytes under `{data_dir}/media/` and hands out
//!   crier's own URLs, signed with HMAC-SHA256 and expiring ([`local`]); with an S3-compatible
//!   store configured, the URLs are SigV4-presigned and the bytes never pass through crier
//!   ([`s3`]). Either way the server reads an object back only to confirm it (size, type,
//!   SHA-256) and to publish it, always with a cap.
//! - [`sniff`]: the type as the bytes say (never as declared), image dimensions and video
//!   duration.
//!
//! Object keys are media ids (`med_` and base62), so they never hold a path separator.

pub mod local;
pub mod s3;
pub mod sniff;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

/// Why a storage call failed. `Missing` is an answer (no such object), the others are faults.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("no such object")]
    Missing,
    #[error("the object is larger than the {0} bytes allowed")]
    TooLarge(u64),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// How a client sends the bytes: `PUT url` with `headers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadTarget {
    pub method: &'static str,
    pub url: String,
    pub headers: BTreeMap<String, String>,
}

/// What one streaming read of a whole object found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub size: u64,
    pub sha256: String,
}

/// Where media bytes live. Cheap to clone.
#[derive(Clone, Debug)]
pub enum Storage {
    Local(Arc<local::LocalStore>),
    S3(Arc<s3::S3Store>),
}

impl Storage {
    pub fn kind(&self) -> &'static str {
        match self {
            Storage::Local(_) => "local",
            Storage::S3(_) => "s3",
        }
    }

    /// The origin (`scheme://host[:port]`) clients send upload bytes to and read them from: what a
    /// page that uploads must be allowed to connect to.
    /// `None` when the configured URL has no such origin.
    pub fn origin(&self) -> Option<String> {
        let base = match self {
            Storage::Local(l) => l.public_url(),
            Storage::S3(s) => s.origin(),
        };
        let origin = url::Url::parse(base).ok()?.origin();
        origin.is_tuple().then(|| origin.ascii_serialization())
    }

    /// The local store, when the bytes live in the data dir (crier then serves the URLs).
    pub fn as_local(&self) -> Option<&local::LocalStore> {
        match self {
            Storage::Local(l) => Some(l),
            Storage::S3(_) => None,
        }
    }

    /// Where the client sends the bytes of `key`: `size` bytes of `content_type`, until
    /// `expires_at` (epoch ms; `now` is when it is signed).
    pub fn upload_target(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        now: i64,
        expires_at: i64,
    ) -> UploadTarget {
        match self {
            Storage::Local(l) => l.upload_target(key, content_type, size, expires_at),
            Storage::S3(s) => s.upload_target(key, content_type, size, now, expires_at),
        }
    }

    /// A URL that reads `key` until `expires_at`.
    pub fn read_url(&self, key: &str, now: i64, expires_at: i64) -> String {
        match self {
            Storage::Local(l) => l.read_url(key, expires_at),
            Storage::S3(s) => s.presign("GET", key, &[], now, expires_at),
        }
    }

    /// The object's size, `None` when there is none.
    pub async fn size(&self, key: &str) -> Result<Option<u64>> {
        match self {
            Storage::Local(l) => l.size(key).await,
            Storage::S3(s) => s.size(key).await,
        }
    }

    /// Up to `len` bytes from `start` (fewer at the end of the object).
    pub async fn read_range(&self, key: &str, start: u64, len: u64) -> Result<Bytes> {
        match self {
            Storage::Local(l) => l.read_range(key, start, len).await,
            Storage::S3(s) => s.read_range(key, start, len).await,
        }
    }

    /// Size and SHA-256 of the whole object, read as a stream; more than `max` bytes is
    /// [`StorageError::TooLarge`].
    pub async fn digest(&self, key: &str, max: u64) -> Result<Digest> {
        match self {
            Storage::Local(l) => l.digest(key, max).await,
            Storage::S3(s) => s.digest(key, max).await,
        }
    }

    /// The whole object, at most `max` bytes.
    pub async fn read_all(&self, key: &str, max: u64) -> Result<Bytes> {
        match self {
            Storage::Local(l) => l.read_all(key, max).await,
            Storage::S3(s) => s.read_all(key, max).await,
        }
    }

    /// Writes the whole object (crier's own writes, such as a media import; clients upload
    /// through [`Storage::upload_target`]).
    pub async fn put(&self, key: &str, content_type: &str, bytes: Bytes) -> Result<()> {
        match self {
            Storage::Local(l) => {
                let mut upload = l.begin(key, bytes.len() as u64).await?;
                upload.write(&bytes).await?;
                upload.commit().await.map(|_| ())
            }
            Storage::S3(s) => s.put(key, content_type, bytes).await,
        }
    }

    /// Deletes the object; deleting one that is not there succeeds.
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self {
            Storage::Local(l) => l.delete(key).await,
            Storage::S3(s) => s.delete(key).await,
        }
    }
}

/// Incremental SHA-256 and length over chunks, with a cap.
pub(crate) struct Hashing {
    hasher: sha2::Sha256,
    size: u64,
    max: u64,
}

impl Hashing {
    pub(crate) fn new(max: u64) -> Self {
        use sha2::Digest as _;
        Self {
            hasher: sha2::Sha256::new(),
            size: 0,
            max,
        }
    }

    pub(crate) fn update(&mut self, chunk: &[u8]) -> Result<()> {
        use sha2::Digest as _;
        self.size += chunk.len() as u64;
        if self.size > self.max {
            return Err(StorageError::TooLarge(self.max));
        }
        self.hasher.update(chunk);
        Ok(())
    }

    pub(crate) fn finish(self) -> Digest {
        use sha2::Digest as _;
        Digest {
            size: self.size,
            sha256: hex::encode(self.hasher.finalize()),
        }
    }
}

/// Whether `key` is safe as a file name and an object key: a media id's shape.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// What the bytes of an uploaded object are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    pub size: u64,
    pub sha256: String,
    /// The accepted type the bytes are; `None`: not one crier takes.
    pub content_type: Option<&'static str>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_ms: Option<u64>,
}

impl Storage {
    /// Reads the object once as a stream for its size and SHA-256 (more than `max` bytes is
    /// [`StorageError::TooLarge`]), then its first bytes for the type and an image's
    /// dimensions, and for MP4/QuickTime the movie header wherever it is.
    pub async fn inspect(&self, key: &str, max: u64) -> Result<Inspection> {
        let digest = self.digest(key, max).await?;
        let head = self
            .read_range(key, 0, digest.size.min(sniff::HEAD_BYTES))
            .await?;
        let content_type = sniff::content_type(&head);
        let mut out = Inspection {
            size: digest.size,
            sha256: digest.sha256,
            content_type,
            width: None,
            height: None,
            duration_ms: None,
        };
        match content_type {
            Some("video/mp4" | "video/quicktime") => {
                out.duration_ms = self.mp4_duration(key, out.size).await?;
            }
            Some("video/webm") => out.duration_ms = sniff::webm_duration(&head),
            Some(_) => {
                if let Some((w, h)) = sniff::dimensions(&head) {
                    out.width = Some(w);
                    out.height = Some(h);
                }
            }
            None => {}
        }
        Ok(out)
    }

    /// Walks the top-level boxes (a bounded number) to `moov`, reads it (bounded) and its
    /// `mvhd`.
    async fn mp4_duration(&self, key: &str, size: u64) -> Result<Option<u64>> {
        let mut at = 0u64;
        for _ in 0..sniff::MAX_BOXES {
            if at + 8 > size {
                return Ok(None);
            }
            let h = self.read_range(key, at, 16).await?;
            let Some((len, kind, header)) = sniff::box_header(&h, size - at) else {
                return Ok(None);
            };
            if &kind == b"moov" {
                let body = len - header;
                if body > sniff::MAX_MOOV_BYTES {
                    return Ok(None);
                }
                let moov = self.read_range(key, at + header, body).await?;
                return Ok(sniff::mvhd_duration(&moov));
            }
            at = match at.checked_add(len) {
                Some(n) => n,
                None => return Ok(None),
            };
        }
        Ok(None)
    }
}
