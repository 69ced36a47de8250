//! The tar format of a bundle, both ways, by hand on top of `tar::Header`'s field codecs.
//!
//! Writing: one ustar header per member (a pax `x` header before it only when its path is
//! longer than ustar's 100-byte name field or its size does not fit in 11 octal digits), the
//! data, zero padding to 512 bytes, and the two zero blocks that end the archive. The end
//! marker is written last and only by [`write_end`]: an export that fails half-way leaves a
//! stream without it, which an import refuses as truncated. (`tar::Builder` writes the end
//! marker when dropped, even after an error, so it is not used.)
//!
//! Reading: a strict streaming reader. The input is hostile, so nothing in a header decides
//! an allocation: extension headers (pax `x`/`g`, GNU long names) are read only up to small
//! caps, file data is handed to the caller in fixed-size chunks, and only regular files and
//! directories are returned (links, devices, fifos and sparse files are refused by type).
//! The end of the archive must be the two zero blocks followed by nothing but zero padding:
//! a stream cut at a member boundary is truncated, not complete.

use std::io::{self, Read, Write};

use crate::cancel::CancelFlag;

/// Size of a tar block.
pub(crate) const BLOCK: u64 = 512;

/// Largest pax extended header read (a real one holds a path and a few times).
const PAX_CAP: u64 = 64 << 10;
/// Largest GNU long name read.
const LONG_NAME_CAP: u64 = 4 << 10;
/// Largest zero padding accepted after the end marker (GNU tar pads to 10 KiB records;
/// larger blocking factors stay far below this).
const TRAILER_CAP: u64 = 1 << 20;
/// Chunk in which member data is copied.
const CHUNK: usize = 1 << 20;
/// The largest size ustar's 11 octal digits hold.
const USTAR_MAX_SIZE: u64 = (1 << 33) - 1;

/// What a member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

/// Writes the header(s) of one member: `path` (a relative `/`-separated path), its kind,
/// size, mode and modification time (seconds since the epoch). Ownership is written as
/// uid/gid 0 without names: a bundle carries no account names of the host it came from.
pub(crate) fn write_header(
    out: &mut dyn Write,
    path: &str,
    kind: Kind,
    size: u64,
    mode: u32,
    mtime: u64,
) -> io::Result<()> {
    let mut records = Vec::new();
    if path.len() > 100 {
        records.extend(pax_record("path", path));
    }
    if size > USTAR_MAX_SIZE {
        records.extend(pax_record("size", &size.to_string()));
    }
    if !records.is_empty() {
        let ext = header(
            &truncated(&format!("PaxHeaders/{path}")),
            tar::EntryType::XHeader,
            records.len() as u64,
            0o600,
            mtime,
        );
        out.write_all(ext.as_bytes())?;
        out.write_all(&records)?;
        write_padding(out, records.len() as u64)?;
    }
    let entry_type = match kind {
        Kind::File => tar::EntryType::Regular,
        Kind::Dir => tar::EntryType::Directory,
    };
    let size_field = if size > USTAR_MAX_SIZE { 0 } else { size };
    out.write_all(header(&truncated(path), entry_type, size_field, mode, mtime).as_bytes())
}

/// The bytes [`write_header`] writes for a member at `path` of `size` bytes: its ustar
/// header, after a pax header (padded to whole blocks) when the path or the size needs one.
pub(crate) fn header_len(path: &str, size: u64) -> u64 {
    let mut records = 0;
    if path.len() > 100 {
        records += pax_record("path", path).len() as u64;
    }
    if size > USTAR_MAX_SIZE {
        records += pax_record("size", &size.to_string()).len() as u64;
    }
    let extension = if records == 0 {
        0
    } else {
        BLOCK + padded(records)
    };
    extension + BLOCK
}

/// `size` rounded up to whole blocks: member data with its padding.
pub(crate) fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK) * BLOCK
}

/// Zero padding after `size` bytes of member data, up to the next block.
pub(crate) fn write_padding(out: &mut dyn Write, size: u64) -> io::Result<()> {
    let pad = (BLOCK - size % BLOCK) % BLOCK;
    out.write_all(&[0u8; BLOCK as usize][..pad as usize])
}

/// The end-of-archive marker: two zero blocks.
pub(crate) fn write_end(out: &mut dyn Write) -> io::Result<()> {
    out.write_all(&[0u8; 2 * BLOCK as usize])
}

fn truncated(path: &str) -> String {
    let mut end = path.len().min(100);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    path[..end].to_string()
}

fn header(path: &str, entry_type: tar::EntryType, size: u64, mode: u32, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    let name = &mut h.as_old_mut().name;
    name[..path.len()].copy_from_slice(path.as_bytes());
    h.set_entry_type(entry_type);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    h
}

