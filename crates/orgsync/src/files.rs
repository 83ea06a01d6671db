//! Private files. The data directory holds the database (names, e-mails, mobiles), the master
//! key and the admin token's hash: only the user orgsync runs as may read them. The directory
//! is 0700 and every file in it 0600 whatever the umask, and what a start finds looser (an
//! older release, a copied backup) is tightened, with one log line per file naming its old
//! mode (README, "Running orgsync").

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Makes every file this process creates from now on private (0600 files, 0700
/// directories), whatever umask it was started with: SQLite creates the database's `-wal` and
/// `-shm` files itself and re-creates the WAL after a checkpoint.
pub fn restrict_umask() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Creates `dir` (0700) if it is missing, then tightens it and everything below it.
pub fn secure_data_dir(dir: &Path) -> anyhow::Result<()> {
    create_private_dir(dir).with_context(|| {
        format!(
            "data_dir (ORGSYNC_DATA_DIR) {}: cannot create the directory; choose a writable path",
            dir.display()
        )
    })?;
    tighten_tree(dir)
}

/// The SQLite database at `path` and its companions (`-wal`, `-shm`, `-journal`), wherever
/// they live: its directory is created (0700) if missing; those files that exist are
/// tightened. The store creates a missing database file 0600.
pub fn secure_sqlite_files(path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir(parent).with_context(|| {
            format!(
                "database_url (ORGSYNC_DATABASE_URL): cannot create the directory {} for the SQLite database",
                parent.display()
            )
        })?;
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = PathBuf::from(name);
        match std::fs::symlink_metadata(&file) {
            Ok(meta) if meta.is_file() => tighten(&file, &meta, 0o600)?,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("{}: cannot be read", file.display())),
        }
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// `dir` to 0700 and, below it, directories to 0700 and files to 0600 where they are looser.
/// Symbolic links are not followed.
fn tighten_tree(dir: &Path) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(dir)
        .with_context(|| format!("{}: cannot be read", dir.display()))?;
    if !meta.is_dir() {
        anyhow::bail!(
            "data_dir (ORGSYNC_DATA_DIR) {} is not a directory: point it at a directory (created if missing)",
            dir.display()
        );
    }
    tighten(dir, &meta, 0o700)?;
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list the directory", dir.display()))?;
    for entry in entries {
        let entry =
            entry.with_context(|| format!("{}: cannot list the directory", dir.display()))?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)
            .with_context(|| format!("{}: cannot be read", path.display()))?;
        if meta.is_dir() {
            tighten_tree(&path)?;
        } else if meta.is_file() {
            tighten(&path, &meta, 0o600)?;
        }
    }
    Ok(())
}

/// Removes the group and other bits of `path` (to `private`, the owner's bits kept) if any is
/// set, with a log line.
#[cfg(unix)]
fn tighten(path: &Path, meta: &std::fs::Metadata, private: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let old = meta.permissions().mode() & 0o7777;
    if old & 0o077 == 0 {
        return Ok(());
    }
    let new = (old & 0o700) | (private & 0o700);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(new)).with_context(|| {
        format!(
            "{} has mode {old:04o} and cannot be made private: run `chmod {new:o} {}` as its owner, or give orgsync a data_dir it owns",
            path.display(),
            path.display()
        )
    })?;
    tracing::warn!(
        "{}: mode {old:04o} let other users read it; changed to {new:04o}",
        path.display()
    );
    Ok(())
}

#[cfg(not(unix))]
fn tighten(_path: &Path, _meta: &std::fs::Metadata, _private: u32) -> anyhow::Result<()> {
    Ok(())
}
