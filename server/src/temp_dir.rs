//! A directory for one test, removed when the test is done with it (also when it panics),
//! so a test run leaves nothing behind under the system's temporary directory.

use std::path::{Path, PathBuf};

/// A fresh directory `<temp>/execution-api-test-<label>-<uuid>`, removed on drop.
#[derive(Debug)]
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    /// Creates the directory.
    pub(crate) fn new(label: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "execution-api-test-{label}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("create the test's temporary directory");
        TempDir(dir)
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_is_gone_after_drop_even_with_files_in_it() {
        let dir = TempDir::new("temp-dir");
        let path = dir.path().to_path_buf();
        std::fs::create_dir_all(path.join("nested")).unwrap();
        std::fs::write(path.join("nested").join("file"), "x").unwrap();
        drop(dir);
        assert!(!path.exists(), "{}", path.display());
    }
}