/// One pax record, `"<len> <key>=<value>\n"`, where `<len>` counts the whole record.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    loop {
        let total = len.to_string().len() + body.len();
        if total == len {
            return format!("{len}{body}").into_bytes();
        }
        len = total;
    }
}

/// A member header as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    /// The path as stored (pax `path` or GNU long name applied).
    pub path: Vec<u8>,
    /// File or directory.
    pub kind: Kind,
    /// Bytes of data that follow (always 0 for a directory).
    pub size: u64,
}

/// Why copying member data failed.
#[derive(Debug)]
pub(crate) enum CopyError {
    /// The archive could not be read to the member's end (truncated, or unreadable).
    Source(String),
    /// The destination refused the data.
    Sink(io::Error),
    /// The cancel flag was set.
    Cancelled,
}

/// The strict streaming reader (see the module documentation). Errors are the detail of
/// why the archive is not acceptable, for the caller's message.
pub(crate) struct Reader<R: Read> {
    inner: R,
    /// Bytes consumed so far (for messages).
    offset: u64,
}

impl<R: Read> Reader<R> {
    /// A reader at the start of an archive.
    pub(crate) fn new(inner: R) -> Reader<R> {
        Reader { inner, offset: 0 }
    }

    /// Bytes of the archive consumed so far.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The next member, or `None` at a proper end of the archive. The caller must consume
    /// a file's data ([`Reader::copy_data`] or [`Reader::read_small`]) before asking again.
    pub(crate) fn next(&mut self) -> Result<Option<Member>, String> {
        let mut pax_path: Option<Vec<u8>> = None;
        let mut pax_size: Option<u64> = None;
        let mut long_name: Option<Vec<u8>> = None;
        let mut pending = false;
        loop {
            let at = self.offset;
            let block = self.read_block()?;
            if block.iter().all(|&b| b == 0) {
                if pending {
                    return Err(format!(
                        "an extended header at byte {at} is followed by the end of the archive"
                    ));
                }
                self.finish()?;
                return Ok(None);
            }
            let h = tar::Header::from_byte_slice(&block);
            let sum: u32 = block[..148]
                .iter()
                .chain(&block[156..])
                .map(|&b| u32::from(b))
                .sum::<u32>()
                + 8 * 32;
            if h.cksum().ok() != Some(sum) {
                return Err(format!(
                    "the header at byte {at} has a bad checksum (not a tar archive, or damaged)"
                ));
            }
            if h.as_ustar().is_none() && h.as_gnu().is_none() {
                return Err(format!(
                    "the header at byte {at} is not a ustar, pax or GNU header"
                ));
            }
            let size = match pax_size.take() {
                Some(s) => s,
                None => h
                    .entry_size()
                    .map_err(|e| format!("the header at byte {at} has a bad size field: {e}"))?,
            };
            let entry_type = h.entry_type();
            let path = pax_path
                .take()
                .or_else(|| long_name.take())
                .unwrap_or_else(|| h.path_bytes().into_owned());
            let shown = String::from_utf8_lossy(&path).into_owned();
            match entry_type {
                tar::EntryType::Regular => {
                    return Ok(Some(Member {
                        path,
                        kind: Kind::File,
                        size,
                    }));
                }
                tar::EntryType::Directory => {
                    if size != 0 {
                        return Err(format!("directory member {shown:?} carries data"));
                    }
                    return Ok(Some(Member {
                        path,
                        kind: Kind::Dir,
                        size,
                    }));
                }
                tar::EntryType::XHeader | tar::EntryType::GNULongName if pending => {
                    return Err(format!(
                        "two extended headers in a row at byte {at} (a bundle has at most one per member)"
                    ));
                }
                tar::EntryType::XHeader => {
                    let data = self.read_extension(size, PAX_CAP, at)?;
                    let (p, s) = parse_pax(&data).map_err(|e| format!("at byte {at}: {e}"))?;
                    pax_path = p;
                    pax_size = s;
                    pending = true;
                }
                tar::EntryType::XGlobalHeader => {
                    self.read_extension(size, PAX_CAP, at)?;
                }
                tar::EntryType::GNULongName => {
                    let mut data = self.read_extension(size, LONG_NAME_CAP, at)?;
                    while data.last() == Some(&0) {
                        data.pop();
                    }
                    long_name = Some(data);
                    pending = true;
                }
                other => {
                    return Err(format!(
                        "member {shown:?} is {}: a bundle holds only regular files in one directory",
                        describe(other)
                    ));
                }
            }
        }
    }

