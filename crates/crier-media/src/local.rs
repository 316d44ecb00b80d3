//! The embedded default: bytes under `{data_dir}/media/`, read and written through crier's own
//! URLs, `PUT /v1/media/uploads/{id}` and `GET /v1/media/files/{id}`, which carry no API key.
//! Their query holds `expires` (epoch ms) and `signature`: hex HMAC-SHA256 over
//! `"{METHOD}\n{id}\n{expires}"` with this store's secret (32 bytes or more, from the operator's
//! configuration or a file in the data dir the binary creates once), compared in constant time.
//! A signature for GET does not open PUT, nor one media object another.
//!
//! Uploads are written to a temporary file in the same folder and renamed into place only when
//! complete, so a reader never sees half an object and a failed upload leaves nothing behind.

use std::collections::BTreeMap;
use std::fmt;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::{Digest, Hashing, Result, StorageError, UploadTarget, valid_key};

pub const UPLOAD_PATH: &str = "/v1/media/uploads";
pub const FILE_PATH: &str = "/v1/media/files";
/// Shortest secret accepted.
pub const MIN_SECRET: usize = 32;

pub struct LocalStore {
    dir: PathBuf,
    /// The server's base URL as clients reach it (`http://127.0.0.1:8080`), no trailing slash.
    public_url: String,
    secret: Vec<u8>,
    /// Removed with everything in it when the store is dropped ([`LocalStore::temporary`]).
    temporary: bool,
}

