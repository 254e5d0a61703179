//! Where backup files are kept besides the data directory: a local directory, or object storage
//! (`s3://`, `gs://`, `az://`) through `object_store`, chosen by URL.
//!
//! A destination holds backup files directly under its prefix (`s3://bucket/prefix/NAME`), with
//! the names this module makes (`bravely-….bravely-backup`); anything else there is ignored.
//! Uploads larger than one part go up as a multipart upload, a few parts in flight, aborted on
//! failure so no half-written object remains. Downloads stream to a temporary file beside the
//! target and are renamed into place when complete.
//!
//! Options come from `[backups.storage]` (see [`StorageOptions`]); the cloud builders also read
//! their usual environment variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`), which the configuration
//! overrides. Errors never contain secrets: they are built from the HTTP status, the storage's
//! error code, and the failing address, and every configured secret is scrubbed from them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::stream::{BoxStream, FuturesUnordered, StreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::archive::EXTENSION;

mod errors;
mod options;

/// Parts of a multipart upload that are in flight at once.
const PARTS_IN_FLIGHT: usize = 2;
/// S3 allows at most 10,000 parts; larger files get larger parts.
const MAX_PARTS: u64 = 9_000;
/// S3's smallest part (all but the last).
pub const MIN_PART_SIZE_MIB: u64 = 5;
pub const MAX_PART_SIZE_MIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

pub use errors::DestinationError;
use errors::{Errors, scrub};
pub use options::{AzureOptions, GcsOptions, S3Options, StorageOptions};

/// A backup file at a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteBackup {
    pub name: String,
    pub size: u64,
    pub modified: DateTime<Utc>,
}

/// How far an upload has got: `done` of `total` bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadProgress {
    pub done: u64,
    pub total: u64,
    /// Parts stored so far; 0 for a single-request upload until it is done, then 1.
    pub parts_done: u64,
    pub parts_total: u64,
}

/// A streamed read of a backup file (for serving a download without loading it).
pub struct RemoteRead {
    pub size: u64,
    pub modified: DateTime<Utc>,
    pub stream: BoxStream<'static, Result<Bytes, DestinationError>>,
}

impl std::fmt::Debug for RemoteRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteRead").field("size", &self.size).field("modified", &self.modified).finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Local,
    S3,
    Gcs,
    Azure,
}

/// A place backups are copied to, opened from a URL.
#[derive(Clone)]
pub struct Destination {
    store: Arc<dyn ObjectStore>,
    /// Key prefix inside the bucket (empty for a local directory: the store is rooted there).
    prefix: ObjectPath,
    kind: Kind,
    url: String,
    part_size: u64,
    errors: Errors,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination").field("url", &self.url).field("kind", &self.kind).finish()
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

/// Whether `s` is a URL of a kind [`Destination::open`] takes (rather than a local path).
pub fn is_url(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    })
}

/// The names this module makes and accepts: `[A-Za-z0-9._-]`, ending in `.bravely-backup`, not
/// starting with a dot.
pub fn is_backup_name(name: &str) -> bool {
    name.len() > EXTENSION.len() + 1
        && name.ends_with(&format!(".{EXTENSION}"))
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A URL for display and logs: scheme, host and path only (no user info, query or fragment).
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or_default();
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let path = u.path();
            let path = if path == "/" { "" } else { path };
            format!("{}://{host}{port}{path}", u.scheme())
        }
        // Not a URL: the part before anything that could carry a credential.
        Err(_) => url.split(['?', '#', '@']).next().unwrap_or_default().to_string(),
    }
}

fn config_err(msg: impl Into<String>) -> DestinationError {
    DestinationError::Config(msg.into())
}

fn client_options(o: &StorageOptions, allow_http: bool) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(o.timeout_seconds.max(1)))
        .with_user_agent(object_store::HeaderValue::from_static(concat!("bravely/", env!("CARGO_PKG_VERSION"))))
}

fn retry_config(o: &StorageOptions) -> RetryConfig {
    RetryConfig { max_retries: o.retries, retry_timeout: Duration::from_secs(120), ..RetryConfig::default() }
}

