//! Names that come from outside (workspace files, entries of the backup root) reach the
//! operator's terminal and the journal: they can neither fake a line nor send escape
//! sequences.

use crate::harness::*;

#[test]
fn hostile_names_cannot_fake_lines_or_send_escape_sequences() {
    let case = Case::new();
    let fake = "backup manual-20990101T000000Z is complete";
    // A fifo is skipped and reported by name; a directory in the root is listed as unknown.
    let fifo = case
        .workspace
        .join(format!("evil\n{fake}\x1b[31mRED\rover"));
    run_ok(std::process::Command::new("mkfifo").arg(&fifo));
    let out = case.run(&["backup"]);
    assert_success(&out);
    std::fs::create_dir(case.root.join(format!("x\n{fake}\x1b]0;title\x07"))).unwrap();
    for args in [&["list"][..], &["prune", "--dry-run"], &["status"]] {
        let out = case.run(args);
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            !text.contains('\x1b') && !text.contains('\r') && !text.contains('\x07'),
            "{args:?} printed a raw control character: {text:?}"
        );
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with(fake)),
            "{args:?} printed a faked line: {text}"
        );
    }
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("evil\\n"),
        "the fifo is reported, escaped: {text}"
    );
    assert!(!text.contains('\x1b') && !text.contains('\r'), "{text:?}");
    assert!(
        !text.lines().any(|l| l.trim_start().starts_with(fake)),
        "backup printed a faked line: {text}"
    );
}
