use super::*;

/// Tables the cases treat as partitioned (or unknown): `rewrite` says no for them.
const NOT_PLAIN: &[&str] = &["public.parted", "public.unknown"];

fn plain(table: &str) -> bool {
    !NOT_PLAIN.contains(&table)
}

/// (table, name, sql) of each index build, and the rest, as text.
fn plan(sql: &str) -> (Vec<(String, String, String)>, String) {
    let plan = plan_post_data(sql.as_bytes(), &plain).unwrap_or_else(|e| panic!("{e}: {sql:?}"));
    for i in &plan.indexes {
        assert!(i.bytes > 0);
    }
    (
        plan.indexes
            .into_iter()
            .map(|i| (i.table, i.name, String::from_utf8(i.sql).unwrap()))
            .collect(),
        String::from_utf8(plan.rest).unwrap(),
    )
}

struct Case {
    what: &'static str,
    input: &'static str,
    /// (table, name, sql) of each index build.
    indexes: &'static [(&'static str, &'static str, &'static str)],
    rest: &'static str,
}

const COMMENT: &str = "\n--\n-- Name: x; Type: INDEX; Schema: public; Owner: app\n--\n\n";

#[test]
fn statements_go_to_index_builds_or_stay_in_order() {
    let cases = [
        Case {
            what: "an index moves, its comment dropped",
            input: "\n--\n-- Name: i; Type: INDEX\n--\n\nCREATE INDEX i ON public.t USING btree (a);\n",
            indexes: &[(
                "public.t",
                "i",
                "CREATE INDEX i ON public.t USING btree (a);\n",
            )],
            rest: "\n",
        },
        Case {
            what: "unique, expression and partial indexes move whole",
            input: "CREATE UNIQUE INDEX u ON public.t USING btree (lower(a)) WHERE (b > 10);\nCREATE INDEX g ON public.t USING gin (to_tsvector('simple'::regconfig, a));\n",
            indexes: &[
                (
                    "public.t",
                    "u",
                    "CREATE UNIQUE INDEX u ON public.t USING btree (lower(a)) WHERE (b > 10);\n",
                ),
                (
                    "public.t",
                    "g",
                    "CREATE INDEX g ON public.t USING gin (to_tsvector('simple'::regconfig, a));\n",
                ),
            ],
            rest: "\n",
        },
        Case {
            what: "an index ON ONLY a partitioned table stays in order",
            input: "CREATE INDEX p ON ONLY public.parted USING btree (a);\nALTER INDEX public.p ATTACH PARTITION public.p1_a_idx;\n",
            indexes: &[],
            rest: "CREATE INDEX p ON ONLY public.parted USING btree (a);\nALTER INDEX public.p ATTACH PARTITION public.p1_a_idx;\n",
        },
        Case {
            what: "an index of a relation rewrite() refuses stays",
            input: "CREATE INDEX q ON public.unknown USING btree (a);\n",
            indexes: &[],
            rest: "CREATE INDEX q ON public.unknown USING btree (a);\n",
        },
        Case {
            what: "a primary key becomes an index build and a constraint USING INDEX",
            input: "\n--\n-- Name: t t_pkey; Type: CONSTRAINT\n--\n\nALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (id);\n",
            indexes: &[(
                "public.t",
                "t_pkey",
                "CREATE UNIQUE INDEX t_pkey ON public.t USING btree (id);\n",
            )],
            rest: "\n--\n-- Name: t t_pkey; Type: CONSTRAINT\n--\n\nALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY USING INDEX t_pkey;\n",
        },
        Case {
            what: "a unique constraint over several columns likewise",
            input: "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_a_b_key UNIQUE (a, b);\n",
            indexes: &[(
                "public.t",
                "t_a_b_key",
                "CREATE UNIQUE INDEX t_a_b_key ON public.t USING btree (a, b);\n",
            )],
            rest: "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_a_b_key UNIQUE USING INDEX t_a_b_key;\n",
        },
        Case {
            what: "a primary key of a partitioned table stays",
            input: "ALTER TABLE ONLY public.parted\n    ADD CONSTRAINT parted_pkey PRIMARY KEY (id, k);\n",
            indexes: &[],
            rest: "ALTER TABLE ONLY public.parted\n    ADD CONSTRAINT parted_pkey PRIMARY KEY (id, k);\n",
        },
        Case {
            what: "settings in effect go with each index build, the last of each",
            input: "SET default_tablespace = '';\nSET default_table_access_method = heap;\nCREATE INDEX a ON public.t USING btree (a);\nSET default_tablespace = fast;\nALTER TABLE ONLY public.t\n    ADD CONSTRAINT k UNIQUE (b);\n",
            indexes: &[
                (
                    "public.t",
                    "a",
                    "SET default_tablespace = '';\nSET default_table_access_method = heap;\nCREATE INDEX a ON public.t USING btree (a);\n",
                ),
                (
                    "public.t",
                    "k",
                    "SET default_table_access_method = heap;\nSET default_tablespace = fast;\nCREATE UNIQUE INDEX k ON public.t USING btree (b);\n",
                ),
            ],
            rest: "SET default_tablespace = '';\nSET default_table_access_method = heap;\nSET default_tablespace = fast;\nALTER TABLE ONLY public.t\n    ADD CONSTRAINT k UNIQUE USING INDEX k;\n",
        },
        Case {
            what: "the gate's inline client_encoding settings stay in the rest and go with the builds",
            input: "SET client_encoding = 'utf8';\nCREATE INDEX a ON public.t USING btree (a); SET client_encoding = 'utf8';\n",
            indexes: &[(
                "public.t",
                "a",
                "SET client_encoding = 'utf8';\nCREATE INDEX a ON public.t USING btree (a);\n",
            )],
            rest: "SET client_encoding = 'utf8'; SET client_encoding = 'utf8';\n",
        },
        Case {
            what: "RESET ALL forgets earlier settings; pg_dump's set_config counts as one",
            input: "SET default_tablespace = x;\nRESET ALL;\nSELECT pg_catalog.set_config('search_path', '', false);\nCREATE INDEX a ON public.t USING btree (a);\n",
            indexes: &[(
                "public.t",
                "a",
                "RESET ALL;\nSELECT pg_catalog.set_config('search_path', '', false);\nCREATE INDEX a ON public.t USING btree (a);\n",
            )],
            rest: "SET default_tablespace = x;\nRESET ALL;\nSELECT pg_catalog.set_config('search_path', '', false);\n",
        },
        Case {
            what: "names holding ; quotes newlines and USING do not move the parse",
            input: "CREATE INDEX \"i; DROP TABLE x; --\" ON public.\"t \"\"USING\"\" ;\n\" USING btree (\"a;b\");\nALTER TABLE ONLY \"s;\".\"T\"\"\"\n    ADD CONSTRAINT \"pk\nUSING INDEX x; --\" PRIMARY KEY (\"key;\", \"UNIQUE (\");\n",
            indexes: &[
                (
                    "public.\"t \"\"USING\"\" ;\n\"",
                    "\"i; DROP TABLE x; --\"",
                    "CREATE INDEX \"i; DROP TABLE x; --\" ON public.\"t \"\"USING\"\" ;\n\" USING btree (\"a;b\");\n",
                ),
                (
                    "\"s;\".\"T\"\"\"",
                    "\"pk\nUSING INDEX x; --\"",
                    "CREATE UNIQUE INDEX \"pk\nUSING INDEX x; --\" ON \"s;\".\"T\"\"\" USING btree (\"key;\", \"UNIQUE (\");\n",
                ),
            ],
            rest: "\nALTER TABLE ONLY \"s;\".\"T\"\"\"\n    ADD CONSTRAINT \"pk\nUSING INDEX x; --\" PRIMARY KEY USING INDEX \"pk\nUSING INDEX x; --\";\n",
        },
        Case {
            what: "statements inside a function body, a string or a comment are text",
            input: "CREATE FUNCTION public.f() RETURNS void LANGUAGE sql AS $_$\nCREATE INDEX i ON public.t USING btree (a);\n$_$;\nCOMMENT ON TABLE public.t IS 'x;\nCREATE INDEX j ON public.t USING btree (a);';\n/* /* */ CREATE INDEX k ON public.t USING btree (a); */\n-- CREATE INDEX l ON public.t USING btree (a);\n",
            indexes: &[],
            rest: "CREATE FUNCTION public.f() RETURNS void LANGUAGE sql AS $_$\nCREATE INDEX i ON public.t USING btree (a);\n$_$;\nCOMMENT ON TABLE public.t IS 'x;\nCREATE INDEX j ON public.t USING btree (a);';\n/* /* */ CREATE INDEX k ON public.t USING btree (a); */\n-- CREATE INDEX l ON public.t USING btree (a);\n",
        },
        Case {
            what: "a statement after nested comments is still read",
            input: "/* a /* b */ c */ -- d\nCREATE INDEX i ON public.t USING btree (a);",
            indexes: &[(
                "public.t",
                "i",
                "CREATE INDEX i ON public.t USING btree (a);\n",
            )],
            rest: "",
        },
        Case {
            what: "text after the last statement (the trailer) stays",
            input: "CREATE INDEX i ON public.t USING btree (a);\n\n--\n-- PostgreSQL database dump complete\n--\n\n",
            indexes: &[(
                "public.t",
                "i",
                "CREATE INDEX i ON public.t USING btree (a);\n",
            )],
            rest: "\n\n--\n-- PostgreSQL database dump complete\n--\n\n",
        },
    ];
    for case in cases {
        let (indexes, rest) = plan(case.input);
        let want: Vec<(String, String, String)> = case
            .indexes
            .iter()
            .map(|(t, n, s)| (t.to_string(), n.to_string(), s.to_string()))
            .collect();
        assert_eq!(indexes, want, "{}", case.what);
        assert_eq!(rest, case.rest, "{}", case.what);
    }
}

