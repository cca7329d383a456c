//! The data directory's private files: the development JWT secret and Fernet key, made once
//! and shared by every process that starts on the same directory.

use std::io::Write;
use std::path::Path;

/// Creates `dir` and its missing parents readable by the owner only (0700): the
/// data directory holds the development secrets and the embedded database.
/// An existing directory is left as it is.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes `contents` and a newline to a private (0600) temporary file beside `path`, then
/// hard-links it into place: the link fails if another process won the race, so nobody ever
/// reads a half-written file and the first file stays. Returns whether this call created it.
pub fn publish_once(path: &Path, contents: &str) -> std::io::Result<bool> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut file = private_file(&tmp)?;
        file.write_all(contents.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Warns when a secret file can be read by users other than its owner.
#[cfg(unix)]
pub fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777), "development secret is readable by other users; chmod 600 it");
    }
}

/// Warns when a secret file can be read by users other than its owner.
#[cfg(not(unix))]
pub fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_file_published_stays_and_no_temporary_file_is_left() {
        let temp = crate::temp_dir::TempDir::new("private-files");
        let dir = temp.path();
        create_private_dir(&dir.join("data")).unwrap();
        let path = dir.join("data").join("secret");
        assert!(publish_once(&path, "first").unwrap());
        assert!(!publish_once(&path, "second").unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first\n");
        let names: Vec<_> = std::fs::read_dir(dir.join("data"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["secret"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&dir.join("data")), 0o700);
        }
    }
}
