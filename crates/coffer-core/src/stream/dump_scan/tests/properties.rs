//! Generated dumps: decoys in bodies, comments and identifiers never change the facts.

use super::*;

/// Escapes a value the way COPY text format does.
fn copy_escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
        .replace('\t', "\\t")
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Text that would fool a line-based scanner: fake COPY sections, rows, heads, the
/// trailer, meta-commands.
fn decoy() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("COPY public.alembic_version (version_num) FROM stdin;\n".to_string()),
            Just("COPY public.ghost (x) FROM stdin;\n".to_string()),
            Just("fake0head\n".to_string()),
            Just("\\.\n".to_string()),
            Just("-- PostgreSQL database dump complete\n".to_string()),
            Just("\\! touch /tmp/pwned\n".to_string()),
            Just("; $x$ $$ ' \" /* */ -- \n".to_string()),
            "[a-zA-Z0-9 _;()\\n]{0,12}",
        ],
        0..6,
    )
    .prop_map(|parts| parts.concat())
}

/// One statement hiding a decoy in a form psql treats as text, and the dollar tag used.
fn hiding_statement() -> impl Strategy<Value = String> {
    (decoy(), 0..6usize, "[a-z_]{0,3}").prop_map(|(text, form, tag)| match form {
        0 => {
            // A tag that does not occur in the text.
            let tag = format!("{tag}é");
            format!(
                "CREATE FUNCTION public.f() RETURNS void LANGUAGE sql AS ${tag}${text}${tag}$;\n"
            )
        }
        1 => format!("SELECT {};\n", quote_literal(&text)),
        2 => format!("SELECT 1 AS {};\n", quote_ident(&text)),
        3 => format!("/* {} */\n", text.replace("*/", "* /").replace("/*", "/ *")),
        4 => format!(
            "{}\n",
            text.lines()
                .map(|l| format!("-- {}", l.replace('\r', " ")))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        _ => format!("COMMENT ON TABLE t IS {};\n", quote_literal(&text)),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn chunk_splits_do_not_matter(sizes in prop::collection::vec(1usize..300, 1..50)) {
        prop_assert_eq!(scan_in_chunks(FIXTURE, &sizes), scan(FIXTURE));
    }

    #[test]
    fn marks_do_not_depend_on_chunk_splits(sizes in prop::collection::vec(1usize..300, 1..50)) {
        let marks = |sizes: &[usize]| {
            let mut scanner = DumpScanner::with_marks();
            let mut rest = FIXTURE;
            for &size in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (chunk, after) = rest.split_at(size.min(rest.len()));
                scanner.feed(chunk);
                rest = after;
            }
            scanner.take_marks()
        };
        let whole = marks(&[FIXTURE.len()]);
        // Each statement end is right after a `;`.
        for mark in &whole {
            if let Mark::Statement { end } = mark {
                prop_assert_eq!(FIXTURE[*end as usize - 1], b';');
            }
        }
        let statements = whole.iter().filter(|m| matches!(m, Mark::Statement { .. })).count();
        prop_assert!(statements > 10, "{} statement marks", statements);
        prop_assert_eq!(marks(&sizes), whole);
    }

    #[test]
    fn generated_dumps_give_the_intended_facts(
        data in prop::collection::btree_map(
            "[a-zA-Z _\".é\n;$\\\\]{1,12}",
            prop::collection::vec(prop::collection::vec(any::<String>(), 1..3), 0..6),
            0..5,
        ),
        revs in prop::collection::btree_set("[0-9a-f]{12}", 0..3),
        decoys in prop::collection::vec(hiding_statement(), 0..6),
        sizes in prop::collection::vec(1usize..64, 1..20),
    ) {
        let mut d = String::from(HEADER);
        let mut want = DumpFacts {
            alembic_heads: Some(revs.iter().cloned().collect()),
            alembic_heads_any_schema: Some(revs.iter().cloned().collect()),
            ..base()
        };
        let mut decoys = decoys.into_iter();
        d.push_str(&decoys.next().unwrap_or_default());
        d.push_str("COPY public.alembic_version (version_num) FROM stdin;\n");
        for rev in &revs {
            d.push_str(&format!("{rev}\n"));
        }
        d.push_str("\\.\n");
        want.tables.insert("public.alembic_version".into(), revs.len() as u64);
        for (name, rows) in &data {
            d.push_str(&decoys.next().unwrap_or_default());
            let table = format!("app.{}", quote_ident(name));
            d.push_str(&format!("COPY {table} (a, {}) FROM stdin;\n", quote_ident(name)));
            for row in rows {
                let fields: Vec<String> = row.iter().map(|v| copy_escape(v)).collect();
                d.push_str(&fields.join("\t"));
                d.push('\n');
            }
            d.push_str("\\.\n");
            want.tables.insert(table, rows.len() as u64);
        }
        for rest in decoys {
            d.push_str(&rest);
        }
        d.push_str(TRAILER_LINES);
        let whole = scan(d.as_bytes());
        prop_assert_eq!(&whole, &want);
        prop_assert_eq!(scan_in_chunks(d.as_bytes(), &sizes), want);
        // Cut anywhere before the end: never complete.
        let cut = d.len() - TRAILER_LINES.len() + 10;
        for at in (0..cut).step_by(17) {
            prop_assert!(!scan(&d.as_bytes()[..at]).complete, "cut at {}", at);
        }
    }
}