/// Every form that must not be rewritten or moved stays exactly as written.
#[test]
fn anything_but_the_exact_simple_forms_stays_as_written() {
    let kept = [
        "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT k UNIQUE (a) DEFERRABLE;",
        "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT k UNIQUE (a) DEFERRABLE INITIALLY DEFERRED;",
        "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT k PRIMARY KEY (a) INITIALLY IMMEDIATE;",
        "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT k UNIQUE (a) INCLUDE (b);",
        "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT k PRIMARY KEY (a) WITH (fillfactor='50');",
        "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT k PRIMARY KEY (a) USING INDEX TABLESPACE fast;",
        "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT k UNIQUE NULLS NOT DISTINCT (a);",
        "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT k EXCLUDE USING gist (c WITH &&);",
        "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT k CHECK ((a > 0));",
        "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT k FOREIGN KEY (a) REFERENCES public.u(id);",
        "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT k PRIMARY KEY USING INDEX k;",
        "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT k PRIMARY KEY ();",
        "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT k PRIMARY KEY (lower(a));",
        "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT k PRIMARY KEY (a,);",
        "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT \"\" PRIMARY KEY (a);",
        "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT k /* c */ PRIMARY KEY (a);",
        "ALTER TABLE ONLY a.b.c\n    ADD CONSTRAINT k PRIMARY KEY (a);",
        "ALTER TABLE public.t\n    ADD CONSTRAINT k PRIMARY KEY (a);",
        "alter table only public.t add constraint k primary key (a);",
        "ALTER TABLE ONLY public.parted\n    ADD CONSTRAINT k UNIQUE (a);",
        "ALTER TABLE ONLY public.unknown\n    ADD CONSTRAINT k UNIQUE (a);",
        "CREATE INDEX k ON ONLY public.parted USING btree (a);",
        "CREATE INDEX CONCURRENTLY k ON public.t USING btree (a);",
        "CREATE INDEX IF NOT EXISTS k ON public.t USING btree (a);",
        "CREATE INDEX ON public.t USING btree (a);",
        "CREATE INDEX k ON public.t (a);",
        "CREATE INDEX k ON public.unknown USING btree (a);",
        "create index k on public.t using btree (a);",
        "CREATE INDEXES k ON public.t USING btree (a);",
        "CREATE TABLE public.x (a int);",
        "CREATE TRIGGER tr BEFORE INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION public.f();",
        "ALTER INDEX public.p ATTACH PARTITION public.p1_a_idx;",
        "SELECT pg_catalog.setval('public.s', 42, true);",
        "GRANT SELECT ON TABLE public.t TO app;",
        "REFRESH MATERIALIZED VIEW public.mv;",
    ];
    for stmt in kept {
        let input = format!("{COMMENT}{stmt}\n");
        let (indexes, rest) = plan(&input);
        assert_eq!(indexes, vec![], "{stmt}");
        assert_eq!(rest, input, "{stmt}");
    }
}

