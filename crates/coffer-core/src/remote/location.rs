//! Where the remote is: `remote.url` parsed into the store, bucket and prefix it names, and
//! shown without credentials.
//!
//! A leaf: [`crate::config`] validates `remote.url` with it, so it depends on nothing that
//! depends on the configuration.

use object_store::path::Path as ObjectPath;

/// Which kind of object store a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Amazon S3 or an S3-compatible store.
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azure,
    /// A directory on this machine (a mounted disk, NFS, …).
    Local,
}

/// A parsed `remote.url`.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteUrl {
    /// The store.
    pub kind: StoreKind,
    /// The URL as configured.
    pub url: String,
    /// The bucket or container (empty for `file://`).
    pub bucket: String,
    /// The key prefix below the bucket (for `file://`: empty; the directory is the root).
    pub prefix: ObjectPath,
    /// For `file://`: the directory.
    pub local_dir: Option<std::path::PathBuf>,
}

impl RemoteUrl {
    /// Parses and checks a remote URL; the error says what is accepted.
    pub fn parse(text: &str) -> Result<RemoteUrl, String> {
        let shown = display_url(text);
        let url = url::Url::parse(text).map_err(|e| {
            format!(
                "`{shown}` is not a URL ({e}); use s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or file:///absolute/path"
            )
        })?;
        if url.query().is_some() || url.password().is_some() || !url.username().is_empty() {
            return Err(format!(
                "`{shown}` carries credentials or options in the URL: set them in the environment (AWS_ACCESS_KEY_ID, …) and [remote] instead"
            ));
        }
        let kind = match url.scheme() {
            "s3" | "s3a" => StoreKind::S3,
            "gs" => StoreKind::Gcs,
            "az" | "azure" | "abfs" | "abfss" => StoreKind::Azure,
            "file" => StoreKind::Local,
            other => {
                return Err(format!(
                    "scheme `{other}` in `{shown}` is not supported; use s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or file:///absolute/path"
                ));
            }
        };
        if kind == StoreKind::Local {
            if url
                .host_str()
                .is_some_and(|h| !h.is_empty() && h != "localhost")
            {
                return Err(format!(
                    "`{shown}` must be an absolute path: file:///srv/offsite (three slashes)"
                ));
            }
            let dir = url
                .to_file_path()
                .map_err(|()| format!("`{shown}` must be an absolute path: file:///srv/offsite"))?;
            return Ok(RemoteUrl {
                kind,
                url: text.to_string(),
                bucket: String::new(),
                prefix: ObjectPath::default(),
                local_dir: Some(dir),
            });
        }
        let bucket = url.host_str().unwrap_or("").to_string();
        if bucket.is_empty() {
            return Err(format!("`{shown}` names no bucket: s3://bucket/prefix"));
        }
        let prefix = ObjectPath::parse(url.path().trim_matches('/'))
            .map_err(|e| format!("invalid prefix in `{shown}`: {e}"))?;
        Ok(RemoteUrl {
            kind,
            url: text.to_string(),
            bucket,
            prefix,
            local_dir: None,
        })
    }

    /// The URL without user information or query: safe for messages.
    pub fn display(&self) -> String {
        display_url(&self.url)
    }
}

/// A URL with user information, query and fragment removed, for messages.
pub fn display_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => text
            .split(['?', '#'])
            .next()
            .map(|s| match s.split_once('@') {
                Some((scheme_user, host)) => match scheme_user.split_once("://") {
                    Some((scheme, _)) => format!("{scheme}://{host}"),
                    None => host.to_string(),
                },
                None => s.to_string(),
            })
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_store_bucket_and_prefix() {
        let u = RemoteUrl::parse("s3://my-bucket/coffer/portal/").unwrap();
        assert_eq!(u.kind, StoreKind::S3);
        assert_eq!(u.bucket, "my-bucket");
        assert_eq!(u.prefix.as_ref(), "coffer/portal");
        let u = RemoteUrl::parse("gs://b").unwrap();
        assert_eq!((u.kind, u.prefix.as_ref()), (StoreKind::Gcs, ""));
        let u = RemoteUrl::parse("az://container/x").unwrap();
        assert_eq!(u.kind, StoreKind::Azure);
        let u = RemoteUrl::parse("file:///srv/offsite").unwrap();
        assert_eq!(u.local_dir.unwrap(), std::path::Path::new("/srv/offsite"));
        for (bad, why) in [
            ("ftp://h/x", "not supported"),
            ("s3:///prefix", "no bucket"),
            ("file://srv/offsite", "absolute"),
            ("s3://AKIA:secret@bucket/x", "credentials"),
            ("s3://bucket/x?secret=1", "credentials"),
            ("bucket/x", "not a URL"),
        ] {
            let e = RemoteUrl::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("secret@") && !e.contains("secret=1"), "{e}");
        }
    }

    #[test]
    fn display_drops_user_info_and_query() {
        assert_eq!(
            display_url("s3://key:secret@bucket/p?token=x"),
            "s3://bucket/p"
        );
        assert_eq!(display_url("not a url?x=1"), "not a url");
    }
}
