//! Which instance this process is. Leases and jobs name their instance, so the name must
//! survive a restart: `instance_id`, else an id created once in the data directory. A lock
//! file per instance says whether this process is the only one running as it; only then may
//! it end, at start, what a stopped process of the same instance left running (README,
//! "Running orgsync").

use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};

use crate::config::{Settings, write_private};

/// Where the generated instance id is kept in the data directory.
pub const INSTANCE_ID_FILE: &str = "instance-id";

/// This process's instance.
#[derive(Debug)]
pub struct Instance {
    /// The name in leases and on jobs.
    pub id: String,
    /// Held until the process exits: no other process runs as `id` meanwhile. `None` when
    /// another process holds it (an `orgsync import` next to a running `serve`).
    lock: Option<std::fs::File>,
}

impl Instance {
    /// Whether this process is the only one running as its instance (it holds the lock).
    pub fn is_exclusive(&self) -> bool {
        self.lock.is_some()
    }

    /// The instance of `serve` and `demo`: refused while another process runs as it.
    pub fn claim(settings: &Settings) -> anyhow::Result<Instance> {
        let id = instance_id(settings)?;
        let path = lock_path(settings, &id);
        match try_lock(&path)? {
            Some(lock) => Ok(Instance {
                id,
                lock: Some(lock),
            }),
            None => bail!(
                "instance {id} is already running: another orgsync process{} holds {}. Stop it first; to run several instances on one data directory, give each its own instance_id (ORGSYNC_INSTANCE_ID)",
                holder_pid(&path).map_or(String::new(), |pid| format!(" (pid {pid})")),
                path.display()
            ),
        }
    }

    /// The instance of `import`: the installation's own when no other process runs as it,
    /// else a name of its own for this run (`{id}.import-…`), so that neither can take the
    /// other's jobs for abandoned.
    pub fn claim_or_share(settings: &Settings) -> anyhow::Result<Instance> {
        let id = instance_id(settings)?;
        let path = lock_path(settings, &id);
        if let Some(lock) = try_lock(&path)? {
            return Ok(Instance {
                id,
                lock: Some(lock),
            });
        }
        let own = format!("{id}.import-{}", &directory::ids::new_id()[..6]);
        tracing::info!(
            "another orgsync process{} runs as instance {id}: this import runs as {own}",
            holder_pid(&path).map_or(String::new(), |pid| format!(" (pid {pid})"))
        );
        Ok(Instance {
            id: own,
            lock: None,
        })
    }
}

/// `instance_id`, else the id kept in `{data_dir}/instance-id`, created (0600) on the first
/// start.
pub fn instance_id(settings: &Settings) -> anyhow::Result<String> {
    if let Some(id) = &settings.instance_id {
        return Ok(id.clone());
    }
    let path = settings.data_dir.join(INSTANCE_ID_FILE);
    let fresh = format!("orgsync-{}", &directory::ids::new_id()[..12]);
    match write_private(&path, &format!("{fresh}\n")) {
        Ok(()) => {
            tracing::info!(instance = %fresh, path = %path.display(), "created the instance id");
            return Ok(fresh);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "cannot create {}: make data_dir (ORGSYNC_DATA_DIR) writable, or set instance_id (ORGSYNC_INSTANCE_ID)",
                    path.display()
                )
            });
        }
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot be read", path.display()))?;
    let id = text.trim();
    check_instance_id(id).map_err(|why| {
        anyhow!(
            "{} holds {id:?}, which is not an instance id ({why}): delete the file to have a new one created, or set instance_id (ORGSYNC_INSTANCE_ID)",
            path.display()
        )
    })?;
    Ok(id.to_owned())
}

/// An instance id names the instance in lease holders (`{id}/{job}`): 1 to 64 letters,
/// digits, `.`, `_` or `-`.
pub fn check_instance_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() || id.len() > 64 {
        return Err("use 1 to 64 characters");
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err("use only letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

fn lock_path(settings: &Settings, id: &str) -> PathBuf {
    settings.data_dir.join(format!("{id}.lock"))
}

/// Takes the lock file's exclusive lock and writes this process's id into it; `None` when
/// another process holds it. The lock ends with the process, however it ends.
fn try_lock(path: &Path) -> anyhow::Result<Option<std::fs::File>> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("{}: cannot open the instance lock", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| {
                format!(
                    "{}: cannot lock the instance lock; keep data_dir (ORGSYNC_DATA_DIR) on a local file system",
                    path.display()
                )
            });
        }
    }
    let pid = std::process::id().to_string();
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(pid.as_bytes()))
        .with_context(|| format!("{}: cannot write the instance lock", path.display()))?;
    Ok(Some(file))
}

/// The process id the holder wrote into the lock file, for messages.
fn holder_pid(path: &Path) -> Option<u32> {
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .read_to_string(&mut text)
        .ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path, instance_id: Option<&str>) -> Settings {
        let mut env = vec![(
            "ORGSYNC_DATA_DIR".to_owned(),
            dir.to_string_lossy().into_owned(),
        )];
        if let Some(id) = instance_id {
            env.push(("ORGSYNC_INSTANCE_ID".to_owned(), id.to_owned()));
        }
        Settings::load_from(None, &env).unwrap()
    }

    #[test]
    fn the_id_is_created_once_per_data_directory_and_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        let first = instance_id(&settings(one.path(), None)).unwrap();
        assert!(first.starts_with("orgsync-"), "{first}");
        check_instance_id(&first).unwrap();
        assert_eq!(instance_id(&settings(one.path(), None)).unwrap(), first);
        let mode = std::fs::metadata(one.path().join(INSTANCE_ID_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_ne!(instance_id(&settings(two.path(), None)).unwrap(), first);
        assert_eq!(
            instance_id(&settings(one.path(), Some("node-2"))).unwrap(),
            "node-2"
        );
        std::fs::write(one.path().join(INSTANCE_ID_FILE), "a/b\n").unwrap();
        let e = instance_id(&settings(one.path(), None))
            .unwrap_err()
            .to_string();
        assert!(e.contains("delete the file"), "{e}");
    }

    #[test]
    fn one_process_holds_an_instance_and_an_import_beside_it_gets_its_own_name() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path(), Some("node-1"));
        let serve = Instance::claim(&s).unwrap();
        assert!(serve.is_exclusive());
        // A second lock on the same file from this process conflicts as another process's
        // would (the lock belongs to the open file).
        let e = Instance::claim(&s).unwrap_err().to_string();
        assert!(e.contains("already running"), "{e}");
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        assert!(e.contains("instance_id (ORGSYNC_INSTANCE_ID)"), "{e}");
        let import = Instance::claim_or_share(&s).unwrap();
        assert!(!import.is_exclusive());
        assert!(import.id.starts_with("node-1.import-"), "{}", import.id);
        check_instance_id(&import.id).unwrap();
        // Another instance on the same data directory is fine.
        assert!(
            Instance::claim(&settings(dir.path(), Some("node-2")))
                .unwrap()
                .is_exclusive()
        );
        drop(serve);
        let import = Instance::claim_or_share(&s).unwrap();
        assert!(import.is_exclusive());
        assert_eq!(import.id, "node-1");
    }
}