/// When nothing moves, the rest is the input byte for byte.
#[test]
fn nothing_to_move_gives_the_input_back() {
    let input = "SET client_encoding = 'utf8';\n\nSELECT pg_catalog.setval('public.t_id_seq', 3, true);\n\nSELECT pg_catalog.lo_open('16400', 131072);\nSELECT pg_catalog.lowrite(0, '\\x68656c6c6f');\nSELECT pg_catalog.lo_close(0);\n\nALTER TABLE ONLY public.c\n    ADD CONSTRAINT c_t_fkey FOREIGN KEY (t) REFERENCES public.t(id);\n\nCREATE TRIGGER tr BEFORE INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION public.f(); SET client_encoding = 'utf8';\n\n--\n-- PostgreSQL database dump complete\n--\n\n";
    let plan = plan_post_data(input.as_bytes(), &|_| true).unwrap();
    assert!(plan.indexes.is_empty());
    assert_eq!(plan.rest, input.as_bytes());
    // An empty part, and one without any statement end.
    for input in ["", "\n-- only a comment\n", "SELECT 1"] {
        let plan = plan_post_data(input.as_bytes(), &|_| true).unwrap();
        assert!(plan.indexes.is_empty());
        assert_eq!(plan.rest, input.as_bytes());
    }
}