impl fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalStore")
            .field("dir", &self.dir)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl Drop for LocalStore {
    fn drop(&mut self) {
        if self.temporary {
            // Best effort: a folder never made (nothing uploaded) or already gone is fine.
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Why a signed URL was refused (all `403`; the message says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    #[error("the URL's signature is not valid")]
    BadSignature,
    #[error("the URL has expired")]
    Expired,
}

impl LocalStore {
    /// A store in `dir` (created), signing with `secret` (at least [`MIN_SECRET`] bytes).
    pub fn open(dir: &Path, public_url: &str, secret: Vec<u8>) -> std::io::Result<Self> {
        if secret.len() < MIN_SECRET {
            return Err(std::io::Error::other(format!(
                "the media signing secret must be at least {MIN_SECRET} bytes"
            )));
        }
        // The folder is made by the first upload, so a server that never stores media (or a
        // test app) leaves nothing behind.
        Ok(Self {
            dir: dir.to_owned(),
            public_url: public_url.trim_end_matches('/').to_owned(),
            secret,
            temporary: false,
        })
    }

    /// As [`LocalStore::open`], but `dir` and everything in it is removed when the store is
    /// dropped: the store an app has before it is given the operator's (tests' apps, whose
    /// uploads would otherwise stay in the temporary directory).
    pub fn temporary(dir: &Path, public_url: &str, secret: Vec<u8>) -> std::io::Result<Self> {
        let mut store = Self::open(dir, public_url, secret)?;
        store.temporary = true;
        Ok(store)
    }

    /// The server's base URL as clients reach it.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Reads the secret from `path`, or creates it there (64 hex characters, mode 0600).
    pub fn load_or_create_secret(path: &Path) -> std::io::Result<Vec<u8>> {
        match std::fs::read_to_string(path) {
            Ok(s) => {
                let s = s.trim();
                if s.len() < MIN_SECRET {
                    return Err(std::io::Error::other(format!(
                        "{}: the media signing secret must be at least {MIN_SECRET} characters",
                        path.display()
                    )));
                }
                Ok(s.as_bytes().to_vec())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut raw = [0u8; 32];
                getrandom::fill(&mut raw).map_err(|e| std::io::Error::other(e.to_string()))?;
                let s = hex::encode(raw);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                std::io::Write::write_all(&mut opts.open(path)?, s.as_bytes())?;
                Ok(s.into_bytes())
            }
            Err(e) => Err(e),
        }
    }

    fn mac(&self, method: &str, key: &str, expires: i64) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret)
            .expect("HMAC takes keys of any length");
        mac.update(format!("{method}\n{key}\n{expires}").as_bytes());
        mac
    }

    fn sign(&self, method: &str, key: &str, expires: i64) -> String {
        hex::encode(self.mac(method, key, expires).finalize().into_bytes())
    }

    /// Checks a signed URL's parts: the signature first (constant time), then the expiry.
    pub fn verify(
        &self,
        method: &str,
        key: &str,
        expires: i64,
        signature: &str,
        now: i64,
    ) -> std::result::Result<(), UrlRefusal> {
        let sig = hex::decode(signature).map_err(|_| UrlRefusal::BadSignature)?;
        self.mac(method, key, expires)
            .verify_slice(&sig)
            .map_err(|_| UrlRefusal::BadSignature)?;
        if now >= expires {
            return Err(UrlRefusal::Expired);
        }
        Ok(())
    }

    fn url(&self, path: &str, method: &str, key: &str, expires: i64) -> String {
        format!(
            "{}{path}/{key}?expires={expires}&signature={}",
            self.public_url,
            self.sign(method, key, expires)
        )
    }

    pub fn upload_target(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        expires_at: i64,
    ) -> UploadTarget {
        UploadTarget {
            method: "PUT",
            url: self.url(UPLOAD_PATH, "PUT", key, expires_at),
            headers: BTreeMap::from([
                ("Content-Type".to_owned(), content_type.to_owned()),
                ("Content-Length".to_owned(), size.to_string()),
            ]),
        }
    }

    pub fn read_url(&self, key: &str, expires_at: i64) -> String {
        self.url(FILE_PATH, "GET", key, expires_at)
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        if !valid_key(key) {
            return Err(StorageError::Missing);
        }
        Ok(self.dir.join(key))
    }

    /// Starts writing `key`: at most `max` bytes, in place only after [`Upload::commit`].
    pub async fn begin(&self, key: &str, max: u64) -> Result<Upload> {
        let path = self.path(key)?;
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| StorageError::Unavailable(e.to_string()))?;
        let tmp = self.dir.join(format!(".{key}.{}.part", hex::encode(nonce)));
        tokio::fs::create_dir_all(&self.dir).await.map_err(io)?;
        let file = tokio::fs::File::create(&tmp).await.map_err(io)?;
        Ok(Upload {
            file: Some(file),
            tmp: Some(tmp),
            path,
            written: 0,
            max,
        })
    }

    pub async fn size(&self, key: &str) -> Result<Option<u64>> {
        match tokio::fs::metadata(self.path(key)?).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn open_file(&self, key: &str) -> Result<tokio::fs::File> {
        tokio::fs::File::open(self.path(key)?)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => StorageError::Missing,
                _ => io(e),
            })
    }

    /// The file to serve a GET from, with its length.
    pub async fn open_object(&self, key: &str) -> Result<(tokio::fs::File, u64)> {
        let f = self.open_file(key).await?;
        let len = f.metadata().await.map_err(io)?.len();
        Ok((f, len))
    }

    pub async fn read_range(&self, key: &str, start: u64, len: u64) -> Result<Bytes> {
        let mut f = self.open_file(key).await?;
        f.seek(SeekFrom::Start(start)).await.map_err(io)?;
        let mut out = Vec::new();
        f.take(len).read_to_end(&mut out).await.map_err(io)?;
        Ok(out.into())
    }

    pub async fn digest(&self, key: &str, max: u64) -> Result<Digest> {
        let mut f = self.open_file(key).await?;
        let mut h = Hashing::new(max);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                return Ok(h.finish());
            }
            h.update(&buf[..n])?;
        }
    }

    pub async fn read_all(&self, key: &str, max: u64) -> Result<Bytes> {
        let f = self.open_file(key).await?;
        let mut out = Vec::new();
        f.take(max + 1).read_to_end(&mut out).await.map_err(io)?;
        if out.len() as u64 > max {
            return Err(StorageError::TooLarge(max));
        }
        Ok(out.into())
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(e)),
        }
    }
}

fn io(e: std::io::Error) -> StorageError {
    StorageError::Unavailable(e.to_string())
}

/// An upload being written. Dropped without [`Upload::commit`], it removes its temporary file.
pub struct Upload {
    file: Option<tokio::fs::File>,
    tmp: Option<PathBuf>,
    path: PathBuf,
    written: u64,
    max: u64,
}

