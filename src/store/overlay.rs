//! A storage backend that reads a database file and keeps every write in memory.
//!
//! redb's integrity check (`check_integrity`, or an open with the check turned on) rebuilds the
//! allocator state and commits it, and an open after an unclean stop repairs the file. A check
//! must not change what it checks (a snapshot an upgrade is about to trust, or a damaged file
//! that is the evidence), so `bravely check` runs redb on this backend: reads come from the file
//! unless a write covered them, writes go to 4 KiB blocks in memory, and the file is never
//! written. The write set is redb's own bookkeeping (headers, allocator state), a few pages.
//!
//! File locks are those of redb's own file backend on the same file, so a check and a running
//! server exclude each other as two servers do.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::ops::Bound;
use std::path::Path;
use std::sync::Mutex;

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

const BLOCK: u64 = 4096;

#[derive(Debug)]
pub(crate) struct Overlay {
    file: FileBackend,
    /// False when the file could only be opened read-only: no locks (fcntl write locks need a
    /// writable descriptor), as for a snapshot on a read-only mount.
    locks: bool,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The length redb sees.
    len: u64,
    /// Bytes of the file still visible below this offset (a shrink hides the rest: growing
    /// again must show zeros).
    visible: u64,
    blocks: HashMap<u64, Box<[u8]>>,
}

impl Overlay {
    pub(crate) fn open(path: &Path) -> io::Result<Overlay> {
        let (file, locks) = match std::fs::OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => (f, true),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => (File::open(path)?, false),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        let file = FileBackend::new(file).map_err(io::Error::other)?;
        Ok(Overlay { file, locks, state: Mutex::new(State { len, visible: len, blocks: HashMap::new() }) })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fills `out` with the file's bytes at `offset`, zeros past what is visible.
    fn read_base(&self, visible: u64, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let from_file = visible.saturating_sub(offset).min(out.len() as u64) as usize;
        if from_file > 0 {
            self.file.read(offset, &mut out[..from_file])?;
        }
        out[from_file..].fill(0);
        Ok(())
    }
}

impl StorageBackend for Overlay {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.state().len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let st = self.state();
        let end = offset.checked_add(out.len() as u64).ok_or_else(|| io::Error::other("read past the end"))?;
        if end > st.len {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of the file"));
        }
        if st.blocks.is_empty() {
            return self.read_base(st.visible, offset, out);
        }
        let mut pos = offset;
        while pos < end {
            let block = pos / BLOCK;
            let in_block = (pos % BLOCK) as usize;
            let n = ((BLOCK - pos % BLOCK).min(end - pos)) as usize;
            let dst = &mut out[(pos - offset) as usize..(pos - offset) as usize + n];
            match st.blocks.get(&block) {
                Some(b) => dst.copy_from_slice(&b[in_block..in_block + n]),
                None => self.read_base(st.visible, pos, dst)?,
            }
            pos += n as u64;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut st = self.state();
        if len < st.len {
            st.visible = st.visible.min(len);
            st.blocks.retain(|b, _| b * BLOCK < len);
            if let Some(b) = st.blocks.get_mut(&(len / BLOCK)) {
                b[(len % BLOCK) as usize..].fill(0);
            }
        }
        st.len = len;
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut st = self.state();
        let end = offset.checked_add(data.len() as u64).ok_or_else(|| io::Error::other("write past the end"))?;
        let mut pos = offset;
        while pos < end {
            let block = pos / BLOCK;
            let in_block = (pos % BLOCK) as usize;
            let n = ((BLOCK - pos % BLOCK).min(end - pos)) as usize;
            if !st.blocks.contains_key(&block) {
                let mut b = vec![0u8; BLOCK as usize].into_boxed_slice();
                self.read_base(st.visible, block * BLOCK, &mut b)?;
                st.blocks.insert(block, b);
            }
            if let Some(b) = st.blocks.get_mut(&block) {
                b[in_block..in_block + n].copy_from_slice(&data[(pos - offset) as usize..(pos - offset) as usize + n]);
            }
            pos += n as u64;
        }
        st.len = st.len.max(end);
        Ok(())
    }

    fn close(&self) -> Result<(), io::Error> {
        self.file.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        if !self.locks {
            return Err(BackendError::Unsupported);
        }
        self.file.try_lock_range(start, end)
    }

    fn try_lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        if !self.locks {
            return Err(BackendError::Unsupported);
        }
        self.file.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        if !self.locks {
            return Err(BackendError::Unsupported);
        }
        self.file.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        if !self.locks {
            return Err(BackendError::Unsupported);
        }
        self.file.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        if !self.locks {
            return Err(BackendError::Unsupported);
        }
        self.file.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        if !self.locks {
            return Err(BackendError::Unsupported);
        }
        self.file.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_stay_in_memory_and_reads_see_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let original: Vec<u8> = (0..3 * BLOCK + 100).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &original).expect("write");
        let o = Overlay::open(&path).expect("open");
        o.write(BLOCK - 2, &[9, 9, 9, 9]).expect("write");
        let mut got = vec![0u8; 8];
        o.read(BLOCK - 4, &mut got).expect("read");
        assert_eq!(
            got,
            [
                original[(BLOCK - 4) as usize],
                original[(BLOCK - 3) as usize],
                9,
                9,
                9,
                9,
                original[(BLOCK + 2) as usize],
                original[(BLOCK + 3) as usize]
            ]
        );
        // Shrinking then growing shows zeros, not the file's old bytes.
        o.set_len(BLOCK).expect("shrink");
        o.set_len(2 * BLOCK).expect("grow");
        let mut tail = vec![1u8; 16];
        o.read(BLOCK + 8, &mut tail).expect("read");
        assert!(tail.iter().all(|b| *b == 0), "{tail:?}");
        assert!(o.read(2 * BLOCK - 1, &mut [0u8; 2]).is_err(), "past the end");
        assert_eq!(std::fs::read(&path).expect("read"), original, "the file is untouched");
    }
}
