//! Alembic revisions: is a backup's schema the one the code expects?
//!
//! A backup records the rows of `alembic_version` (see [`crate::stream::dump_scan`]). Before a
//! restore, coffer compares them with the heads the installed code expects, taken from
//! `alembic heads` ([`parse_heads_output`]) or from the migration scripts themselves
//! ([`RevisionGraph::from_versions_dir`]), and tells an older backup (restore, then
//! `alembic upgrade head`) from a newer or unrelated one (the code cannot run on it).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why the migration scripts could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AlembicError {
    /// The directory or a file in it could not be read.
    #[error("cannot read Alembic migrations at {}: {source}", .path.display())]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A script sets `revision` but its revision or `down_revision` could not be understood.
    #[error("{}: {message}", .path.display())]
    Parse {
        /// The script.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Two scripts set the same `revision` (Alembic refuses this too).
    #[error("revision {revision} is defined twice: in {} and {}", .first.display(), .second.display())]
    Duplicate {
        /// The revision id.
        revision: String,
        /// The script seen first.
        first: PathBuf,
        /// The other script.
        second: PathBuf,
    },
}

/// The revisions of a migration history and the revisions each one revises.
///
/// Only `down_revision` makes edges: `depends_on` (cross-branch dependencies) is ignored, as
/// it does not decide which revisions are heads in ordinary histories.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevisionGraph {
    /// Revision id → its down revisions (none for a root, several for a merge).
    down: BTreeMap<String, Vec<String>>,
}

impl RevisionGraph {
    /// Reads the migration scripts under `dir` (an Alembic `versions` directory), recursively
    /// as Alembic's `version_locations` allow, ignoring `__pycache__`.
    ///
    /// A `*.py` file is a migration when it assigns `revision` at the start of a line; others
    /// (`__init__.py`, helpers) are ignored. Both assignments may carry a type annotation
    /// (`revision: str = "abc"`, `down_revision: str | Sequence[str] | None = None`), use
    /// either quote, and `down_revision` may be `None`, a string, or a tuple or list of strings
    /// (spanning lines). A migration whose values cannot be read this way is an error naming
    /// the file, rather than a silently wrong graph.
    pub fn from_versions_dir(dir: &Path) -> Result<Self, AlembicError> {
        let mut down = BTreeMap::new();
        let mut seen_in: BTreeMap<String, PathBuf> = BTreeMap::new();
        let walk = walkdir::WalkDir::new(dir)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.file_name() != "__pycache__");
        for entry in walk {
            let entry = entry.map_err(|e| AlembicError::Io {
                path: e.path().unwrap_or(dir).to_path_buf(),
                source: e.into(),
            })?;
            let path = entry.path();
            if !entry.file_type().is_file() || path.extension().is_none_or(|ext| ext != "py") {
                continue;
            }
            let source = std::fs::read_to_string(path).map_err(|source| AlembicError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            let parsed = parse_script(&source).map_err(|message| AlembicError::Parse {
                path: path.to_path_buf(),
                message,
            })?;
            let Some((revision, downs)) = parsed else {
                continue;
            };
            if let Some(first) = seen_in.get(&revision) {
                return Err(AlembicError::Duplicate {
                    revision,
                    first: first.clone(),
                    second: path.to_path_buf(),
                });
            }
            seen_in.insert(revision.clone(), path.to_path_buf());
            down.insert(revision, downs);
        }
        Ok(RevisionGraph { down })
    }

    /// Builds a graph from `(revision, down_revisions)` pairs.
    #[cfg(test)]
    pub fn from_edges<I, R, D>(edges: I) -> Self
    where
        I: IntoIterator<Item = (R, D)>,
        R: Into<String>,
        D: IntoIterator,
        D::Item: Into<String>,
    {
        let down = edges
            .into_iter()
            .map(|(rev, downs)| (rev.into(), downs.into_iter().map(Into::into).collect()))
            .collect();
        RevisionGraph { down }
    }

    /// The revisions that no revision revises: what `alembic heads` lists.
    pub fn heads(&self) -> BTreeSet<String> {
        let revised: BTreeSet<&String> = self.down.values().flatten().collect();
        self.down
            .keys()
            .filter(|rev| !revised.contains(rev))
            .cloned()
            .collect()
    }