/// `s3://bucket/a/b/` -> ("bucket", "a/b").
fn bucket_and_prefix(u: &reqwest::Url, shown: &str, what: &str) -> Result<(String, ObjectPath), DestinationError> {
    let bucket = u.host_str().unwrap_or_default().to_string();
    if bucket.is_empty() {
        return Err(DestinationError::InvalidUrl(format!(
            "{shown}: the {what} is missing (expected {}://{what}/prefix)",
            u.scheme()
        )));
    }
    let raw = u.path().trim_matches('/');
    let raw =
        percent_decode(raw).ok_or_else(|| DestinationError::InvalidUrl(format!("{shown}: the path is not UTF-8")))?;
    let prefix = ObjectPath::parse(&raw)
        .map_err(|e| DestinationError::InvalidUrl(format!("{shown}: {raw:?} is not a usable prefix ({e})")))?;
    Ok((bucket, prefix))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// For virtual-hosted style with a custom endpoint: `https://host:port` -> `https://bucket.host:port`.
fn virtual_hosted_endpoint(endpoint: &str, bucket: &str) -> Result<String, DestinationError> {
    let u = reqwest::Url::parse(endpoint).map_err(|e| {
        config_err(format!("backups.storage.s3.endpoint {:?} is not a URL ({e})", redact_url(endpoint)))
    })?;
    let host = u.host_str().unwrap_or_default();
    let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
    Ok(format!("{}://{bucket}.{host}{port}", u.scheme()))
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

impl Destination {
    /// Opens the destination at `url`: a directory path, `file:///dir`, `s3://bucket/prefix`,
    /// `gs://bucket/prefix` or `az://container/prefix`. Checks the URL and options; does not
    /// contact the storage (the first operation does).
    pub fn open(url: &str, options: &StorageOptions) -> Result<Destination, DestinationError> {
        Self::open_with(url, options, true)
    }

    /// Like [`Destination::open`]; a local directory is made only when `create_dir` is set.
    fn open_with(url: &str, options: &StorageOptions, create_dir: bool) -> Result<Destination, DestinationError> {
        if !(MIN_PART_SIZE_MIB..=MAX_PART_SIZE_MIB).contains(&options.part_size_mib) {
            return Err(config_err(format!(
                "backups.storage.part_size_mib must be between {MIN_PART_SIZE_MIB} and {MAX_PART_SIZE_MIB}, not {}",
                options.part_size_mib
            )));
        }
        let part_size = options.part_size_mib * MIB;
        if !is_url(url) {
            return Self::open_dir(Path::new(url), part_size, create_dir);
        }
        let shown = redact_url(url);
        let u = reqwest::Url::parse(url)
            .map_err(|e| DestinationError::InvalidUrl(format!("{shown} is not a URL ({e})")))?;
        if !u.username().is_empty() || u.password().is_some() {
            return Err(DestinationError::InvalidUrl(format!(
                "{shown}: credentials do not belong in the URL; put them in [backups.storage]"
            )));
        }
        if u.query().is_some() || u.fragment().is_some() {
            return Err(DestinationError::InvalidUrl(format!(
                "{shown}: a destination URL has no query string or fragment; options go in [backups.storage]"
            )));
        }
        match u.scheme() {
            "file" => {
                let dir = u
                    .to_file_path()
                    .map_err(|_| DestinationError::InvalidUrl(format!("{shown} is not a local directory URL")))?;
                Self::open_dir(&dir, part_size, create_dir)
            }
            "s3" => Self::open_s3(&u, shown, options, part_size),
            "gs" => Self::open_gcs(&u, shown, options, part_size),
            "az" => Self::open_azure(&u, shown, options, part_size),
            other => Err(DestinationError::InvalidUrl(format!(
                "{shown}: unsupported destination {other:?}; use a directory, file://, s3://, gs:// or az://"
            ))),
        }
    }

    /// Opens the destination holding the backup object at `url` (`s3://bucket/prefix/NAME`, or a
    /// path to a file) and returns it with the object's name.
    pub fn open_object(url: &str, options: &StorageOptions) -> Result<(Destination, String), DestinationError> {
        let trimmed = url.trim_end_matches('/');
        let (parent, name) = match trimmed.rsplit_once('/') {
            Some(("", n)) => ("/".to_string(), n.to_string()),
            Some((p, n)) if !p.ends_with(':') && !p.ends_with(":/") => (p.to_string(), n.to_string()),
            Some((p, n)) => (format!("{p}/"), n.to_string()),
            None => (".".to_string(), trimmed.to_string()),
        };
        if !is_backup_name(&name) {
            return Err(DestinationError::InvalidUrl(format!(
                "{} does not name a backup file (bravely-….{EXTENSION})",
                redact_url(url)
            )));
        }
        // Reading a backup must not make directories.
        Ok((Self::open_with(&parent, options, false)?, name))
    }

    fn open_dir(dir: &Path, part_size: u64, create: bool) -> Result<Destination, DestinationError> {
        if dir.as_os_str().is_empty() {
            return Err(DestinationError::InvalidUrl("the destination is empty".into()));
        }
        if create {
            std::fs::create_dir_all(dir).map_err(|source| DestinationError::Local {
                what: "cannot create the backup directory",
                path: dir.to_path_buf(),
                source,
            })?;
        } else if !dir.is_dir() {
            return Err(DestinationError::Local {
                what: "there is no backup directory",
                path: dir.to_path_buf(),
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        // fsync: a backup copy must survive a power cut like the file it copies.
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map(|fs| fs.with_fsync(true))
            .map_err(|e| config_err(format!("the backup directory {} cannot be used: {e}", dir.display())))?;
        let url = dir.display().to_string();
        Ok(Destination {
            store: Arc::new(fs),
            prefix: ObjectPath::default(),
            kind: Kind::Local,
            url: url.clone(),
            part_size,
            errors: Errors { at: url, bucket: None, secrets: Arc::new(vec![]) },
        })
    }

    fn open_s3(
        u: &reqwest::Url,
        shown: String,
        options: &StorageOptions,
        part_size: u64,
    ) -> Result<Destination, DestinationError> {
        use object_store::aws::AmazonS3Builder;
        let (bucket, prefix) = bucket_and_prefix(u, &shown, "bucket")?;
        let o = &options.s3;
        let has_static = o.access_key_id.is_some() || o.secret_access_key.is_some();
        let has_env = env_set("AWS_ACCESS_KEY_ID")
            || env_set("AWS_WEB_IDENTITY_TOKEN_FILE")
            || env_set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
            || env_set("AWS_CONTAINER_CREDENTIALS_FULL_URI");
        if !has_static && !has_env && !o.instance_metadata {
            return Err(config_err(format!(
                "{shown}: no S3 credentials; set backups.storage.s3.access_key_id and secret_access_key \
                 (BRAVELY_BACKUPS_S3_ACCESS_KEY_ID, BRAVELY_BACKUPS_S3_SECRET_ACCESS_KEY or its _FILE), \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or instance_metadata = true on EC2"
            )));
        }
        let allow_http = o.allow_http || std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v == "true");
        crate::tls::install();
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&bucket)
            .with_client_options(client_options(options, allow_http))
            .with_retry(retry_config(options));
        let mut secrets = vec![];
        if let Some(k) = &o.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &o.secret_access_key {
            secrets.push(s.expose().to_string());
            b = b.with_secret_access_key(s.expose());
        }
        if let Some(t) = &o.session_token {
            secrets.push(t.expose().to_string());
            b = b.with_token(t.expose());
        }
        if let Ok(s) = std::env::var("AWS_SECRET_ACCESS_KEY") {
            secrets.push(s);
        }
        let region = o
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".into());
        b = b.with_region(&region);
        let mut at = shown.clone();
        if let Some(endpoint) = &o.endpoint {
            if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
                return Err(config_err(format!(
                    "backups.storage.s3.endpoint must start with https:// or http://, got {:?}",
                    redact_url(endpoint)
                )));
            }
            if endpoint.starts_with("http://") && !allow_http {
                return Err(config_err(format!(
                    "backups.storage.s3.endpoint {} is plain HTTP: set backups.storage.s3.allow_http = true \
                     (only for a server on a trusted network)",
                    redact_url(endpoint)
                )));
            }
            let endpoint = endpoint.trim_end_matches('/');
            at = format!("{shown} (endpoint {})", redact_url(endpoint));
            b = if o.path_style {
                b.with_endpoint(endpoint).with_virtual_hosted_style_request(false)
            } else {
                b.with_endpoint(virtual_hosted_endpoint(endpoint, &bucket)?).with_virtual_hosted_style_request(true)
            };
        } else {
            b = b.with_virtual_hosted_style_request(!o.path_style);
        }
        if o.instance_metadata {
            b = b.with_imdsv1_fallback();
        }
        let store = b.build().map_err(|e| config_err(format!("{shown}: {}", scrub(&e.to_string(), &secrets))))?;
        Ok(Destination {
            store: Arc::new(store),
            prefix,
            kind: Kind::S3,
            url: shown,
            part_size,
            errors: Errors { at, bucket: Some(bucket), secrets: Arc::new(secrets) },
        })
    }

    fn open_gcs(
        u: &reqwest::Url,
        shown: String,
        options: &StorageOptions,
        part_size: u64,
    ) -> Result<Destination, DestinationError> {
        use object_store::gcp::GoogleCloudStorageBuilder;
        let (bucket, prefix) = bucket_and_prefix(u, &shown, "bucket")?;
        let o = &options.gcs;
        let adc = std::env::var_os("HOME")
            .map(|h| Path::new(&h).join(".config/gcloud/application_default_credentials.json"))
            .is_some_and(|p| p.is_file());
        let has_credentials = o.service_account_path.is_some()
            || o.service_account_key.is_some()
            || adc
            || ["GOOGLE_SERVICE_ACCOUNT", "GOOGLE_SERVICE_ACCOUNT_PATH", "GOOGLE_SERVICE_ACCOUNT_KEY"]
                .into_iter()
                .chain(["GOOGLE_APPLICATION_CREDENTIALS"])
                .any(env_set);
        if !has_credentials && !o.instance_metadata {
            return Err(config_err(format!(
                "{shown}: no Google Cloud credentials; set backups.storage.gcs.service_account_path or \
                 service_account_key (BRAVELY_BACKUPS_GCS_SERVICE_ACCOUNT_KEY or its _FILE), \
                 GOOGLE_APPLICATION_CREDENTIALS, or instance_metadata = true on Google Cloud"
            )));
        }
        crate::tls::install();
        let mut b = GoogleCloudStorageBuilder::from_env()
            .with_bucket_name(&bucket)
            .with_client_options(client_options(options, false))
            .with_retry(retry_config(options));
        let mut secrets = vec![];
        if let Some(p) = &o.service_account_path {
            b = b.with_service_account_path(p.to_string_lossy());
        }
        if let Some(k) = &o.service_account_key {
            secrets.push(k.expose().to_string());
            b = b.with_service_account_key(k.expose());
        }
        let store = b.build().map_err(|e| config_err(format!("{shown}: {}", scrub(&e.to_string(), &secrets))))?;
        Ok(Destination {
            store: Arc::new(store),
            prefix,
            kind: Kind::Gcs,
            url: shown.clone(),
            part_size,
            errors: Errors { at: shown, bucket: Some(bucket), secrets: Arc::new(secrets) },
        })
    }

    fn open_azure(
        u: &reqwest::Url,
        shown: String,
        options: &StorageOptions,
        part_size: u64,
    ) -> Result<Destination, DestinationError> {
        use object_store::azure::MicrosoftAzureBuilder;
        let (container, prefix) = bucket_and_prefix(u, &shown, "container")?;
        let o = &options.azure;
        let env_credentials = [
            "AZURE_STORAGE_ACCOUNT_KEY",
            "AZURE_STORAGE_ACCESS_KEY",
            "AZURE_STORAGE_MASTER_KEY",
            "AZURE_STORAGE_SAS_KEY",
            "AZURE_STORAGE_SAS_TOKEN",
            "AZURE_STORAGE_TOKEN",
            "AZURE_STORAGE_CLIENT_SECRET",
            "AZURE_CLIENT_SECRET",
            "AZURE_FEDERATED_TOKEN_FILE",
            "AZURE_USE_AZURE_CLI",
            "AZURE_STORAGE_USE_EMULATOR",
        ]
        .into_iter()
        .any(env_set);
        if o.access_key.is_none() && !env_credentials && !o.managed_identity {
            return Err(config_err(format!(
                "{shown}: no Azure credentials; set backups.storage.azure.access_key \
                 (BRAVELY_BACKUPS_AZURE_ACCESS_KEY or its _FILE), AZURE_STORAGE_ACCOUNT_KEY or another \
                 AZURE_* credential, or managed_identity = true on Azure"
            )));
        }
        crate::tls::install();
        let mut b = MicrosoftAzureBuilder::from_env()
            .with_container_name(&container)
            .with_client_options(client_options(options, o.allow_http))
            .with_retry(retry_config(options));
        let mut secrets = vec![];
        if let Some(a) = &o.account {
            b = b.with_account(a);
        }
        if let Some(k) = &o.access_key {
            secrets.push(k.expose().to_string());
            b = b.with_access_key(k.expose());
        }
        let mut at = shown.clone();
        if let Some(e) = &o.endpoint {
            at = format!("{shown} (endpoint {})", redact_url(e));
            b = b.with_endpoint(e.clone()).with_allow_http(o.allow_http);
        }
        let store = b.build().map_err(|e| {
            config_err(format!(
                "{shown}: {} (set backups.storage.azure.account and access_key, or AZURE_STORAGE_ACCOUNT_NAME \
                 and AZURE_STORAGE_ACCOUNT_KEY)",
                scrub(&e.to_string(), &secrets)
            ))
        })?;
        Ok(Destination {
            store: Arc::new(store),
            prefix,
            kind: Kind::Azure,
            url: shown,
            part_size,
            errors: Errors { at, bucket: Some(container), secrets: Arc::new(secrets) },
        })
    }

    /// The URL without anything secret, for pages and logs.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Where a backup named `name` is shown to users: `s3://bucket/prefix/NAME`, `/dir/NAME`.
    pub fn url_of(&self, name: &str) -> String {
        format!("{}/{name}", self.url.trim_end_matches('/'))
    }

    fn path_of(&self, name: &str) -> Result<ObjectPath, DestinationError> {
        if !is_backup_name(name) {
            return Err(DestinationError::InvalidName(name.to_string()));
        }
        Ok(self.prefix.clone().join(name))
    }

    /// The part size used for a file of `size` bytes: the configured one, larger when the file
    /// would need more parts than S3 allows.
    pub fn part_size_for(&self, size: u64) -> u64 {
        self.part_size.max(size.div_ceil(MAX_PARTS).next_multiple_of(MIB))
    }

    /// Copies the local file `local` to the destination as `name`. Files up to one part go up
    /// in one request; larger ones as a multipart upload that is aborted on any failure.
    /// `progress` is called after each stored part. Returns the size uploaded.
    pub async fn upload(
        &self,
        local: &Path,
        name: &str,
        progress: &(dyn Fn(UploadProgress) + Send + Sync),
    ) -> Result<u64, DestinationError> {
        let path = self.path_of(name)?;
        let read_err = |source| DestinationError::Local { what: "cannot read", path: local.to_path_buf(), source };
        let mut file = tokio::fs::File::open(local).await.map_err(read_err)?;
        let total = file.metadata().await.map_err(read_err)?.len();
        let part = self.part_size_for(total);
        let started = std::time::Instant::now();
        let target = self.url_of(name);
        if total <= part {
            let mut buf = Vec::with_capacity(total as usize);
            file.read_to_end(&mut buf).await.map_err(read_err)?;
            let size = buf.len() as u64;
            if let Err(e) = self.store.put(&path, PutPayload::from(buf)).await {
                let e = self.errors.of(e, Some(name));
                tracing::error!(destination = %self.url, name, "upload of {name} failed: {e}");
                return Err(e);
            }
            progress(UploadProgress { done: size, total: size, parts_done: 1, parts_total: 1 });
            tracing::info!(destination = %self.url, name, bytes = size, elapsed_ms = started.elapsed().as_millis() as u64,
                "uploaded backup to {target}");
            return Ok(size);
        }
        let parts_total = total.div_ceil(part);
        tracing::info!(destination = %self.url, name, bytes = total, parts = parts_total, part_bytes = part,
            "uploading backup to {target} (multipart)");
        let mut upload = self.store.put_multipart(&path).await.map_err(|e| self.errors.of(e, Some(name)))?;
        let mut in_flight = FuturesUnordered::new();
        let result: Result<(), DestinationError> = async {
            let mut sent = 0u64;
            let mut done = 0u64;
            let mut parts_done = 0u64;
            let mut logged_tenth = 0u64;
            loop {
                while in_flight.len() < PARTS_IN_FLIGHT && sent < total {
                    let n = part.min(total - sent);
                    let mut buf = vec![0u8; n as usize];
                    file.read_exact(&mut buf).await.map_err(read_err)?;
                    sent += n;
                    let fut = upload.put_part(PutPayload::from(buf));
                    in_flight.push(async move { fut.await.map(|()| n) });
                }
                let Some(r) = in_flight.next().await else { break };
                let n = r.map_err(|e| self.errors.of(e, Some(name)))?;
                done += n;
                parts_done += 1;
                progress(UploadProgress { done, total, parts_done, parts_total });
                let tenth = done * 10 / total.max(1);
                if tenth > logged_tenth {
                    logged_tenth = tenth;
                    tracing::info!(destination = %self.url, name, done, total, "upload of {name}: {}%", done * 100 / total.max(1));
                }
            }
            if done != total {
                return Err(DestinationError::Local {
                    what: "the file changed while it was uploaded",
                    path: local.to_path_buf(),
                    source: std::io::Error::other(format!("{done} of {total} bytes sent")),
                });
            }
            upload.complete().await.map_err(|e| self.errors.of(e, Some(name)))?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                tracing::info!(destination = %self.url, name, bytes = total, parts = parts_total,
                    elapsed_ms = started.elapsed().as_millis() as u64, "uploaded backup to {target}");
                Ok(total)
            }
            Err(e) => {
                // Parts still in flight could land after an abort and stay stored (S3 says an
                // abort may have to be repeated then): let them finish first.
                while in_flight.next().await.is_some() {}
                if let Err(abort) = upload.abort().await {
                    tracing::warn!(destination = %self.url, name, "could not abort the multipart upload: {}",
                        self.errors.of(abort, Some(name)));
                }
                tracing::error!(destination = %self.url, name, "upload of {name} failed: {e}");
                Err(e)
            }
        }
    }

    /// The backup files directly under the prefix, oldest first.
    pub async fn list(&self) -> Result<Vec<RemoteBackup>, DestinationError> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let listing = self.store.list_with_delimiter(prefix).await.map_err(|e| self.errors.of(e, None))?;
        let mut out: Vec<RemoteBackup> = listing
            .objects
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?.to_string();
                is_backup_name(&name).then_some(RemoteBackup { name, size: m.size, modified: m.last_modified })
            })
            .collect();
        out.sort_by(|a, b| (a.modified, &a.name).cmp(&(b.modified, &b.name)));
        Ok(out)
    }

    /// Size and time of one backup file.
    pub async fn head(&self, name: &str) -> Result<RemoteBackup, DestinationError> {
        let path = self.path_of(name)?;
        let m = match self.store.head(&path).await {
            Ok(m) => m,
            Err(e) => return Err(self.object_error(e, name).await),
        };
        Ok(RemoteBackup { name: name.to_string(), size: m.size, modified: m.last_modified })
    }

    /// Streams the backup file `name` to `local`, through a temporary file beside it that is
    /// renamed into place once complete. Returns its size.
    pub async fn download_to(&self, name: &str, local: &Path) -> Result<u64, DestinationError> {
        let started = std::time::Instant::now();
        let mut read = self.read(name).await?;
        let dir = local.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let file_name = local.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let tmp = dir.join(format!(".{file_name}.download"));
        let write_err = |source| DestinationError::Local { what: "cannot write", path: tmp.clone(), source };
        let result: Result<u64, DestinationError> = async {
            let mut out = tokio::fs::File::create(&tmp).await.map_err(write_err)?;
            let mut got = 0u64;
            while let Some(chunk) = read.stream.next().await {
                let chunk = chunk?;
                got += chunk.len() as u64;
                out.write_all(&chunk).await.map_err(write_err)?;
            }
            out.sync_all().await.map_err(write_err)?;
            if got != read.size {
                return Err(DestinationError::Storage {
                    at: self.errors.at.clone(),
                    detail: format!("the download of {name} ended after {got} of {} bytes", read.size),
                });
            }
            tokio::fs::rename(&tmp, local).await.map_err(|source| DestinationError::Local {
                what: "cannot write",
                path: local.to_path_buf(),
                source,
            })?;
            Ok(got)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        let size = result?;
        tracing::info!(destination = %self.url, name, bytes = size, elapsed_ms = started.elapsed().as_millis() as u64,
            "downloaded {} to {}", self.url_of(name), local.display());
        Ok(size)
    }

    /// A streamed read of the backup file `name`.
    pub async fn read(&self, name: &str) -> Result<RemoteRead, DestinationError> {
        let path = self.path_of(name)?;
        let got = match self.store.get(&path).await {
            Ok(got) => got,
            Err(e) => return Err(self.object_error(e, name).await),
        };
        let (size, modified) = (got.meta.size, got.meta.last_modified);
        let errors = self.errors.clone();
        let name = name.to_string();
        let stream = got.into_stream().map(move |r| r.map_err(|e| errors.of(e, Some(&name)))).boxed();
        Ok(RemoteRead { size, modified, stream })
    }

    /// The error of an operation on one object. A missing object in a missing bucket is
    /// reported as the missing bucket (answers to GET and HEAD carry no error code to tell).
    async fn object_error(&self, e: object_store::Error, name: &str) -> DestinationError {
        let err = self.errors.of(e, Some(name));
        if matches!(err, DestinationError::NotFound { .. })
            && self.kind != Kind::Local
            && let Err(bucket @ DestinationError::NoBucket { .. }) = self.list().await
        {
            return bucket;
        }
        err
    }

    /// Deletes the backup file `name`; a missing one is [`DestinationError::NotFound`].
    pub async fn delete(&self, name: &str) -> Result<(), DestinationError> {
        let path = self.path_of(name)?;
        // S3 answers a delete of a missing key with success: ask first, to report it.
        self.head(name).await?;
        self.store.delete(&path).await.map_err(|e| self.errors.of(e, Some(name)))?;
        tracing::info!(destination = %self.url, name, "deleted {}", self.url_of(name));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn s3_options() -> StorageOptions {
        StorageOptions {
            s3: S3Options {
                endpoint: Some("http://127.0.0.1:9000".into()),
                access_key_id: Some("AKIDEXAMPLE".into()),
                secret_access_key: Some(Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")),
                allow_http: true,
                ..S3Options::default()
            },
            ..StorageOptions::default()
        }
    }

    #[test]
    fn urls_choose_the_destination_kind_and_prefix() {
        let o = s3_options();
        let d = Destination::open("s3://backups/bravely/prod/", &o).expect("s3");
        assert_eq!((d.kind(), d.url()), (Kind::S3, "s3://backups/bravely/prod/"));
        assert_eq!(d.prefix.as_ref(), "bravely/prod");
        assert_eq!(d.url_of("bravely-1.bravely-backup"), "s3://backups/bravely/prod/bravely-1.bravely-backup");
        let d = Destination::open("s3://backups", &o).expect("s3 without prefix");
        assert_eq!(d.prefix.as_ref(), "");
        let dir = tempfile::tempdir().expect("tempdir");
        let d = Destination::open(&dir.path().join("b").to_string_lossy(), &o).expect("dir");
        assert_eq!(d.kind(), Kind::Local);
        assert!(dir.path().join("b").is_dir(), "the directory is made");
        let file_url = format!("file://{}", dir.path().join("c").display());
        assert_eq!(Destination::open(&file_url, &o).expect("file://").kind(), Kind::Local);
        let azure = StorageOptions {
            azure: AzureOptions {
                account: Some("acct".into()),
                access_key: Some(Secret::new("a2V5a2V5a2V5")),
                ..Default::default()
            },
            ..StorageOptions::default()
        };
        assert_eq!(Destination::open("az://container/p", &azure).expect("az").kind(), Kind::Azure);
    }

    #[test]
    fn bad_urls_are_explained_without_their_secrets() {
        let o = s3_options();
        let err = Destination::open("ftp://host/x", &o).unwrap_err().to_string();
        assert!(err.contains("unsupported destination") && err.contains("s3://"), "{err}");
        let err = Destination::open("s3://AKID:topsecret@bucket/p", &o).unwrap_err().to_string();
        assert!(err.contains("credentials do not belong in the URL"), "{err}");
        assert!(!err.contains("topsecret"), "{err}");
        let err = Destination::open("s3://bucket/p?secret=topsecret", &o).unwrap_err().to_string();
        assert!(!err.contains("topsecret") && err.contains("query"), "{err}");
        let err = Destination::open("s3:///p", &o).unwrap_err().to_string();
        assert!(err.contains("bucket is missing"), "{err}");
        let err = Destination::open_object("s3://bucket/p/notes.txt", &o).unwrap_err().to_string();
        assert!(err.contains("does not name a backup file"), "{err}");
        let bad_part = StorageOptions { part_size_mib: 1, ..s3_options() };
        assert!(Destination::open("s3://b", &bad_part).unwrap_err().to_string().contains("part_size_mib"));
    }

    #[test]
    fn plain_http_endpoints_need_allow_http_and_s3_needs_credentials() {
        let mut o = s3_options();
        o.s3.allow_http = false;
        let err = Destination::open("s3://b/p", &o).unwrap_err().to_string();
        assert!(err.contains("allow_http"), "{err}");
        // Without credentials, no destination falls back to a cloud metadata service unasked.
        let none = StorageOptions::default();
        if !env_set("AWS_ACCESS_KEY_ID") {
            let err = Destination::open("s3://b/p", &none).unwrap_err().to_string();
            assert!(err.contains("no S3 credentials") && err.contains("BRAVELY_BACKUPS_S3_SECRET_ACCESS_KEY"), "{err}");
        }
        if !env_set("GOOGLE_APPLICATION_CREDENTIALS") && !env_set("GOOGLE_SERVICE_ACCOUNT") {
            let err = Destination::open("gs://b/p", &none).unwrap_err().to_string();
            assert!(err.contains("no Google Cloud credentials"), "{err}");
        }
        if !env_set("AZURE_STORAGE_ACCOUNT_KEY") {
            let err = Destination::open("az://c/p", &none).unwrap_err().to_string();
            assert!(err.contains("no Azure credentials"), "{err}");
        }
        let key = StorageOptions {
            gcs: GcsOptions { service_account_path: Some("/nonexistent/key.json".into()), ..Default::default() },
            ..StorageOptions::default()
        };
        // The key file is read at open: a missing one is a configuration error that names it.
        let err = Destination::open("gs://b/p", &key).unwrap_err();
        assert!(
            matches!(err, DestinationError::Config(_)) && err.to_string().contains("/nonexistent/key.json"),
            "{err}"
        );
    }

    #[test]
    fn object_urls_split_into_destination_and_name() {
        let o = s3_options();
        let (d, name) = Destination::open_object("s3://bk/a/b/bravely-x.bravely-backup", &o).expect("object");
        assert_eq!((d.url(), name.as_str()), ("s3://bk/a/b", "bravely-x.bravely-backup"));
        assert_eq!(d.prefix.as_ref(), "a/b");
        let (d, _) = Destination::open_object("s3://bk/bravely-x.bravely-backup", &o).expect("object at the root");
        assert_eq!(d.prefix.as_ref(), "");
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("not-there");
        let url = format!("file://{}/bravely-x.bravely-backup", missing.display());
        let err = Destination::open_object(&url, &o).unwrap_err().to_string();
        assert!(err.contains("there is no backup directory"), "{err}");
        assert!(!missing.exists(), "reading does not make directories");
    }

    #[test]
    fn virtual_hosted_style_puts_the_bucket_in_the_host() {
        assert_eq!(
            virtual_hosted_endpoint("https://s3.example.com:8443/", "backups").expect("url"),
            "https://backups.s3.example.com:8443"
        );
        let mut o = s3_options();
        o.s3.path_style = false;
        Destination::open("s3://backups/p", &o).expect("virtual-hosted opens");
    }

    /// The scheduler and handlers spawn these futures on the runtime, and a download is served
    /// as a body stream.
    #[test]
    fn operations_are_send_and_streams_become_bodies() {
        fn send<T: Send>(_: &T) {}
        let dir = tempfile::tempdir().expect("tempdir");
        let d = Destination::open(&dir.path().to_string_lossy(), &StorageOptions::default()).expect("opens");
        send(&d.upload(Path::new("x"), "bravely-x.bravely-backup", &|_| {}));
        send(&d.list());
        send(&d.download_to("bravely-x.bravely-backup", Path::new("y")));
        send(&d.read("bravely-x.bravely-backup"));
        send(&d.delete("bravely-x.bravely-backup"));
        let stream = futures_util::stream::iter(vec![Err::<Bytes, _>(DestinationError::NotFound {
            name: "n".into(),
            at: "a".into(),
        })]);
        let _ = poem::Body::from_bytes_stream(stream);
        let io: std::io::Error = DestinationError::NotFound { name: "n".into(), at: "a".into() }.into();
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn names_and_url_helpers() {
        assert!(is_backup_name("bravely-20260302-090000.000-manual.bravely-backup"));
        for bad in ["../x.bravely-backup", ".bravely-backup", "x.tar", "a/b.bravely-backup", "x y.bravely-backup"] {
            assert!(!is_backup_name(bad), "{bad}");
        }
        assert!(is_url("s3://b") && is_url("file:///x") && !is_url("/var/backups") && !is_url("backups"));
        assert_eq!(redact_url("s3://key:secret@bucket/p?x=y#f"), "s3://bucket/p");
        assert_eq!(redact_url("http://127.0.0.1:9000/"), "http://127.0.0.1:9000");
        assert_eq!(percent_decode("a%20b/c").as_deref(), Some("a b/c"));
    }

    #[test]
    fn part_size_grows_for_huge_files() {
        let d = Destination::open("s3://b", &s3_options()).expect("opens");
        assert_eq!(d.part_size_for(10 * MIB), 16 * MIB);
        let huge = 500 * 1024 * MIB;
        assert!(huge.div_ceil(d.part_size_for(huge)) <= MAX_PARTS);
    }

    #[test]
    fn config_section_parses_and_rejects_unknown_keys() {
        let cfg = crate::config::Config::from_toml(
            "[backups.storage]\npart_size_mib = 8\n[backups.storage.s3]\nendpoint = \"https://s3.example.com\"\n\
             access_key_id = \"AK\"\nsecret_access_key = \"sekrit-value\"\npath_style = false\n",
        )
        .expect("parses");
        assert_eq!(cfg.backups.storage.part_size_mib, 8);
        assert!(!cfg.backups.storage.s3.path_style);
        assert!(!format!("{cfg:?}").contains("sekrit-value"), "Debug redacts the secret");
        let err = crate::config::Config::from_toml("[backups.storage.s3]\nsecret_key = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("secret_key"), "{err}");
    }
}
