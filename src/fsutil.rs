//! File-system facts the server checks before it writes a lot.

use std::path::Path;

/// Bytes an unprivileged process may still write on the file system holding `path` (which
/// must exist).
pub fn available_bytes(path: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(path).map_err(std::io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// "1.5 GiB", "12.0 MiB", "512 B".
pub fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn free_space_is_known_for_a_real_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(super::available_bytes(dir.path()).expect("statvfs") > 0);
        assert!(super::available_bytes(&dir.path().join("missing")).is_err());
    }
}
