//! The embedded migrations of a backend as sqlx's [`Migrator`].

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// One migration: version, description, SQL (embedded with `include_str!`).
pub(crate) type Embedded = (i64, &'static str, &'static str);

/// Every migration of `all` below `version` (all of them for `i64::MAX`; tests of a later
/// migration start from a database left by an earlier release).
pub(crate) fn migrator_below(all: &[Embedded], version: i64) -> Migrator {
    Migrator::with_migrations(
        all.iter()
            .filter(|(v, _, _)| *v < version)
            .map(|&(v, description, sql)| {
                Migration::new(
                    v,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::Embedded;

    /// Every file in `migrations/{backend}/` is listed, in order, under its number: 0002 was
    /// once written but never listed, so its indexes never existed.
    fn every_file_is_listed(backend: &str, listed: &[Embedded]) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        let mut files: Vec<(i64, String)> = std::fs::read_dir(&dir)
            .expect("the migrations folder")
            .map(|e| {
                e.expect("a folder entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name| name.ends_with(".sql"))
            .map(|name| {
                let version = name[..4].parse().expect("a file named NNNN_….sql");
                let sql = std::fs::read_to_string(dir.join(&name)).expect("a readable file");
                (version, sql)
            })
            .collect();
        files.sort();
        let listed: Vec<(i64, String)> = listed
            .iter()
            .map(|&(v, _, sql)| (v, sql.to_owned()))
            .collect();
        assert_eq!(
            files.iter().map(|f| f.0).collect::<Vec<_>>(),
            listed.iter().map(|f| f.0).collect::<Vec<_>>(),
            "{backend}: the migrations listed are not the files in {}",
            dir.display()
        );
        assert_eq!(
            files, listed,
            "{backend}: a listed migration is another file's SQL"
        );
    }

    #[test]
    fn every_sqlite_migration_file_is_listed() {
        every_file_is_listed("sqlite", &crate::sqlite::MIGRATIONS);
    }

    #[test]
    fn every_postgres_migration_file_is_listed() {
        every_file_is_listed("postgres", &crate::postgres::MIGRATIONS);
    }
}
