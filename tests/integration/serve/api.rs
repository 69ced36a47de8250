//! `coffer serve`: download lengths.

use std::io::Read;

use super::{Serve, served_case};
use crate::harness::*;

#[test]
fn download_announces_the_exact_content_length() {
    let (case, _, _, viewer) = served_case("");
    let backup = case.backup_ok(&[]);
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    let server = Serve::start(&case);
    let mut resp = server
        .agent
        .get(format!("{}/v1/admin/backup/{name}/download", server.base))
        .header("Authorization", format!("Bearer {viewer}"))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let announced: u64 = resp
        .headers()
        .get("content-length")
        .expect("a Content-Length header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut body = Vec::new();
    resp.body_mut().as_reader().read_to_end(&mut body).unwrap();
    assert_eq!(announced, body.len() as u64);
    assert!(body.len() > 10_000, "{}", body.len());
}