    /// Reads a whole member of `size` bytes (the caller checked it is small).
    pub(crate) fn read_small(&mut self, size: u64) -> Result<Vec<u8>, String> {
        let mut data = Vec::new();
        match self.copy_data(size, &mut data, &CancelFlag::new()) {
            Ok(()) => Ok(data),
            Err(CopyError::Source(e)) => Err(e),
            Err(CopyError::Sink(e)) => Err(e.to_string()),
            Err(CopyError::Cancelled) => Err("cancelled".into()),
        }
    }

    /// Copies `size` bytes of member data to `out` in chunks (checking `cancel` before
    /// each), then consumes the padding.
    pub(crate) fn copy_data(
        &mut self,
        size: u64,
        out: &mut dyn Write,
        cancel: &CancelFlag,
    ) -> Result<(), CopyError> {
        let mut buf = vec![0u8; CHUNK.min(size as usize).max(1)];
        let mut left = size;
        while left > 0 {
            if cancel.signal().is_some() {
                return Err(CopyError::Cancelled);
            }
            let want = left.min(buf.len() as u64) as usize;
            let n = match self.inner.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(CopyError::Source(format!(
                        "it ends inside a member at byte {} ({left} bytes of it missing: truncated)",
                        self.offset
                    )));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(CopyError::Source(format!(
                        "it cannot be read at byte {}: {e}",
                        self.offset
                    )));
                }
            };
            self.offset += n as u64;
            left -= n as u64;
            out.write_all(&buf[..n]).map_err(CopyError::Sink)?;
        }
        let pad = (BLOCK - size % BLOCK) % BLOCK;
        let mut padding = [0u8; BLOCK as usize];
        self.fill(&mut padding[..pad as usize])
            .map_err(CopyError::Source)?;
        Ok(())
    }

    fn read_extension(&mut self, size: u64, cap: u64, at: u64) -> Result<Vec<u8>, String> {
        if size > cap {
            return Err(format!(
                "the extended header at byte {at} claims {size} bytes, more than the {cap} a bundle may hold"
            ));
        }
        self.read_small(size)
    }

    /// After the first zero block: a second one, then only zero padding up to the end.
    fn finish(&mut self) -> Result<(), String> {
        let at = self.offset;
        let second = self.read_block().map_err(|_| {
            format!("the end-of-archive marker at byte {at} is cut short (truncated)")
        })?;
        if second.iter().any(|&b| b != 0) {
            return Err(format!(
                "a lone zero block at byte {at} is followed by data (damaged)"
            ));
        }
        let mut rest = Vec::new();
        (&mut self.inner)
            .take(TRAILER_CAP + 1)
            .read_to_end(&mut rest)
            .map_err(|e| format!("it cannot be read after the end marker: {e}"))?;
        if rest.len() as u64 > TRAILER_CAP || rest.iter().any(|&b| b != 0) {
            return Err(format!(
                "it holds data after the end-of-archive marker at byte {}",
                self.offset
            ));
        }
        self.offset += rest.len() as u64;
        Ok(())
    }

    fn read_block(&mut self) -> Result<[u8; BLOCK as usize], String> {
        let mut block = [0u8; BLOCK as usize];
        let at = self.offset;
        let mut got = 0;
        while got < block.len() {
            match self.inner.read(&mut block[got..]) {
                Ok(0) if got == 0 => {
                    return Err(format!(
                        "it ends at byte {at} without the end-of-archive marker (truncated)"
                    ));
                }
                Ok(0) => {
                    return Err(format!(
                        "it ends inside the header at byte {at} (truncated)"
                    ));
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("it cannot be read at byte {at}: {e}")),
            }
        }
        self.offset += BLOCK;
        Ok(block)
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), String> {
        let at = self.offset;
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                format!("it ends inside the padding at byte {at} (truncated)")
            } else {
                format!("it cannot be read at byte {at}: {e}")
            }
        })?;
        self.offset += buf.len() as u64;
        Ok(())
    }
}

/// The `path` and `size` of a pax extended header; other keys (times, ownership) are
/// ignored. Strict about the record syntax.
fn parse_pax(mut data: &[u8]) -> Result<(Option<Vec<u8>>, Option<u64>), String> {
    let (mut path, mut size) = (None, None);
    while !data.is_empty() {
        let space = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or("a pax record has no length")?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("a pax record's length is not a number")?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err("a pax record's length does not match its content".into());
        }
        let record = &data[space + 1..len - 1];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or("a pax record has no `=`")?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        match key {
            b"path" => path = Some(value.to_vec()),
            b"size" => {
                size = Some(
                    std::str::from_utf8(value)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or("the pax size is not a number")?,
                )
            }
            _ => {}
        }
        data = &data[len..];
    }
    Ok((path, size))
}