#[test]
fn rewrite_is_asked_once_per_table() {
    let asked = std::cell::RefCell::new(Vec::new());
    let input = "CREATE INDEX a ON public.t USING btree (a);\nCREATE INDEX b ON public.t USING btree (b);\nALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (id);\nCREATE INDEX c ON public.u USING btree (c);\nCREATE INDEX d ON public.u USING btree (d);\n";
    let plan = plan_post_data(input.as_bytes(), &|table| {
        asked.borrow_mut().push(table.to_string());
        table == "public.t"
    })
    .unwrap();
    assert_eq!(*asked.borrow(), ["public.t", "public.u"]);
    assert_eq!(plan.indexes.len(), 3);
}

#[test]
fn what_the_scanner_refuses_or_a_copy_block_is_an_error() {
    let cases = [
        (
            "CREATE INDEX i ON public.t USING btree (a);\n\\! id\n",
            "meta-command",
        ),
        ("COMMIT;\n", "transaction-control"),
        ("COPY public.t (a) FROM stdin;\n1\n\\.\n", "COPY block"),
        ("SELECT 1;\nCOPY public.t (a) FROM PROGRAM 'id';\n", "COPY"),
    ];
    for (input, want) in cases {
        let err = plan_post_data(input.as_bytes(), &|_| true).unwrap_err();
        assert!(err.contains(want), "{input:?}: {err}");
    }
}