    /// Whether the history has a script for `rev`.
    pub fn contains(&self, rev: &str) -> bool {
        self.down.contains_key(rev)
    }

    /// Whether `ancestor` comes strictly before `descendant`: it is reached from `descendant`
    /// by following down revisions. A revision is not its own ancestor.
    pub fn is_ancestor(&self, ancestor: &str, descendant: &str) -> bool {
        let mut stack: Vec<&str> = vec![descendant];
        let mut visited = BTreeSet::new();
        while let Some(rev) = stack.pop() {
            for down in self.down.get(rev).into_iter().flatten() {
                if down == ancestor {
                    return true;
                }
                if visited.insert(down.as_str()) {
                    stack.push(down);
                }
            }
        }
        false
    }

    /// `ancestor` is `descendant` or comes before it.
    fn at_or_before(&self, ancestor: &str, descendant: &str) -> bool {
        ancestor == descendant || self.is_ancestor(ancestor, descendant)
    }
}

/// How a backup's Alembic heads relate to the heads the code expects. `Display` gives a
/// sentence for the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadRelation {
    /// The same set of heads: restore as is.
    Same,
    /// The backup is behind the code (or was never migrated): restore, then run
    /// `alembic upgrade head`.
    BackupOlder,
    /// The backup is ahead of the code, typically written by a later release: this code
    /// cannot run on it.
    BackupNewer,
    /// Neither is behind the other (divergent branches), or there was no history to tell.
    Unrelated,
}

impl fmt::Display for HeadRelation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeadRelation::Same => "the backup is at the Alembic head the code expects",
            HeadRelation::BackupOlder => {
                "the backup is at an older Alembic revision: run `alembic upgrade head` after restoring"
            }
            HeadRelation::BackupNewer => {
                "the backup is at a newer Alembic revision than this code knows"
            }
            HeadRelation::Unrelated => "the backup's Alembic revision does not match the code's",
        })
    }
}

/// Compares a backup's heads with the code's expected heads, as sets (order and duplicates
/// do not matter).
///
/// Equal sets are [`HeadRelation::Same`]. Otherwise, without a `graph` nothing more can be
/// said: [`HeadRelation::Unrelated`]. With one, in this order:
/// 1. a backup head the graph does not contain → [`HeadRelation::BackupNewer`]: an unknown
///    revision could also come from an unrelated project, but in practice it is a backup
///    written by a later release whose scripts this code lacks;
/// 2. every backup head at or before some expected head → [`HeadRelation::BackupOlder`];
///    this includes no backup heads at all (a database never migrated);
/// 3. every expected head at or before some backup head → [`HeadRelation::BackupNewer`];
/// 4. otherwise [`HeadRelation::Unrelated`] (the backup is on a branch the code is not).
pub fn compare_heads(
    backup: &[String],
    expected: &[String],
    graph: Option<&RevisionGraph>,
) -> HeadRelation {
    let backup: BTreeSet<&str> = backup.iter().map(String::as_str).collect();
    let expected: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    if backup == expected {
        return HeadRelation::Same;
    }
    let Some(graph) = graph else {
        return HeadRelation::Unrelated;
    };
    let covered_by = |lower: &BTreeSet<&str>, upper: &BTreeSet<&str>| {
        lower
            .iter()
            .all(|l| upper.iter().any(|u| graph.at_or_before(l, u)))
    };
    if backup.iter().any(|rev| !graph.contains(rev)) {
        HeadRelation::BackupNewer
    } else if covered_by(&backup, &expected) {
        HeadRelation::BackupOlder
    } else if covered_by(&expected, &backup) {
        HeadRelation::BackupNewer
    } else {
        HeadRelation::Unrelated
    }
}

