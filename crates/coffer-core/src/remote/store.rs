//! Building the object store from `[remote]`, and turning its errors into messages an
//! operator can act on.
//!
//! Credentials come from the environment, read by each store's builder the way the cloud's
//! own tools read them:
//!
//! | URL | builder | variables |
//! |---|---|---|
//! | `s3://bucket/prefix` | `AmazonS3Builder::from_env` | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`, container and web-identity credentials |
//! | `gs://bucket/prefix` | `GoogleCloudStorageBuilder::from_env` | `GOOGLE_SERVICE_ACCOUNT` (a key file), `GOOGLE_APPLICATION_CREDENTIALS`, else the metadata server |
//! | `az://container/prefix` | `MicrosoftAzureBuilder::from_env` | `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY` or `AZURE_STORAGE_SAS_KEY`, `AZURE_CLIENT_ID`/`AZURE_CLIENT_SECRET`/`AZURE_TENANT_ID`, managed identity |
//! | `file:///path` | `LocalFileSystem::new_with_prefix` | none |

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use super::RemoteError;
// Defined in the leaf `location` (the configuration checks URLs with it); exported here too
// so `remote::store::…` paths keep working.
pub use super::location::{RemoteUrl, StoreKind};
use crate::config::RemoteConfig;

/// Builds the store. For `file://` the directory must exist unless `create_local` (sync)
/// says to create it.
pub(crate) fn build(
    url: &RemoteUrl,
    config: &RemoteConfig,
    create_local: bool,
) -> Result<Arc<dyn ObjectStore>, RemoteError> {
    let display = url.display();
    let invalid = |e: object_store::Error| RemoteError::Config {
        remote: display.clone(),
        reason: scrub(&e.to_string()),
    };
    let mut client = ClientOptions::new()
        .with_timeout(Duration::from_secs(config.timeout))
        .with_connect_timeout(Duration::from_secs(10));
    if config.allow_http {
        client = client.with_allow_http(true);
    }
    let retry = RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: config.max_retries,
        retry_timeout: Duration::from_secs(config.retry_timeout),
    };
    let store: Arc<dyn ObjectStore> = match url.kind {
        StoreKind::S3 => {
            let mut b = AmazonS3Builder::from_env()
                .with_url(url.url.as_str())
                .with_client_options(client)
                .with_retry(retry);
            if let Some(ep) = &config.endpoint {
                b = b.with_endpoint(ep);
            }
            if let Some(region) = &config.region {
                b = b.with_region(region);
            }
            if let Some(v) = config.virtual_hosted_style {
                b = b.with_virtual_hosted_style_request(v);
            }
            if config.allow_http {
                b = b.with_allow_http(true);
            }
            Arc::new(b.build().map_err(invalid)?)
        }
        StoreKind::Gcs => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_url(url.url.as_str())
                .with_client_options(client)
                .with_retry(retry)
                .build()
                .map_err(invalid)?,
        ),
        StoreKind::Azure => {
            let mut b = MicrosoftAzureBuilder::from_env()
                .with_url(url.url.as_str())
                .with_client_options(client)
                .with_retry(retry);
            if let Some(ep) = &config.endpoint {
                b = b.with_endpoint(ep.clone());
            }
            if config.allow_http {
                b = b.with_allow_http(true);
            }
            Arc::new(b.build().map_err(invalid)?)
        }
        StoreKind::Local => {
            let dir = url.local_dir.as_ref().expect("file URL has a directory");
            if create_local && !dir.exists() {
                crate::util::fsutil::create_private_dir_all(dir).map_err(|source| {
                    RemoteError::Local {
                        operation: "create the remote directory",
                        path: dir.clone(),
                        source,
                    }
                })?;
            }
            if !dir.is_dir() {
                return Err(RemoteError::Unavailable {
                    remote: display.clone(),
                    operation: "open",
                    object: dir.display().to_string(),
                    problem: "the directory does not exist".into(),
                    hint: "create it (mkdir -p, or mount the disk) or check remote.url".into(),
                });
            }
            Arc::new(
                LocalFileSystem::new_with_prefix(dir)
                    .map_err(invalid)?
                    .with_automatic_cleanup(true),
            )
        }
    };
    Ok(store)
}

/// Environment variables whose values must never appear in a message.
const SECRET_VARS: &[&str] = &[
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_CLIENT_SECRET",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
];

/// Replaces the values of the credential variables in `text` with `***`.
pub fn scrub(text: &str) -> String {
    let mut out = text.to_string();
    for var in SECRET_VARS {
        if let Ok(v) = std::env::var(var)
            && v.len() >= 4
        {
            out = out.replace(&v, "***");
        }
    }
    out
}

