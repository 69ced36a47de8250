//! The plan against a real server: a schema with every kind of post-data statement is
//! dumped as coffer dumps it, the post-data part planned, and a new database built from
//! the pre-data and data, the index builds (in reverse order: order does not matter) and
//! the rest must have the very same schema.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::postgres::quote_literal;
use crate::sandbox::TempCluster;
use crate::stream::dump_scan::DumpScanner;

/// Longest any one program here may run.
const LIMIT: Duration = Duration::from_secs(120);

const SCHEMA: &str = r#"
CREATE TABLE public.t (id int PRIMARY KEY, a text UNIQUE, b int, c int);
ALTER TABLE public.t ADD CONSTRAINT t_bc_key UNIQUE (b, c) DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX t_lower_a ON public.t (lower(a));
CREATE INDEX t_partial ON public.t (b) WHERE b > 10;
CREATE TABLE public."Odd; ""name""" (
    "key;" int,
    "x USING y" int NOT NULL UNIQUE,
    CONSTRAINT "pk; USING
INDEX" PRIMARY KEY ("key;")
);
CREATE TABLE public.child (
    id int PRIMARY KEY,
    t_id int REFERENCES public.t (id),
    odd int REFERENCES public."Odd; ""name""" ("key;")
);
CREATE TABLE public.parted (id int, k int, PRIMARY KEY (id, k)) PARTITION BY RANGE (k);
CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES FROM (0) TO (100);
CREATE TABLE public.parted_2 PARTITION OF public.parted FOR VALUES FROM (100) TO (200);
CREATE INDEX parted_id ON public.parted (id);
CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql
    AS $$BEGIN NEW.c := coalesce(NEW.c, 0); RETURN NEW; END$$;
CREATE TRIGGER t_touch BEFORE INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION public.touch();
INSERT INTO public.t SELECT g, 'a' || g, g, g FROM generate_series(1, 500) g;
INSERT INTO public."Odd; ""name""" SELECT g, g FROM generate_series(1, 20) g;
INSERT INTO public.child SELECT g, g, g FROM generate_series(1, 20) g;
INSERT INTO public.parted SELECT g, g % 200 FROM generate_series(1, 400) g;
CREATE MATERIALIZED VIEW public.mv AS SELECT id, a FROM public.t;
CREATE UNIQUE INDEX mv_id ON public.mv (id);
CREATE TABLE public.zz_fast (
    id int,
    a int,
    CONSTRAINT "A_fast_pkey" PRIMARY KEY (id) USING INDEX TABLESPACE fast,
    CONSTRAINT "A_fast_later" UNIQUE (a) USING INDEX TABLESPACE fast DEFERRABLE
) TABLESPACE fast;
CREATE INDEX zz_fast_a ON public.zz_fast (a) TABLESPACE fast;
INSERT INTO public.zz_fast SELECT g, g FROM generate_series(1, 50) g;
ALTER TABLE public.t CLUSTER ON t_pkey;
ALTER TABLE public.child REPLICA IDENTITY USING INDEX child_pkey;
COMMENT ON CONSTRAINT t_a_key ON public.t IS 'unique a';
COMMENT ON INDEX public.t_partial IS 'partial';
CREATE STATISTICS public.t_stats ON b, c FROM public.t;
ALTER TABLE public.t ENABLE ROW LEVEL SECURITY;
CREATE POLICY t_all ON public.t USING (b > 0);
CREATE SEQUENCE public.s;
SELECT nextval('public.s');
GRANT SELECT ON public.t TO PUBLIC;
SELECT lo_from_bytea(0, 'hello');
"#;

/// Runs `cmd` to its end within [`LIMIT`] (killed past it); its standard output.
fn output_within(mut cmd: Command, what: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{what}: {e}; install the PostgreSQL client (apt-get install postgresql-client)")
        });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} ran longer than {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert!(status.success(), "{what} failed ({status}): {stderr}");
    std::fs::read(&out).unwrap()
}

fn pg_dump(cluster: &TempCluster, db: &str, extra: &[&str]) -> Vec<u8> {
    let mut cmd = Command::new("pg_dump");
    // As coffer runs it (Database::spawn_pg_dump).
    cmd.args(["--format=plain", "--clean", "--if-exists", "--no-password"])
        .args(extra)
        .envs(cluster.env(db));
    output_within(cmd, "pg_dump")
}