/// The revision ids in the output of `alembic heads` or `alembic current`, sorted, without
/// duplicates.
///
/// A line counts when, after surrounding whitespace is trimmed, it is a revision id
/// (`[0-9A-Za-z_]+`) followed only by parenthesised markers, if any: `9f1c8d2a3b4e`,
/// `9f1c8d2a3b4e (head)`, `3cac04ae8714 (audit) (head) (mergepoint)`. In verbose output
/// (any line starts with `Rev: `) only the `Rev: ` lines count, so the indented docstrings
/// it prints cannot be mistaken for ids. Log lines (`INFO  [alembic.runtime.migration] …`)
/// never match.
pub fn parse_heads_output(text: &str) -> Vec<String> {
    let verbose = text.lines().any(|l| l.trim_start().starts_with("Rev: "));
    let ids: BTreeSet<String> = text
        .lines()
        .map(str::trim)
        .filter_map(|line| {
            if verbose {
                line.strip_prefix("Rev: ")
            } else {
                Some(line)
            }
        })
        .filter_map(revision_line)
        .map(str::to_owned)
        .collect();
    ids.into_iter().collect()
}

/// The id of a `rev (marker) (marker)…` line.
fn revision_line(line: &str) -> Option<&str> {
    let line = line.trim();
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(line.len());
    let (id, mut rest) = line.split_at(end);
    if id.is_empty() {
        return None;
    }
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Some(id);
        }
        let close = rest.strip_prefix('(')?.find(')')?;
        rest = &rest[close + 2..];
    }
}

/// The `revision` and down revisions a migration script assigns; `None` when it assigns no
/// `revision` (not a migration).
fn parse_script(source: &str) -> Result<Option<(String, Vec<String>)>, String> {
    let lines: Vec<&str> = source.lines().collect();
    let mut revision = None;
    let mut down = None;
    for (i, line) in lines.iter().enumerate() {
        for (name, slot) in [("revision", &mut revision), ("down_revision", &mut down)] {
            if let Some(value) = assigned_value(line, name) {
                // Last assignment wins, as when Python runs the module.
                *slot = Some((i + 1, logical_value(value, &lines[i + 1..])));
            }
        }
    }
    let Some((line, revision)) = revision else {
        return Ok(None);
    };
    let revision = match parse_value(&revision) {
        Ok(Value::Str(rev)) if !rev.is_empty() => rev,
        _ => {
            return Err(format!(
                "line {line}: `revision` is not a non-empty string: {}",
                revision.trim()
            ));
        }
    };
    let (line, down) = down.ok_or_else(|| format!("revision {revision} has no `down_revision`"))?;
    let downs = match parse_value(&down) {
        Ok(Value::None) => Vec::new(),
        Ok(Value::Str(rev)) => vec![rev],
        Ok(Value::Seq(revs)) => revs,
        Err(why) => {
            return Err(format!(
                "line {line}: cannot read `down_revision` ({why}): {}",
                down.trim()
            ));
        }
    };
    Ok(Some((revision, downs)))
}

/// The text after `=` when `line` assigns `name` at module level (column 0), with or without
/// a type annotation.
fn assigned_value<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(name)?.trim_start_matches([' ', '\t']);
    let rest = match rest.strip_prefix(':') {
        Some(annotated) => &annotated[annotated.find('=')?..],
        None => rest,
    };
    let value = rest.strip_prefix('=')?;
    (!value.starts_with('=')).then_some(value)
}

/// The value text, joined with the following lines while a bracket it opens is not closed.
fn logical_value(value: &str, following: &[&str]) -> String {
    let close = match value.trim_start().chars().next() {
        Some('(') => ')',
        Some('[') => ']',
        _ => return value.to_owned(),
    };
    let mut text = value.to_owned();
    for line in following {
        if text.contains(close) {
            break;
        }
        text.push('\n');
        text.push_str(line);
    }
    text
}

/// A Python value as migration scripts write revision ids.
#[derive(Debug, PartialEq)]
enum Value {
    None,
    Str(String),
    Seq(Vec<String>),
}

