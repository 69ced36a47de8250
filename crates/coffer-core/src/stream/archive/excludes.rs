//! The `workspace.exclude` patterns, compiled once and matched against every path the walk
//! meets.

use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::ArchiveError;

/// Compiled [`ArchiveOptions::exclude`](super::ArchiveOptions::exclude) patterns.
pub(super) struct Excludes {
    by_name: GlobSet,
    by_path: GlobSet,
    dir_by_name: GlobSet,
    dir_by_path: GlobSet,
}

impl Excludes {
    /// Compiles `patterns`; the first invalid one is the error.
    pub(super) fn new(patterns: &[String]) -> Result<Self, ArchiveError> {
        let mut sets: [GlobSetBuilder; 4] = std::array::from_fn(|_| GlobSetBuilder::new());
        for pattern in patterns {
            let invalid = |reason: String| ArchiveError::InvalidExclude {
                pattern: pattern.clone(),
                reason,
            };
            let (body, dir_only) = match pattern.strip_suffix('/') {
                Some(body) => (body, true),
                None => (pattern.as_str(), false),
            };
            let (body, anchored) = match body.strip_prefix('/') {
                Some(body) => (body, true),
                None => (body, body.contains('/')),
            };
            if body.is_empty() {
                return Err(invalid("empty pattern".into()));
            }
            let glob = GlobBuilder::new(body)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| invalid(e.kind().to_string()))?;
            sets[usize::from(anchored) + 2 * usize::from(dir_only)].add(glob);
        }
        let [by_name, by_path, dir_by_name, dir_by_path] = sets.map(|b| b.build());
        let built = |set: Result<GlobSet, globset::Error>| {
            set.map_err(|e| ArchiveError::InvalidExclude {
                pattern: e.glob().unwrap_or_default().to_string(),
                reason: e.kind().to_string(),
            })
        };
        Ok(Excludes {
            by_name: built(by_name)?,
            by_path: built(by_path)?,
            dir_by_name: built(dir_by_name)?,
            dir_by_path: built(dir_by_path)?,
        })
    }

    /// Whether `rel` (relative to the root; `is_dir` if it is a directory) is left out.
    pub(super) fn is_excluded(&self, rel: &Path, is_dir: bool) -> bool {
        let name = rel.file_name().map(Path::new).unwrap_or(rel);
        self.by_name.is_match(name)
            || self.by_path.is_match(rel)
            || (is_dir && (self.dir_by_name.is_match(name) || self.dir_by_path.is_match(rel)))
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use crate::stream::archive::test_support::{archive, tar_names, write_file};
    use crate::stream::archive::{ArchiveError, ArchiveOptions, write_workspace_tar};

    #[test]
    fn excludes_match_names_anywhere_and_paths_from_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for dir in [
            "cache/y",
            "sub/cache",
            "sub/node_modules",
            "node_modules/pkg",
            "build/x",
        ] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        for file in [
            "a.tmp",
            "keep.tmpx",
            "tmp.txt",
            "cache/x",
            "cache/y/z",
            "sub/b.tmp",
            "sub/keep.txt",
            "sub/cache/keep",
            "sub/node_modules/m.js",
            "node_modules/pkg/index.js",
            "build/x/out",
            "sub/build",
        ] {
            write_file(&root.join(file), file.as_bytes(), 0o644);
        }
        let (tarball, stats) = archive(root, &["*.tmp", "cache/**", "node_modules", "/build/"]);
        let names: Vec<String> = tar_names(&tarball)
            .into_iter()
            .map(|n| String::from_utf8(n).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "./",
                "cache/",
                "keep.tmpx",
                "sub/",
                "sub/build",
                "sub/cache/",
                "sub/cache/keep",
                "sub/keep.txt",
                "tmp.txt",
            ]
        );
        assert!(stats.skipped.is_empty());

        for bad in ["a[", ""] {
            let options = ArchiveOptions {
                exclude: vec![bad.into()],
                ..Default::default()
            };
            let err = write_workspace_tar(root, &options, Vec::new()).unwrap_err();
            assert!(matches!(err, ArchiveError::InvalidExclude { .. }), "{err}");
            assert!(
                err.to_string().starts_with("invalid exclude pattern"),
                "{err}"
            );
        }
    }
}
