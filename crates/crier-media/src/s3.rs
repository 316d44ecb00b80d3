//! Any S3-compatible store, through SigV4 query-presigned URLs (AWS Signature Version 4,
//! `UNSIGNED-PAYLOAD`). The client PUTs and GETs the bytes at the store itself; crier's own
//! reads (HEAD for the size, ranged GETs for sniffing, a streamed GET for the SHA-256, the
//! bytes for publishing) and deletes use short-lived presigned URLs of the same kind, so one
//! signer serves every call.
//!
//! Why not `object_store` or the AWS SDK: presigning is a page of HMAC code over crates the
//! workspace already has (hmac, sha2), it keeps one reqwest in the build, and the tests run
//! it against `s3s-fs`, which checks every signature.
//!
//! The presigned PUT signs `content-type` and `content-length`, so the store refuses a body of
//! another declared type or length. The store's endpoint is the operator's configuration, not a
//! user's, so its calls do not pass the SSRF guard; they have timeouts and capped reads.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest as _, Sha256};

use crate::{Digest, Hashing, Result, StorageError, UploadTarget, valid_key};

/// Where the store is and how to sign for it.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:9000`.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// `{endpoint}/{bucket}/{key}` (true) or `{bucket}.{endpoint host}/{key}` (false).
    pub path_style: bool,
    /// Prepended to every object key (`media/`), may be empty.
    pub prefix: String,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("path_style", &self.path_style)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