#[test]
fn settings_in_effect_keep_the_last_of_each_parameter() {
    let pre = "SET statement_timeout = 0;\nSET client_encoding = 'UTF8';\nSELECT pg_catalog.set_config('search_path', '', false);\nCREATE TABLE public.t (a int);\nSET default_tablespace = fast;\nCREATE TABLE public.u (a int);\nCOPY public.u (a) FROM stdin;\n1\n\\.\nSET default_tablespace = '';\nSET default_table_access_method = heap;\nCREATE FUNCTION public.f() RETURNS void LANGUAGE sql AS $$SET work_mem = '1GB'; SELECT 1$$;\n";
    assert_eq!(
        String::from_utf8(settings_in_effect(pre.as_bytes()).unwrap()).unwrap(),
        "SET statement_timeout = 0;\nSET client_encoding = 'UTF8';\nSELECT pg_catalog.set_config('search_path', '', false);\nSET default_tablespace = '';\nSET default_table_access_method = heap;\n"
    );
    assert!(settings_in_effect(b"\\! id\n").is_err());
}

#[test]
fn setting_statements() {
    use forms::setting;
    let cases: &[(&str, Option<Setting>)] = &[
        ("SET a = 1;", Some(Setting::One("a".into()))),
        (
            "SET SESSION Work_Mem TO '1MB';",
            Some(Setting::One("work_mem".into())),
        ),
        ("set local a = 1;", Some(Setting::One("a".into()))),
        ("RESET a;", Some(Setting::One("a".into()))),
        ("RESET ALL;", Some(Setting::All)),
        (
            "SELECT pg_catalog.set_config('search_path', '', false);",
            Some(Setting::One("search_path".into())),
        ),
        (
            "SELECT pg_catalog.set_config('search_path', '', true);",
            None,
        ),
        (
            "SELECT pg_catalog.set_config('search_path', '', false), 1;",
            None,
        ),
        ("SELECT pg_catalog.set_config('a''b', '', false);", None),
        ("SELECT pg_catalog.set_config('x', 'a\\', false);", None),
        ("SETTLE a;", None),
        ("SELECT 1;", None),
    ];
    for (stmt, want) in cases {
        assert_eq!(&setting(stmt.as_bytes()), want, "{stmt}");
    }
}

#[test]
fn leading_blanks_and_comments_end_where_the_statement_starts() {
    let cases: &[(&str, usize)] = &[
        ("", 0),
        ("  \n\tX", 4),
        ("-- a\nX", 5),
        ("-- a\rX", 5),
        ("-- a", 4),
        ("/* a */X", 7),
        ("/* /* */ */X", 11),
        ("/*/ */X", 6),
        ("/* unterminated", 15),
        ("-X", 0),
        ("/X", 0),
        ("\\x", 0),
    ];
    for (s, want) in cases {
        assert_eq!(leading_blanks_and_comments(s.as_bytes()), *want, "{s:?}");
    }
}

/// What the plan must do with one statement of the generated post-data parts.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// A setting (its parameter): stays in place, and leads the later builds.
    Setting(&'static str),
    /// Stays in place as written.
    Stays,
    /// Moves whole into an index build of (table, name).
    Moves(&'static str, &'static str),
    /// A constraint: an index build of (table, name, statement), and in place this one.
    Rewritten(&'static str, &'static str, &'static str, &'static str),
}

const LEADS: &[&str] = &[
    "",
    "\n",
    "\n\n--\n-- Name: x; Type: INDEX; Schema: public; Owner: app\n--\n\n",
    " /* a /* b; */ CREATE INDEX z ON public.t USING btree (a); */ ",
    "\n-- ; CREATE INDEX z ON public.t USING btree (a);\n",
];