/// What to check when the store refuses us; `kind` is `None` for a store the embedding
/// program built ([`Remote::with_store`](super::Remote::with_store)).
fn credentials_hint(kind: Option<StoreKind>) -> &'static str {
    let Some(kind) = kind else {
        return "check the credentials and permissions the store was built with: they must allow listing, reading, writing and deleting under the prefix";
    };
    match kind {
        StoreKind::S3 => {
            "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), remote.region, and that the key may list, read, write and delete under the prefix"
        }
        StoreKind::Gcs => {
            "check GOOGLE_SERVICE_ACCOUNT / GOOGLE_APPLICATION_CREDENTIALS and the service account's roles on the bucket"
        }
        StoreKind::Azure => {
            "check AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY (or the SAS / client credentials) and the role on the container"
        }
        StoreKind::Local => "check the directory's owner and permissions",
    }
}

/// The whole chain of an error as one line.
fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        source = s.source();
    }
    text.replace('\n', " ")
}

/// Classifies an object store error: credentials, permissions, a missing bucket and an
/// unreachable endpoint become [`RemoteError::Unavailable`] with what to check. `kind` is
/// `None` for a store the embedding program built.
pub(crate) fn classify(
    remote: &str,
    kind: Option<StoreKind>,
    operation: &'static str,
    object: &str,
    e: object_store::Error,
) -> RemoteError {
    let text = scrub(&chain_text(&e));
    let unavailable = |problem: &str, hint: &str| RemoteError::Unavailable {
        remote: remote.to_string(),
        operation,
        object: object.to_string(),
        problem: problem.to_string(),
        hint: hint.to_string(),
    };
    let lower = text.to_ascii_lowercase();
    match &e {
        object_store::Error::Unauthenticated { .. } => {
            return unavailable(
                "authentication failed (credentials missing, wrong or expired)",
                credentials_hint(kind),
            );
        }
        object_store::Error::PermissionDenied { .. } => {
            let problem = if lower.contains("signature") || lower.contains("invalidaccesskeyid") {
                "authentication failed (the access key or secret is wrong)"
            } else {
                "permission denied"
            };
            return unavailable(problem, credentials_hint(kind));
        }
        object_store::Error::NotFound { .. } if operation == "list" => {
            return unavailable(
                "the bucket (or container) does not exist",
                "create it, or correct remote.url (and remote.endpoint / remote.region)",
            );
        }
        _ => {}
    }
    if lower.contains("nosuchbucket") || lower.contains("containernotfound") {
        return unavailable(
            "the bucket (or container) does not exist",
            "create it, or correct remote.url (and remote.endpoint / remote.region)",
        );
    }
    if lower.contains("accessdenied") || lower.contains("forbidden") {
        return unavailable("permission denied", credentials_hint(kind));
    }
    let network = [
        "error sending request",
        "connection refused",
        "connection reset",
        "connect error",
        "dns error",
        "timed out",
        "operation timed out",
        "broken pipe",
        "connection closed",
        "unexpected eof",
        "incompletemessage",
        "error trying to connect",
    ];
    if network.iter().any(|n| lower.contains(n)) {
        return unavailable(
            &format!("cannot reach the endpoint ({})", shorten(&text)),
            "check remote.endpoint / remote.url, the network, and that the service is up; requests were retried with backoff",
        );
    }
    RemoteError::Store {
        remote: remote.to_string(),
        operation,
        object: object.to_string(),
        reason: text,
    }
}

fn shorten(text: &str) -> String {
    const MAX: usize = 300;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        let e = classify(
            "s3://b/p",
            Some(StoreKind::S3),
            "list",
            "p/",
            object_store::Error::NotFound {
                path: "p".into(),
                source: "NoSuchBucket".into(),
            },
        );
        assert!(e.is_unavailable(), "{e}");
        assert!(e.to_string().contains("does not exist"), "{e}");
        let e = classify(
            "s3://b/p",
            Some(StoreKind::S3),
            "upload",
            "p/x",
            object_store::Error::PermissionDenied {
                path: "p/x".into(),
                source: "SignatureDoesNotMatch".into(),
            },
        );
        assert!(e.to_string().contains("AWS_SECRET_ACCESS_KEY"), "{e}");
        let e = classify(
            "s3://b/p",
            Some(StoreKind::S3),
            "upload",
            "p/x",
            object_store::Error::Generic {
                store: "S3",
                source: "error sending request: Connection refused".into(),
            },
        );
        assert!(e.to_string().contains("cannot reach"), "{e}");
    }
}
