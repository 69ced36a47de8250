//! `verify`'s `pieces` line: the dump's piece index against the artifact it describes. The
//! plain side (each piece's size and SHA-256) is checked while the artifact is read; here
//! the compressed side: where each gzip member or zstd frame starts and ends, in the file or,
//! for an age-encrypted artifact, in age's plaintext (age's STREAM reader seeks there).

use std::io::{Seek, SeekFrom};
use std::path::Path;

use super::verify::{Check, Outcome};
use crate::format::manifest::Artifact;
use crate::format::pieces::check_members;
use crate::stream::crypto::Identities;

/// The check line for `artifact`'s index: `plain` is what reading it said (each piece's
/// CRC-32, or what differed).
pub(super) fn pieces_check(
    file: &str,
    path: &Path,
    artifact: &Artifact,
    plain: &Result<Vec<u32>, String>,
    identities: Option<&Identities>,
) -> Option<Check> {
    let index = artifact.pieces.as_ref()?;
    let outcome = plain
        .clone()
        .and_then(|crcs| members(path, artifact, &crcs, identities));
    Some(match outcome {
        Ok(()) => Check::new(
            format!("{file}: pieces"),
            Outcome::Pass,
            format!(
                "{} pieces, each of the recorded size and sha256, where recorded in the {}",
                index.len(),
                if artifact.encryption.is_some() {
                    "decrypted stream"
                } else {
                    "file"
                }
            ),
        ),
        Err(e) => Check::new(
            format!("{file}: pieces"),
            Outcome::Fail,
            format!("{e}: the manifest's piece index does not describe this artifact"),
        ),
    })
}

/// The members (frames) are where the index says.
fn members(
    path: &Path,
    artifact: &Artifact,
    crcs: &[u32],
    identities: Option<&Identities>,
) -> Result<(), String> {
    let pieces = artifact.pieces.as_deref().unwrap_or_default();
    let mut file = crate::util::fsutil::open_regular(path)
        .map_err(|e| format!("cannot open it again: it {e}"))?;
    if artifact.encryption.is_none() {
        return check_members(&mut file, pieces, artifact.compression, crcs);
    }
    let ids = identities.ok_or("no identity to decrypt it")?;
    let mut plain = ids
        .decrypt(file, &path.display().to_string())
        .map_err(|e| e.to_string())?;
    // The one size the manifest cannot hold for an encrypted artifact: age's plaintext.
    let length = plain
        .seek(SeekFrom::End(0))
        .map_err(|e| format!("cannot find the end of the decrypted stream: {e}"))?;
    let covered: u64 = pieces.iter().map(|p| p.length).sum();
    if covered != length {
        return Err(format!(
            "the pieces cover {covered} bytes but the decrypted stream has {length}"
        ));
    }
    check_members(&mut plain, pieces, artifact.compression, crcs)
}