const STATEMENTS: &[(&str, Expect)] = &[
    (
        "SET default_tablespace = '';",
        Expect::Setting("default_tablespace"),
    ),
    (
        "SET default_tablespace = fast;",
        Expect::Setting("default_tablespace"),
    ),
    (
        "SET client_encoding = 'utf8';",
        Expect::Setting("client_encoding"),
    ),
    ("RESET ALL;", Expect::Setting("all")),
    (
        "SELECT pg_catalog.set_config('search_path', '', false);",
        Expect::Setting("search_path"),
    ),
    (
        "CREATE INDEX i ON public.t USING btree (a);",
        Expect::Moves("public.t", "i"),
    ),
    (
        "CREATE UNIQUE INDEX \"u;\nx\" ON public.\"T;\" USING btree (lower(a)) WHERE (a <> ';');",
        Expect::Moves("public.\"T;\"", "\"u;\nx\""),
    ),
    (
        "CREATE INDEX p ON ONLY public.parted USING btree (a);",
        Expect::Stays,
    ),
    (
        "CREATE INDEX q ON public.parted USING btree (a);",
        Expect::Stays,
    ),
    (
        "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (id);",
        Expect::Rewritten(
            "public.t",
            "t_pkey",
            "CREATE UNIQUE INDEX t_pkey ON public.t USING btree (id);",
            "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY USING INDEX t_pkey;",
        ),
    ),
    (
        "ALTER TABLE ONLY public.\"T;\"\n    ADD CONSTRAINT \"k;\" UNIQUE (\"a)\", b);",
        Expect::Rewritten(
            "public.\"T;\"",
            "\"k;\"",
            "CREATE UNIQUE INDEX \"k;\" ON public.\"T;\" USING btree (\"a)\", b);",
            "ALTER TABLE ONLY public.\"T;\"\n    ADD CONSTRAINT \"k;\" UNIQUE USING INDEX \"k;\";",
        ),
    ),
    (
        "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT d UNIQUE (a) DEFERRABLE;",
        Expect::Stays,
    ),
    (
        "ALTER TABLE ONLY public.c\n    ADD CONSTRAINT c_fkey FOREIGN KEY (t) REFERENCES public.t(id);",
        Expect::Stays,
    ),
    (
        "SELECT pg_catalog.setval('public.s', 1, true);",
        Expect::Stays,
    ),
    (
        "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS $$SELECT 1; CREATE INDEX i ON public.t USING btree (a);$$;",
        Expect::Stays,
    ),
];

const TRAILERS: &[&str] = &["", "\n\n--\n-- PostgreSQL database dump complete\n--\n\n"];

proptest::proptest! {
    /// Any sequence of statements: each lands exactly once, where the rules say, with the
    /// settings in effect before it; the rest keeps the input's order and bytes.
    #[test]
    fn every_statement_lands_once_in_order(
        parts in proptest::collection::vec((0..LEADS.len(), 0..STATEMENTS.len()), 0..24),
        trailer in 0..TRAILERS.len(),
    ) {
        let mut input = String::new();
        let mut rest = String::new();
        let mut indexes = Vec::new();
        let mut settings: Vec<(&str, &str)> = Vec::new();
        let led = |settings: &[(&str, &str)], stmt: &str| {
            let mut sql: String = settings.iter().map(|(_, s)| format!("{s}\n")).collect();
            sql.push_str(stmt);
            sql.push('\n');
            sql
        };
        for (lead, stmt) in parts {
            let (lead, (stmt, expect)) = (LEADS[lead], STATEMENTS[stmt]);
            input.push_str(lead);
            input.push_str(stmt);
            match expect {
                Expect::Setting(name) => {
                    if name == "all" {
                        settings.clear();
                    }
                    settings.retain(|(n, _)| *n != name);
                    settings.push((name, stmt));
                    rest.push_str(lead);
                    rest.push_str(stmt);
                }
                Expect::Stays => {
                    rest.push_str(lead);
                    rest.push_str(stmt);
                }
                Expect::Moves(table, name) => {
                    indexes.push((table.to_string(), name.to_string(), led(&settings, stmt)));
                }
                Expect::Rewritten(table, name, build, using) => {
                    indexes.push((table.to_string(), name.to_string(), led(&settings, build)));
                    rest.push_str(lead);
                    rest.push_str(using);
                }
            }
        }
        input.push_str(TRAILERS[trailer]);
        rest.push_str(TRAILERS[trailer]);
        let (got_indexes, got_rest) = plan(&input);
        proptest::prop_assert_eq!(got_indexes, indexes, "{:?}", input);
        proptest::prop_assert_eq!(got_rest, rest, "{:?}", input);
    }
}