/// Runs a SQL file in one session and one transaction, stopping at the first error.
fn psql_file(cluster: &TempCluster, db: &str, file: &Path) -> String {
    let mut cmd = Command::new("psql");
    cmd.args(["-X", "-q", "-A", "-t", "-1", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(file)
        .envs(cluster.env(db));
    String::from_utf8(output_within(cmd, &format!("psql -f {}", file.display()))).unwrap()
}

fn psql(cluster: &TempCluster, db: &str, sql: &str, dir: &Path) -> String {
    let file = dir.join("query.sql");
    std::fs::write(&file, sql).unwrap();
    psql_file(cluster, db, &file).trim_end().to_string()
}

/// A schema dump without the random `\restrict` / `\unrestrict` lines.
fn schema(cluster: &TempCluster, db: &str) -> String {
    String::from_utf8(pg_dump(cluster, db, &["--schema-only"]))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn index_builds_in_any_order_then_the_rest_give_the_same_schema() {
    let cluster = TempCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    cluster.create_database("orig").unwrap();
    cluster.create_database("copy").unwrap();
    // A tablespace, so that an index built in the wrong session settings lands elsewhere
    // (pg_dump says where with `SET default_tablespace` only when it changes: here the
    // post-data's first statements, "A_fast_pkey" (an index build) and "A_fast_later" (in
    // the rest), rely on the pre-data's last one).
    let location = cluster.socket_dir().join("fast");
    std::fs::create_dir(&location).unwrap();
    let owner = std::fs::metadata(cluster.data_dir()).unwrap();
    std::os::unix::fs::chown(&location, Some(owner.uid()), Some(owner.gid())).unwrap();
    cluster
        .psql(
            "postgres",
            &format!(
                "CREATE TABLESPACE fast LOCATION {}",
                quote_literal(&location.display().to_string())
            ),
        )
        .unwrap();
    psql(&cluster, "orig", SCHEMA, dir.path());

    // The dump, cut after its last COPY block and gated as a restore gates it (one scanner
    // over the whole stream, fed the two parts).
    let dump = pg_dump(&cluster, "orig", &[]);
    let mut marks = DumpScanner::with_marks();
    marks.feed(&dump);
    let cut = marks
        .take_marks()
        .into_iter()
        .filter_map(|m| match m {
            Mark::CopyEnd { at, .. } => Some(at as usize),
            _ => None,
        })
        .next_back()
        .expect("the dump has COPY blocks");
    let mut gate = DumpScanner::new();
    let (mut pre, mut post) = (Vec::new(), Vec::new());
    gate.feed_filtered(&dump[..cut], &mut pre);
    gate.feed_filtered(&dump[cut..], &mut post);
    assert_eq!(gate.finish().unusable(), None);

    // Pre-data and data; the plan (asking the new database which tables are plain); each
    // index build in a session of its own, last first; then the rest; each session starts
    // with the dump's settings as of the end of the pre-data.
    let pre_file = dir.path().join("pre.sql");
    std::fs::write(&pre_file, &pre).unwrap();
    psql_file(&cluster, "copy", &pre_file);
    let plan = plan_post_data(&post, &|table| {
        let kind = psql(
            &cluster,
            "copy",
            &format!(
                "SELECT relkind FROM pg_class WHERE oid = to_regclass({})",
                quote_literal(table)
            ),
            dir.path(),
        );
        kind == "r" || kind == "m"
    })
    .unwrap();
    let mut moved: Vec<&str> = plan.indexes.iter().map(|i| i.name.as_str()).collect();
    moved.sort();
    assert_eq!(
        moved,
        [
            "\"A_fast_pkey\"",
            "\"Odd; \"\"name\"\"_x USING y_key\"",
            "\"pk; USING\nINDEX\"",
            "child_pkey",
            "mv_id",
            "parted_1_id_idx",
            "parted_1_pkey",
            "parted_2_id_idx",
            "parted_2_pkey",
            "t_a_key",
            "t_lower_a",
            "t_partial",
            "t_pkey",
            "zz_fast_a",
        ],
        "{}",
        String::from_utf8_lossy(&post)
    );
    let rest = String::from_utf8(plan.rest.clone()).unwrap();
    for kept in [
        "ADD CONSTRAINT t_pkey PRIMARY KEY USING INDEX t_pkey;",
        "ADD CONSTRAINT t_bc_key UNIQUE (b, c) DEFERRABLE INITIALLY DEFERRED;",
        "ADD CONSTRAINT parted_pkey PRIMARY KEY (id, k);",
        "CREATE INDEX parted_id ON ONLY public.parted USING btree (id);",
        "REFRESH MATERIALIZED VIEW public.mv;",
    ] {
        assert!(rest.contains(kept), "{kept} not in the rest:\n{rest}");
    }

    let settings = settings_in_effect(&pre).unwrap();
    for (i, build) in plan.indexes.iter().rev().enumerate() {
        let file = dir.path().join(format!("index-{i}.sql"));
        std::fs::write(&file, [settings.as_slice(), &build.sql].concat()).unwrap();
        psql_file(&cluster, "copy", &file);
    }
    let rest_file = dir.path().join("rest.sql");
    std::fs::write(&rest_file, [settings.as_slice(), &plan.rest].concat()).unwrap();
    psql_file(&cluster, "copy", &rest_file);

    assert_eq!(schema(&cluster, "copy"), schema(&cluster, "orig"));
    let data = "SELECT (SELECT count(*) FROM public.mv), (SELECT last_value FROM public.s), \
                (SELECT string_agg(convert_from(lo_get(oid), 'UTF8'), ',') FROM pg_largeobject_metadata)";
    assert_eq!(
        psql(&cluster, "copy", data, dir.path()),
        psql(&cluster, "orig", data, dir.path())
    );
}