impl Upload {
    /// Appends a chunk; more than the cap in all is [`StorageError::TooLarge`].
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.written += chunk.len() as u64;
        if self.written > self.max {
            return Err(StorageError::TooLarge(self.max));
        }
        let f = self.file.as_mut().expect("open until commit");
        f.write_all(chunk).await.map_err(io)
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes to disk and moves the file into place (atomically replacing an earlier upload).
    pub async fn commit(mut self) -> Result<u64> {
        let mut f = self.file.take().expect("open until commit");
        f.flush().await.map_err(io)?;
        f.sync_all().await.map_err(io)?;
        drop(f);
        let tmp = self.tmp.take().expect("set until commit");
        if let Err(e) = tokio::fs::rename(&tmp, &self.path).await {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
        Ok(self.written)
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> LocalStore {
        LocalStore::open(dir, "http://h/", vec![7; 32]).unwrap()
    }

    fn parts(url: &str) -> (i64, String) {
        let u = url::Url::parse(url).unwrap();
        let q: BTreeMap<_, _> = u.query_pairs().into_owned().collect();
        (q["expires"].parse().unwrap(), q["signature"].clone())
    }

    #[test]
    fn signatures_bind_method_key_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let t = s.upload_target("med_a", "image/png", 3, 1000);
        assert!(t.url.starts_with("http://h/v1/media/uploads/med_a?"));
        let (exp, sig) = parts(&t.url);
        assert_eq!(s.verify("PUT", "med_a", exp, &sig, 999), Ok(()));
        assert_eq!(
            s.verify("PUT", "med_a", exp, &sig, 1000),
            Err(UrlRefusal::Expired)
        );
        for (m, k, e, sg) in [
            ("GET", "med_a", exp, sig.clone()),
            ("PUT", "med_b", exp, sig.clone()),
            ("PUT", "med_a", exp + 1, sig.clone()),
            ("PUT", "med_a", exp, "zz".into()),
            ("PUT", "med_a", exp, sig[..10].to_owned()),
        ] {
            assert_eq!(s.verify(m, k, e, &sg, 0), Err(UrlRefusal::BadSignature));
        }
        let other = LocalStore::open(dir.path(), "http://h", vec![8; 32]).unwrap();
        assert_eq!(
            other.verify("PUT", "med_a", exp, &sig, 0),
            Err(UrlRefusal::BadSignature)
        );
        assert!(LocalStore::open(dir.path(), "http://h", vec![1; 31]).is_err());
    }

    #[tokio::test]
    async fn uploads_are_capped_and_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let mut u = s.begin("med_a", 4).await.unwrap();
        u.write(b"abc").await.unwrap();
        assert!(matches!(
            u.write(b"de").await,
            Err(StorageError::TooLarge(4))
        ));
        drop(u);
        assert_eq!(s.size("med_a").await.unwrap(), None);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no leftovers"
        );
        let mut u = s.begin("med_a", 4).await.unwrap();
        u.write(b"abcd").await.unwrap();
        assert_eq!(
            s.size("med_a").await.unwrap(),
            None,
            "not visible before commit"
        );
        assert_eq!(u.commit().await.unwrap(), 4);
        assert_eq!(s.size("med_a").await.unwrap(), Some(4));
        assert_eq!(&s.read_range("med_a", 1, 2).await.unwrap()[..], b"bc");
        assert_eq!(&s.read_range("med_a", 3, 10).await.unwrap()[..], b"d");
        assert!(matches!(
            s.read_all("med_a", 3).await,
            Err(StorageError::TooLarge(3))
        ));
        let d = s.digest("med_a", 4).await.unwrap();
        assert_eq!(d.size, 4);
        assert_eq!(
            d.sha256,
            "88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589"
        );
        assert!(s.digest("med_a", 3).await.is_err());
        s.delete("med_a").await.unwrap();
        s.delete("med_a").await.unwrap();
        assert!(matches!(
            s.read_all("../etc", 3).await,
            Err(StorageError::Missing)
        ));
    }

    #[tokio::test]
    async fn a_temporary_store_removes_its_folder_when_dropped() {
        let parent = tempfile::tempdir().unwrap();
        let (kept, gone) = (parent.path().join("kept"), parent.path().join("gone"));
        for (dir, temporary) in [(&kept, false), (&gone, true)] {
            let s = match temporary {
                true => LocalStore::temporary(dir, "http://h", vec![7; 32]).unwrap(),
                false => store(dir),
            };
            let mut u = s.begin("med_a", 4).await.unwrap();
            u.write(b"abcd").await.unwrap();
            u.commit().await.unwrap();
            assert!(dir.join("med_a").exists());
            drop(s);
        }
        assert!(kept.join("med_a").exists());
        assert!(!gone.exists());
        // One never written to leaves nothing behind and drops quietly.
        drop(LocalStore::temporary(
            &parent.path().join("never"),
            "http://h",
            vec![7; 32],
        ));
        assert!(!parent.path().join("never").exists());
    }
}
