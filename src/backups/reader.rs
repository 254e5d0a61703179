//! Reading backup archives that may be hostile (an uploaded file): every member and every byte
//! written is bounded before it is read.
//!
//! - Members are read raw: only regular files, and GNU long names (for long file paths) of at
//!   most [`MAX_LONG_NAME`] bytes; the tar crate's own handling would read a long name or PAX
//!   header of any size into memory.
//! - The manifest is at most [`MAX_MANIFEST`] bytes; each part must be exactly the size its
//!   manifest declares, and all parts together at most [`Limits::max_expanded`], with that much
//!   free space (and a margin) in the directory they are expanded into.
//! - After the end of the archive only zero padding may follow, up to [`MAX_TRAILER`] bytes:
//!   anything else (garbage appended to the file) fails the verification.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::fsutil::human_bytes;

/// The manifest lists every part and table: generous for a full backup of many files.
pub const MAX_MANIFEST: u64 = 16 << 20;
/// GNU long names are file paths.
pub const MAX_LONG_NAME: u64 = 4096;
/// Zero blocks after the tar's end marker (tar pads to its record size).
pub const MAX_TRAILER: u64 = 1 << 20;
/// Free space kept beyond what an expansion declares.
pub const SPACE_MARGIN: u64 = 64 << 20;
/// When no configuration is at hand (`backups.max_expanded_mib` has the same default).
pub const DEFAULT_MAX_EXPANDED: u64 = 10 << 30;

/// Where a backup is expanded, and how large it may become.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Scratch directory for the parts (in the data directory, never `/tmp`).
    pub work_dir: PathBuf,
    pub max_expanded: u64,
}

impl Limits {
    /// From the configuration: `<data dir>/tmp` and `backups.max_expanded_mib`.
    pub fn of(config: &crate::config::Config) -> Limits {
        Limits { work_dir: config.temp_dir(), max_expanded: config.backups.max_expanded_bytes() }
    }

    /// Without a configuration: beside the backup file, with the default maximum.
    pub fn beside(file: &Path) -> Limits {
        let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Limits { work_dir: dir.to_path_buf(), max_expanded: DEFAULT_MAX_EXPANDED }
    }
}

/// Refuses an expansion of `declared` bytes into `dir` before anything is written: over the
/// maximum, or more than the free space there.
pub fn check_room(dir: &Path, declared: u64, max: u64) -> Result<(), String> {
    if declared > max {
        return Err(format!(
            "its manifest says it expands to {}, more than the {} allowed (backups.max_expanded_mib); \
             raise that setting if this backup is genuine",
            human_bytes(declared),
            human_bytes(max)
        ));
    }
    let free = crate::fsutil::available_bytes(dir)
        .map_err(|e| format!("cannot tell the free space in {}: {e}", dir.display()))?;
    if free < declared.saturating_add(SPACE_MARGIN) {
        return Err(format!(
            "it expands to {} and {} has only {} free (plus a margin of {} is kept)",
            human_bytes(declared),
            dir.display(),
            human_bytes(free),
            human_bytes(SPACE_MARGIN)
        ));
    }
    Ok(())
}

/// A regular file in the archive, with its full name and size from its header.
pub struct Member<'a, R: Read> {
    pub name: String,
    pub size: u64,
    pub entry: tar::Entry<'a, R>,
}

/// The members of an archive, read raw (see the module docs). Errors are in words.
pub struct Members<'a, R: Read> {
    entries: tar::Entries<'a, R>,
}