/// Parses `None`, a quoted string, or a tuple or list of quoted strings, with comments.
fn parse_value(text: &str) -> Result<Value, String> {
    let mut rest = skip_blank(text);
    let value = if let Some(after) = rest.strip_prefix("None")
        && !after.starts_with(|c: char| c.is_alphanumeric() || c == '_')
    {
        rest = after;
        Value::None
    } else if let Some((s, after)) = string(rest) {
        rest = after;
        Value::Str(s)
    } else if let Some(close) = match rest.chars().next() {
        Some('(') => Some(')'),
        Some('[') => Some(']'),
        _ => None,
    } {
        rest = &rest[1..];
        let mut items = Vec::new();
        loop {
            rest = skip_blank(rest);
            if let Some(after) = rest.strip_prefix(close) {
                rest = after;
                break;
            }
            let (s, after) = string(rest).ok_or("expected a quoted revision id")?;
            items.push(s);
            rest = skip_blank(after);
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if let Some(after) = rest.strip_prefix(close) {
                rest = after;
                break;
            } else {
                return Err(format!("expected `,` or `{close}`"));
            }
        }
        Value::Seq(items)
    } else {
        return Err("expected None, a quoted string, a tuple or a list".into());
    };
    if skip_blank(rest).is_empty() {
        Ok(value)
    } else {
        Err("unexpected text after the value".into())
    }
}

/// Skips whitespace, newlines and `#` comments.
fn skip_blank(mut s: &str) -> &str {
    loop {
        s = s.trim_start();
        match s.strip_prefix('#') {
            Some(comment) => s = comment.find('\n').map_or("", |i| &comment[i..]),
            None => return s,
        }
    }
}

