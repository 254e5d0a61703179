//! `[backups.storage]`: the options of remote destinations.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::Secret;

/// `[backups.storage]`: options for every destination of a kind.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageOptions {
    /// Size of the parts of a multipart upload; files up to one part go up in one request.
    pub part_size_mib: u64,
    /// Retries of a failed request (connection errors, 5xx), with exponential backoff.
    pub retries: usize,
    /// Longest wait for one request (a part upload counts as one).
    pub timeout_seconds: u64,
    pub s3: S3Options,
    pub gcs: GcsOptions,
    pub azure: AzureOptions,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            part_size_mib: 16,
            retries: 3,
            timeout_seconds: 300,
            s3: S3Options::default(),
            gcs: GcsOptions::default(),
            azure: AzureOptions::default(),
        }
    }
}

/// `[backups.storage.s3]`: for `s3://bucket/prefix` URLs (AWS or any S3-compatible service).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct S3Options {
    /// The service's address for S3-compatible providers (`https://s3.example.com`); AWS when
    /// unset.
    pub endpoint: Option<String>,
    /// AWS region, or what the provider asks for (many accept anything; default `us-east-1`).
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    /// For temporary credentials.
    pub session_token: Option<Secret>,
    /// `true` (the default): `https://endpoint/bucket/key`, which every S3-compatible server
    /// understands. `false`: virtual-hosted style, `https://bucket.endpoint/key`.
    pub path_style: bool,
    /// Allows `http://` endpoints (a server on the same machine or network).
    pub allow_http: bool,
    /// Without static keys, take credentials from the EC2 instance metadata service.
    pub instance_metadata: bool,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            path_style: true,
            allow_http: false,
            instance_metadata: false,
        }
    }
}

/// `[backups.storage.gcs]`: for `gs://bucket/prefix` URLs. Without either key, the builder
/// uses `GOOGLE_APPLICATION_CREDENTIALS` or gcloud's application default credentials.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GcsOptions {
    /// Path of a service account JSON key file.
    pub service_account_path: Option<PathBuf>,
    /// The service account JSON key itself.
    pub service_account_key: Option<Secret>,
    /// Without a key, use the instance's service account (GCE metadata server).
    pub instance_metadata: bool,
}

/// `[backups.storage.azure]`: for `az://container/prefix` URLs.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AzureOptions {
    /// Storage account name.
    pub account: Option<String>,
    pub access_key: Option<Secret>,
    /// Another blob endpoint (Azurite, sovereign clouds).
    pub endpoint: Option<String>,
    pub allow_http: bool,
    /// Without a key or `AZURE_*` credentials, use the VM's managed identity.
    pub managed_identity: bool,
}