impl<'a, R: Read> Members<'a, R> {
    pub fn new(archive: &'a mut tar::Archive<R>) -> Result<Members<'a, R>, String> {
        let entries = archive.entries().map_err(|e| format!("the archive cannot be read ({e})"))?;
        Ok(Members { entries: entries.raw(true) })
    }
}

impl<'a, R: Read> Iterator for Members<'a, R> {
    type Item = Result<Member<'a, R>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut long_name: Option<Vec<u8>> = None;
        loop {
            let mut entry = match self.entries.next() {
                None if long_name.is_some() => return Some(Err("the archive ends after a long name".into())),
                None => return None,
                Some(Err(e)) => return Some(Err(format!("the archive cannot be read ({e})"))),
                Some(Ok(e)) => e,
            };
            let kind = entry.header().entry_type();
            let size = match entry.header().entry_size() {
                Ok(s) => s,
                Err(e) => return Some(Err(format!("an entry has an unreadable size ({e})"))),
            };
            if kind.is_gnu_longname() {
                if long_name.is_some() || size > MAX_LONG_NAME {
                    return Some(Err("an entry has a malformed long name".into()));
                }
                let mut name = Vec::with_capacity(size as usize);
                if let Err(e) = entry.read_to_end(&mut name) {
                    return Some(Err(format!("the archive ends early or is garbled ({e})")));
                }
                while name.last() == Some(&0) {
                    name.pop();
                }
                long_name = Some(name);
                continue;
            }
            if !kind.is_file() {
                return Some(Err(format!("an entry is not a plain file (tar type {:?})", kind.as_byte() as char)));
            }
            let bytes = long_name.take().unwrap_or_else(|| entry.header().path_bytes().into_owned());
            let Ok(name) = String::from_utf8(bytes) else {
                return Some(Err("an entry's name is not UTF-8".into()));
            };
            return Some(Ok(Member { name, size, entry }));
        }
    }
}

/// Reads what follows the archive's end marker: zero padding only, then the end of the
/// (decompressed) stream. Garbage appended to the file, or a stream that goes on, fails here.
pub fn expect_end<R: Read>(mut rest: R) -> Result<(), String> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        let n =
            rest.read(&mut buf).map_err(|e| format!("something that is not part of the archive follows it ({e})"))?;
        if n == 0 {
            return Ok(());
        }
        if buf[..n].iter().any(|b| *b != 0) {
            return Err("data follows the end of the archive".into());
        }
        total += n as u64;
        if total > MAX_TRAILER {
            return Err(format!("more than {} of padding follows the end of the archive", human_bytes(MAX_TRAILER)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            b.append_data(&mut h, name, *data).expect("append");
        }
        b.into_inner().expect("finish")
    }

    #[test]
    fn long_names_are_read_and_bounded() {
        let long = format!("files/{}/cv.pdf", "d".repeat(300));
        let bytes = tar_of(&[("a", b"1"), (&long, b"22")]);
        let mut ar = tar::Archive::new(bytes.as_slice());
        let names: Vec<(String, u64)> =
            Members::new(&mut ar).expect("entries").map(|m| m.map(|m| (m.name, m.size)).expect("member")).collect();
        assert_eq!(names, vec![("a".to_string(), 1), (long, 2)]);

        let too_long = format!("files/{}", "d".repeat(MAX_LONG_NAME as usize + 10));
        let bytes = tar_of(&[(&too_long, b"x")]);
        let mut ar = tar::Archive::new(bytes.as_slice());
        let first = Members::new(&mut ar).expect("entries").next().expect("an item");
        assert!(first.is_err());
    }

    #[test]
    fn only_zero_padding_may_follow_the_end() {
        assert_eq!(expect_end(&[0u8; 9000][..]), Ok(()));
        assert!(expect_end(&b"\0\0\0garbage"[..]).is_err());
        assert!(expect_end(std::io::repeat(0).take(MAX_TRAILER + 20_000)).is_err());
    }

    #[test]
    fn room_is_checked_against_the_maximum_and_the_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(check_room(dir.path(), 1 << 20, 2 << 20).is_ok());
        let e = check_room(dir.path(), 3 << 20, 2 << 20).expect_err("over the maximum");
        assert!(e.contains("max_expanded_mib"), "{e}");
        let e = check_room(dir.path(), u64::MAX / 2, u64::MAX).expect_err("no disk is that large");
        assert!(e.contains("free"), "{e}");
    }
}