pub struct S3Store {
    config: S3Config,
    /// Scheme, host and port of the URLs, and the path before the key.
    origin: String,
    host: String,
    base_path: String,
    http: reqwest::Client,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What every server-side call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long crier's own presigned URLs live.
const OWN_URL_MS: i64 = 5 * 60 * 1000;
/// The longest a SigV4 presigned URL may live.
const MAX_EXPIRES_S: i64 = 7 * 24 * 3600;

impl S3Store {
    pub fn new(config: S3Config) -> Result<Self, String> {
        let endpoint =
            url::Url::parse(&config.endpoint).map_err(|e| format!("media.s3.endpoint: {e}"))?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err("media.s3.endpoint must be an http or https URL".into());
        }
        let host = endpoint
            .host_str()
            .ok_or("media.s3.endpoint has no host")?
            .to_owned();
        if config.bucket.is_empty()
            || !config
                .bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Err("media.s3.bucket must be a bucket name (a-z, 0-9, '-', '.')".into());
        }
        if config.access_key.is_empty() || config.secret_key.is_empty() || config.region.is_empty()
        {
            return Err("media.s3 needs region, access_key and secret_key".into());
        }
        let port = endpoint.port().map(|p| format!(":{p}")).unwrap_or_default();
        let (host, base_path) = if config.path_style {
            (format!("{host}{port}"), format!("/{}", config.bucket))
        } else {
            (format!("{}.{host}{port}", config.bucket), String::new())
        };
        let origin = format!("{}://{host}", endpoint.scheme());
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("media.s3: {e}"))?;
        Ok(Self {
            config,
            origin,
            host,
            base_path,
            http,
        })
    }

    /// Where the store's URLs point (`scheme://host[:port]`, the bucket's host when virtual-hosted).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn object_path(&self, key: &str) -> String {
        format!(
            "{}/{}",
            self.base_path,
            encode(&format!("{}{key}", self.config.prefix), false)
        )
    }

    /// A presigned URL for `method` on `key`, with `headers` (lower-case names) signed: the
    /// request must carry exactly them.
    pub fn presign(
        &self,
        method: &str,
        key: &str,
        headers: &[(&str, String)],
        now: i64,
        expires_at: i64,
    ) -> String {
        let at = jiff::Timestamp::from_millisecond(now).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let amz_date = at.strftime("%Y%m%dT%H%M%SZ").to_string();
        let date = &amz_date[..8];
        let scope = format!("{date}/{}/s3/aws4_request", self.config.region);
        let expires = ((expires_at - now) / 1000).clamp(1, MAX_EXPIRES_S);
        let mut signed: BTreeMap<String, String> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        signed.insert("host".into(), self.host.clone());
        let signed_names = signed.keys().cloned().collect::<Vec<_>>().join(";");
        let mut query = BTreeMap::from([
            ("X-Amz-Algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned()),
            (
                "X-Amz-Credential".to_owned(),
                format!("{}/{scope}", self.config.access_key),
            ),
            ("X-Amz-Date".to_owned(), amz_date.clone()),
            ("X-Amz-Expires".to_owned(), expires.to_string()),
            ("X-Amz-SignedHeaders".to_owned(), signed_names.clone()),
        ]);
        let canonical_query = |q: &BTreeMap<String, String>| {
            q.iter()
                .map(|(k, v)| format!("{}={}", encode(k, true), encode(v, true)))
                .collect::<Vec<_>>()
                .join("&")
        };
        let path = self.object_path(key);
        let canonical_headers: String = signed.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let canonical = format!(
            "{method}\n{path}\n{}\n{canonical_headers}\n{signed_names}\nUNSIGNED-PAYLOAD",
            canonical_query(&query)
        );
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let mut k = hmac(
            format!("AWS4{}", self.config.secret_key).as_bytes(),
            date.as_bytes(),
        );
        for part in [self.config.region.as_str(), "s3", "aws4_request"] {
            k = hmac(&k, part.as_bytes());
        }
        let signature = hex::encode(hmac(&k, to_sign.as_bytes()));
        query.insert("X-Amz-Signature".into(), signature);
        format!("{}{path}?{}", self.origin, canonical_query(&query))
    }

    pub fn upload_target(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        now: i64,
        expires_at: i64,
    ) -> UploadTarget {
        let headers = [
            ("content-length", size.to_string()),
            ("content-type", content_type.to_owned()),
        ];
        UploadTarget {
            method: "PUT",
            url: self.presign("PUT", key, &headers, now, expires_at),
            headers: BTreeMap::from([
                ("Content-Type".to_owned(), content_type.to_owned()),
                ("Content-Length".to_owned(), size.to_string()),
            ]),
        }
    }

    fn own_url(&self, method: &str, key: &str) -> String {
        let now = jiff::Timestamp::now().as_millisecond();
        self.presign(method, key, &[], now, now + OWN_URL_MS)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let r = req
            .send()
            .await
            .map_err(|e| StorageError::Unavailable(format!("S3: {e}")))?;
        match r.status().as_u16() {
            200..=299 => Ok(r),
            404 => Err(StorageError::Missing),
            s => Err(StorageError::Unavailable(format!("S3 answered {s}"))),
        }
    }

    pub async fn size(&self, key: &str) -> Result<Option<u64>> {
        if !valid_key(key) {
            return Ok(None);
        }
        match self.send(self.http.head(self.own_url("HEAD", key))).await {
            Ok(r) => Ok(r
                .headers()
                .get(reqwest::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())),
            Err(StorageError::Missing) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads a response's body with a cap.
    async fn body(mut r: reqwest::Response, max: u64) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(chunk) = r
            .chunk()
            .await
            .map_err(|e| StorageError::Unavailable(format!("S3: {e}")))?
        {
            if (out.len() + chunk.len()) as u64 > max {
                return Err(StorageError::TooLarge(max));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    pub async fn read_range(&self, key: &str, start: u64, len: u64) -> Result<Bytes> {
        if !valid_key(key) {
            return Err(StorageError::Missing);
        }
        if len == 0 {
            return Ok(Bytes::new());
        }
        let req = self
            .http
            .get(self.own_url("GET", key))
            .header("range", format!("bytes={start}-{}", start + len - 1));
        match self.send(req).await {
            Ok(r) => {
                // A store that ignores Range answers 200 with everything: keep the cap.
                let whole = r.status().as_u16() == 200;
                let max = if whole { start + len } else { len };
                let body = Self::body(r, max).await;
                let body = match body {
                    Err(StorageError::TooLarge(_)) if whole => {
                        return Err(StorageError::Unavailable(
                            "S3 ignored a range request".into(),
                        ));
                    }
                    b => b?,
                };
                let body = if whole {
                    body.get(start as usize..).unwrap_or_default().to_vec()
                } else {
                    body
                };
                Ok(body.into())
            }
            // 416: the range starts past the end.
            Err(StorageError::Unavailable(m)) if m.ends_with("416") => Ok(Bytes::new()),
            Err(e) => Err(e),
        }
    }

    pub async fn digest(&self, key: &str, max: u64) -> Result<Digest> {
        if !valid_key(key) {
            return Err(StorageError::Missing);
        }
        let mut r = self.send(self.http.get(self.own_url("GET", key))).await?;
        let mut h = Hashing::new(max);
        while let Some(chunk) = r
            .chunk()
            .await
            .map_err(|e| StorageError::Unavailable(format!("S3: {e}")))?
        {
            h.update(&chunk)?;
        }
        Ok(h.finish())
    }

    pub async fn read_all(&self, key: &str, max: u64) -> Result<Bytes> {
        if !valid_key(key) {
            return Err(StorageError::Missing);
        }
        let r = self.send(self.http.get(self.own_url("GET", key))).await?;
        Ok(Self::body(r, max).await?.into())
    }

    pub async fn put(&self, key: &str, content_type: &str, bytes: Bytes) -> Result<()> {
        if !valid_key(key) {
            return Err(StorageError::Missing);
        }
        let req = self
            .http
            .put(self.own_url("PUT", key))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(bytes);
        self.send(req).await.map(|_| ())
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        if !valid_key(key) {
            return Ok(());
        }
        match self
            .send(self.http.delete(self.own_url("DELETE", key)))
            .await
        {
            Ok(_) | Err(StorageError::Missing) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// SigV4's URI encoding: everything but `A-Za-z0-9-_.~` as `%XX`; `/` kept in paths.
fn encode(s: &str, slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if !slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of AWS's "Authenticating Requests: Using Query Parameters" page (GET
    /// /test.txt, bucket examplebucket, 20130524T000000Z, 86400 s).
    #[test]
    fn matches_the_aws_documentation_example() {
        let s = S3Store::new(S3Config {
            endpoint: "https://s3.amazonaws.com".into(),
            bucket: "examplebucket".into(),
            region: "us-east-1".into(),
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            path_style: false,
            prefix: String::new(),
        })
        .unwrap();
        let now = "2013-05-24T00:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond();
        // The documented key is `test.txt`; media keys are ids, but the signer is general.
        let url = s.presign("GET", "test.txt", &[], now, now + 86_400_000);
        assert!(url.starts_with("https://examplebucket.s3.amazonaws.com/test.txt?"));
        assert!(
            url.contains(
                "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404&"
            ),
            "{url}"
        );
    }

    #[test]
    fn encoding() {
        assert_eq!(encode("a b/c~", false), "a%20b/c~");
        assert_eq!(encode("a/b", true), "a%2Fb");
    }
}