/// A single- or double-quoted string without escapes (revision ids need none).
fn string(s: &str) -> Option<(String, &str)> {
    let quote = s.chars().next().filter(|&c| c == '"' || c == '\'')?;
    let body = &s[1..];
    let end = body.find([quote, '\n'])?;
    (body[end..].starts_with(quote)).then(|| (body[..end].to_owned(), &body[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    /// a → b → c → d, b → x, m merges d and x.
    fn graph() -> RevisionGraph {
        RevisionGraph::from_edges([
            ("a", vec![]),
            ("b", vec!["a"]),
            ("c", vec!["b"]),
            ("d", vec!["c"]),
            ("x", vec!["b"]),
            ("m", vec!["d", "x"]),
        ])
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn graph_queries() {
        let g = graph();
        assert_eq!(g.heads(), strings(&["m"]).into_iter().collect());
        assert!(g.contains("x") && !g.contains("zz"));
        let cases: &[(&str, &str, bool)] = &[
            ("a", "m", true),
            ("x", "m", true),
            ("d", "m", true),
            ("b", "x", true),
            ("c", "x", false),
            ("x", "d", false),
            ("m", "a", false),
            ("a", "a", false),
            ("zz", "m", false),
            ("a", "zz", false),
        ];
        for &(ancestor, descendant, want) in cases {
            assert_eq!(
                g.is_ancestor(ancestor, descendant),
                want,
                "{ancestor} before {descendant}"
            );
        }
        let before_merge = RevisionGraph::from_edges([
            ("a", vec![]),
            ("b", vec!["a"]),
            ("d", vec!["b"]),
            ("x", vec!["b"]),
        ]);
        assert_eq!(
            before_merge.heads(),
            strings(&["d", "x"]).into_iter().collect()
        );
    }

    #[test]
    fn compare_table() {
        use HeadRelation::*;
        let g = graph();
        let cases: &[(&[&str], &[&str], bool, HeadRelation)] = &[
            (&["m"], &["m"], true, Same),
            (&["m"], &["m"], false, Same),
            (&["d", "x"], &["x", "d"], false, Same),
            (&[], &[], false, Same),
            (&["d"], &["m"], true, BackupOlder),
            (&["d", "x"], &["m"], true, BackupOlder),
            (&["a"], &["m"], true, BackupOlder),
            (&["c", "x"], &["m"], true, BackupOlder),
            (&[], &["m"], true, BackupOlder),
            (&["d"], &["d", "x"], true, BackupOlder),
            (&["m"], &["d"], true, BackupNewer),
            (&["m"], &["d", "x"], true, BackupNewer),
            (&["d", "x"], &["d"], true, BackupNewer),
            (&["zz"], &["m"], true, BackupNewer),
            (&["m", "zz"], &["m"], true, BackupNewer),
            (&["d"], &["x"], true, Unrelated),
            (&["c", "x"], &["d"], true, Unrelated),
            (&["d"], &["m"], false, Unrelated),
            (&[], &["m"], false, Unrelated),
            (&["zz"], &["m"], false, Unrelated),
        ];
        for &(backup, expected, with_graph, want) in cases {
            let got = compare_heads(
                &strings(backup),
                &strings(expected),
                with_graph.then_some(&g),
            );
            assert_eq!(got, want, "{backup:?} vs {expected:?}, graph: {with_graph}");
        }
    }

    const FIXTURE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/alembic_versions");

    #[test]
    fn reads_fixture_versions_dir() {
        let g = RevisionGraph::from_versions_dir(Path::new(FIXTURE_DIR)).unwrap();
        let want = RevisionGraph::from_edges([
            ("1975ea83b712", vec![]),
            ("ae1027a6acf", vec!["1975ea83b712"]),
            ("27c6a30d7c24", vec!["ae1027a6acf"]),
            ("3cac04ae8714", vec!["ae1027a6acf"]),
            ("53fffde5ad5", vec!["27c6a30d7c24", "3cac04ae8714"]),
            ("9f1c8d2a3b4e", vec!["53fffde5ad5"]),
        ]);
        assert_eq!(g, want);
        assert_eq!(g.heads(), strings(&["9f1c8d2a3b4e"]).into_iter().collect());
        assert_eq!(
            compare_heads(
                &strings(&["27c6a30d7c24"]),
                &strings(&["9f1c8d2a3b4e"]),
                Some(&g)
            ),
            HeadRelation::BackupOlder
        );
    }

    #[test]
    fn script_values_table() {
        /// A script and the revision and down revisions it should yield.
        type Case = (
            &'static str,
            Option<(&'static str, &'static [&'static str])>,
        );
        let ok: &[Case] = &[
            ("", None),
            ("import os\nrevision_id = 'a'\n", None),
            ("    revision = 'a'\n", None),
            ("revision = 'a'\ndown_revision = None\n", Some(("a", &[]))),
            (
                "revision='a'\ndown_revision='b'  # parent\n",
                Some(("a", &["b"])),
            ),
            (
                "revision: str = \"a\"\ndown_revision: Union[str, None] = \"b\"\n",
                Some(("a", &["b"])),
            ),
            (
                "revision: str = 'a'\ndown_revision: str | Sequence[str] | None = None\n",
                Some(("a", &[])),
            ),
            (
                "revision = 'm'\ndown_revision = ('a', \"b\",)\n",
                Some(("m", &["a", "b"])),
            ),
            (
                "revision = 'm'\ndown_revision = [\"a\",\"b\"]\n",
                Some(("m", &["a", "b"])),
            ),
            (
                "revision = 'm'\ndown_revision = (\n    'a',  # one\n    # two:\n    'b',\n)\nbranch_labels = None\n",
                Some(("m", &["a", "b"])),
            ),
            ("revision = 'r'\ndown_revision = ()\n", Some(("r", &[]))),
            (
                "revision = 'old'\nrevision = 'new'\ndown_revision = None\n",
                Some(("new", &[])),
            ),
            (
                "\"\"\"doc\n\nRevision ID: zz\nRevises: yy\n\"\"\"\nrevision = 'a'\ndown_revision = None\n",
                Some(("a", &[])),
            ),
        ];
        for &(source, want) in ok {
            let want = want.map(|(rev, downs)| (rev.to_owned(), strings(downs)));
            assert_eq!(parse_script(source), Ok(want), "{source:?}");
        }
        let bad = [
            "revision = 'a'\n",
            "revision = 'a'\ndown_revision = compute()\n",
            "revision = 'a'\ndown_revision = ('b' 'c')\n",
            "revision = 'a'\ndown_revision = 'b\n",
            "revision = 'a'\ndown_revision = None or 'b'\n",
            "revision = None\ndown_revision = None\n",
            "revision = ''\ndown_revision = None\n",
            "revision = ('a',)\ndown_revision = None\n",
        ];
        for source in bad {
            assert!(parse_script(source).is_err(), "{source:?}");
        }
    }

    #[test]
    fn versions_dir_errors_and_skips() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("a.py", "revision = 'a'\ndown_revision = None\n");
        write("__pycache__/b.py", "not python at all: revision = (\n");
        write("notes.txt", "revision = (\n");
        write("env.py", "from alembic import context\n");
        let g = RevisionGraph::from_versions_dir(dir.path()).unwrap();
        assert_eq!(g, RevisionGraph::from_edges([("a", Vec::<String>::new())]));

        write("sub/b.py", "revision = 'b'\ndown_revision = get_parent()\n");
        let err = RevisionGraph::from_versions_dir(dir.path()).unwrap_err();
        assert!(matches!(&err, AlembicError::Parse { path, .. } if path.ends_with("sub/b.py")));
        assert!(err.to_string().contains("b.py"), "{err}");

        write("sub/b.py", "revision = 'a'\ndown_revision = None\n");
        let err = RevisionGraph::from_versions_dir(dir.path()).unwrap_err();
        assert!(matches!(&err, AlembicError::Duplicate { revision, .. } if revision == "a"));

        let missing = RevisionGraph::from_versions_dir(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(missing, AlembicError::Io { .. }));
    }

    #[test]
    fn heads_output_table() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("9f1c8d2a3b4e (head)\n", &["9f1c8d2a3b4e"]),
            (
                "INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.\n\
                 INFO  [alembic.runtime.migration] Will assume transactional DDL.\n\
                 9f1c8d2a3b4e (head)\n",
                &["9f1c8d2a3b4e"],
            ),
            (
                "3cac04ae8714 (audit) (head)\n27c6a30d7c24 (head)\n",
                &["27c6a30d7c24", "3cac04ae8714"],
            ),
            ("53fffde5ad5 (head) (mergepoint)\n", &["53fffde5ad5"]),
            ("ae1027a6acf\n", &["ae1027a6acf"]),
            ("  ae1027a6acf (effective head)\r\n", &["ae1027a6acf"]),
            ("ae1027a6acf -> 27c6a30d7c24 (head), add invoice\n", &[]),
            ("ae1027a6acf (head\n", &[]),
            (
                "Rev: 53fffde5ad5 (head) (mergepoint)\n\
                 Merges: 27c6a30d7c24, 3cac04ae8714\n\
                 Path: /app/migrations/versions/53fffde5ad5_merge.py\n\
                 \n\
                 \x20   merge invoice and audit\n\
                 \x20   \n\
                 \x20   Revision ID: 53fffde5ad5\n\
                 \x20   Revises: 27c6a30d7c24, 3cac04ae8714\n\
                 \x20   Create Date: 2024-06-01 10:00:00.000000\n\
                 \n",
                &["53fffde5ad5"],
            ),
            (
                "INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.\n\
                 Current revision(s) for postgresql://app:***@localhost/app:\n\
                 Rev: 9f1c8d2a3b4e (head)\n\
                 Parent: 53fffde5ad5\n\
                 Path: /app/migrations/versions/9f1c8d2a3b4e_index.py\n\
                 \n\
                 \x20   indexed\n",
                &["9f1c8d2a3b4e"],
            ),
        ];
        for &(text, want) in cases {
            assert_eq!(parse_heads_output(text), strings(want), "{text:?}");
        }
    }

    #[test]
    fn display_is_a_sentence() {
        assert!(
            HeadRelation::BackupOlder
                .to_string()
                .contains("alembic upgrade head")
        );
    }

    const NODES: &[&str] = &["a", "b", "c", "d", "x", "m", "zz"];

    fn revs() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(proptest::sample::select(NODES), 0..5)
            .prop_map(|v| v.into_iter().map(str::to_owned).collect())
    }

    proptest! {
        #[test]
        fn order_and_duplicates_do_not_matter(backup in revs(), expected in revs(), with_graph in any::<bool>()) {
            let g = graph();
            let g = with_graph.then_some(&g);
            let want = compare_heads(&backup, &expected, g);
            let mut backup2: Vec<String> = backup.iter().rev().cloned().collect();
            backup2.extend(backup.first().cloned());
            let mut expected2 = expected.clone();
            expected2.sort();
            expected2.reverse();
            prop_assert_eq!(compare_heads(&backup2, &expected2, g), want);
        }

        #[test]
        fn same_iff_equal_sets(backup in revs(), expected in revs(), with_graph in any::<bool>()) {
            let g = graph();
            let same = compare_heads(&backup, &expected, with_graph.then_some(&g)) == HeadRelation::Same;
            let b: BTreeSet<_> = backup.iter().collect();
            let e: BTreeSet<_> = expected.iter().collect();
            prop_assert_eq!(same, b == e);
        }
    }
}