fn describe(t: tar::EntryType) -> &'static str {
    match t {
        tar::EntryType::Link => "a hard link",
        tar::EntryType::Symlink => "a symbolic link",
        tar::EntryType::Char => "a character device",
        tar::EntryType::Block => "a block device",
        tar::EntryType::Fifo => "a fifo",
        tar::EntryType::GNUSparse => "a sparse file",
        tar::EntryType::GNULongLink => "a long link name",
        _ => "of an unsupported member type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(members: &[(&str, Kind, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (path, kind, data) in members {
            write_header(&mut out, path, *kind, data.len() as u64, 0o600, 0).unwrap();
            out.extend_from_slice(data);
            write_padding(&mut out, data.len() as u64).unwrap();
        }
        write_end(&mut out).unwrap();
        out
    }

    #[test]
    fn header_len_counts_what_write_header_writes() {
        let long = format!("2025-06-01-030000/{}", "n".repeat(150));
        let sizes = [
            0,
            1,
            511,
            512,
            513,
            USTAR_MAX_SIZE,
            USTAR_MAX_SIZE + 1,
            u64::MAX / 2,
        ];
        for path in [
            "a/",
            "2025-06-01-030000/manifest.json",
            &long,
            &"x".repeat(100),
        ] {
            for size in sizes {
                let mut out = Vec::new();
                write_header(&mut out, path, Kind::File, size, 0o600, 0).unwrap();
                assert_eq!(header_len(path, size), out.len() as u64, "{path} {size}");
            }
        }
        for (size, want) in [(0, 0), (1, 512), (512, 512), (513, 1024)] {
            assert_eq!(padded(size), want);
        }
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<(Member, Vec<u8>)>, String> {
        let mut r = Reader::new(bytes);
        let mut v = Vec::new();
        while let Some(m) = r.next()? {
            let data = r.read_small(m.size)?;
            v.push((m, data));
        }
        Ok(v)
    }

    #[test]
    fn round_trips_and_gnu_tar_reads_it() {
        let long = format!("d/{}", "x".repeat(150));
        let bytes = archive(&[
            ("d", Kind::Dir, b""),
            ("d/a", Kind::File, b"hello"),
            (&long, Kind::File, &[7u8; 1000]),
        ]);
        let got = read_all(&bytes).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].1, b"hello");
        assert_eq!(got[2].0.path, long.as_bytes());
        assert_eq!(got[2].1, vec![7u8; 1000]);
        // The archive tar itself reads, with the long name from the pax header.
        let mut names = Vec::new();
        let mut a = tar::Archive::new(&bytes[..]);
        for e in a.entries().unwrap() {
            names.push(e.unwrap().path().unwrap().display().to_string());
        }
        assert_eq!(names, ["d", "d/a", long.as_str()]);
    }

    #[test]
    fn pax_records_count_themselves() {
        for n in [1, 5, 90, 95, 99, 100, 995, 1000] {
            let rec = pax_record("path", &"p".repeat(n));
            let len: usize =
                std::str::from_utf8(&rec[..rec.iter().position(|&b| b == b' ').unwrap()])
                    .unwrap()
                    .parse()
                    .unwrap();
            assert_eq!(len, rec.len(), "{n}");
        }
    }

    #[test]
    fn truncation_anywhere_is_refused() {
        let bytes = archive(&[("d/a", Kind::File, &[1u8; 700])]);
        for cut in [0, 100, 512, 600, 1024, 1536, 1600, bytes.len() - 1] {
            let e = read_all(&bytes[..cut]).unwrap_err();
            assert!(
                e.contains("truncated") || e.contains("cut short"),
                "{cut}: {e}"
            );
        }
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(&[0u8; 9216]);
        assert!(read_all(&trailing).is_ok());
        trailing.push(1);
        assert!(read_all(&trailing).unwrap_err().contains("after the end"));
    }

    #[test]
    fn links_devices_and_oversized_extensions_are_refused() {
        for (t, want) in [
            (tar::EntryType::Symlink, "symbolic link"),
            (tar::EntryType::Link, "hard link"),
            (tar::EntryType::Char, "character device"),
            (tar::EntryType::Fifo, "fifo"),
        ] {
            let mut h = tar::Header::new_ustar();
            h.set_path("d/x").unwrap();
            h.set_entry_type(t);
            h.set_size(0);
            h.set_cksum();
            let mut bytes = h.as_bytes().to_vec();
            write_end(&mut bytes).unwrap();
            let e = read_all(&bytes).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
        let mut h = tar::Header::new_ustar();
        h.set_path("d/x").unwrap();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_size(1 << 40);
        h.set_cksum();
        let e = read_all(h.as_bytes()).unwrap_err();
        assert!(e.contains("more than"), "{e}");
        let mut bad = archive(&[("d/a", Kind::File, b"x")]);
        bad[0] ^= 1;
        assert!(read_all(&bad).unwrap_err().contains("checksum"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096)) {
            let _ = read_all(&bytes);
        }
    }
}
