//! Unpacking a source distribution the way uv does before a build: the archive's top-level
//! directory (`pkg-1.0/`) is stripped, so the tree lands directly in the destination (uv
//! `download_archive`; docs/uv-cache.md §5, "external heal"). Members must be plain relative
//! paths; symlinks may not leave the tree and are created last, so nothing is written through
//! one; devices, fifos and hard links are refused.

use anyhow::{Context, Result, bail};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Unpacks a `.tar.gz` (or `.tgz`, `.tar`, `.zip`) sdist with its top directory stripped.
/// Members must be plain relative paths; links may not leave the tree; devices and fifos are
/// refused.
pub fn unpack(archive: &Path, filename: &str, dest: &Path) -> Result<()> {
    if filename.ends_with(".zip") {
        return unpack_zip(archive, dest);
    }
    let file = fs_err::File::open(archive)?;
    let reader: Box<dyn Read> = if filename.ends_with(".tar.gz") || filename.ends_with(".tgz") {
        Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(
            file,
        )))
    } else if filename.ends_with(".tar") {
        Box::new(std::io::BufReader::new(file))
    } else {
        bail!(
            "`{filename}` is not a source archive format heal can unpack (`.tar.gz`, `.tgz`, `.tar`, `.zip`)"
        );
    };
    let mut tar = tar::Archive::new(reader);
    let mut links = Vec::new();
    for entry in tar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let Some(relative) = strip_top(&path)? else {
            continue;
        };
        let target = dest.join(&relative);
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            fs_err::create_dir_all(&target)?;
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            if let Some(parent) = target.parent() {
                fs_err::create_dir_all(parent)?;
            }
            let mode = entry.header().mode().unwrap_or(0o644);
            let mut out = fs_err::File::create(&target)?;
            std::io::copy(&mut entry, &mut out)?;
            set_mode(&target, mode)?;
        } else if kind.is_symlink() {
            let link = entry
                .link_name()?
                .context("a symlink without a target")?
                .into_owned();
            if !link_stays_inside(&relative, &link) {
                bail!("member `{}` links outside the source tree", path.display());
            }
            links.push((target, link));
        } else if matches!(
            kind,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            continue;
        } else {
            bail!(
                "member `{}` is a {kind:?}, which a source archive has no business holding",
                path.display()
            );
        }
    }
    // Links last, so nothing above is ever written through one.
    for (target, link) in links {
        if let Some(parent) = target.parent() {
            fs_err::create_dir_all(parent)?;
        }
        #[cfg(unix)]
        fs_err::os::unix::fs::symlink(&link, &target)
            .with_context(|| format!("creating the symlink `{}`", target.display()))?;
    }
    Ok(())
}

/// Old sdists are zip files (PyPI still serves many). Symlinks are refused: no build needs them.
fn unpack_zip(archive: &Path, dest: &Path) -> Result<()> {
    let file = fs_err::File::open(archive)?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))?;
    for index in 0..zip.len() {
        let mut entry = zip.by_index(index)?;
        let name = entry.name()?.into_owned();
        let Some(relative) = strip_top(Path::new(&name))? else {
            continue;
        };
        let target = dest.join(&relative);
        if entry.is_symlink() {
            bail!("member `{name}` is a symlink, which heal does not unpack from zip sdists");
        } else if entry.is_dir() {
            fs_err::create_dir_all(&target)?;
        } else {
            if let Some(parent) = target.parent() {
                fs_err::create_dir_all(parent)?;
            }
            let mut out = fs_err::File::create(&target)?;
            std::io::copy(&mut entry, &mut out)?;
            set_mode(&target, entry.unix_mode().unwrap_or(0o644))?;
        }
    }
    Ok(())
}

/// Whether a symlink at `member` (relative to the tree) pointing at `target` resolves inside
/// the tree, judged lexically: absolute targets never do, and `..` may not climb above the top.
fn link_stays_inside(member: &Path, target: &Path) -> bool {
    let mut depth: usize = member.components().count().saturating_sub(1);
    for component in target.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// `pkg-1.0/src/x.py` → `src/x.py`; `pkg-1.0/` itself → `None`. Refuses `..` and absolute names.
fn strip_top(path: &Path) -> Result<Option<PathBuf>> {
    let mut components = path.components().filter(|c| *c != Component::CurDir);
    match components.next() {
        Some(Component::Normal(_)) => {}
        _ => bail!(
            "member `{}` is not a relative path inside the archive",
            path.display()
        ),
    }
    let mut rest = PathBuf::new();
    for component in components {
        match component {
            Component::Normal(part) => rest.push(part),
            _ => bail!("member `{}` is not a plain relative path", path.display()),
        }
    }
    Ok((!rest.as_os_str().is_empty()).then_some(rest))
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(
        path,
        std::fs::Permissions::from_mode((mode & 0o777) | 0o600),
    )?;
    Ok(())
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip_sdists_lose_their_top_directory() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("pkg-1.0.zip");
        let mut zip = zip::ZipWriter::new(fs_err::File::create(&archive).unwrap());
        let options = zip::write::SimpleFileOptions::default();
        zip.add_directory("pkg-1.0/", options).unwrap();
        zip.start_file("pkg-1.0/setup.py", options).unwrap();
        zip.write_all(b"print('hi')").unwrap();
        zip.start_file("pkg-1.0/pkg/__init__.py", options).unwrap();
        zip.finish().unwrap();
        let dest = dir.path().join("src");
        unpack(&archive, "pkg-1.0.zip", &dest).unwrap();
        assert_eq!(
            fs_err::read_to_string(dest.join("setup.py")).unwrap(),
            "print('hi')"
        );
        assert!(dest.join("pkg/__init__.py").is_file());

        let evil = dir.path().join("evil-1.0.zip");
        let mut zip = zip::ZipWriter::new(fs_err::File::create(&evil).unwrap());
        zip.start_file("evil-1.0/../../escape", options).unwrap();
        zip.finish().unwrap();
        assert!(unpack(&evil, "evil-1.0.zip", &dir.path().join("e")).is_err());
        assert!(!dir.path().join("escape").exists());
    }

    #[test]
    fn links_may_not_leave_the_tree() {
        assert!(link_stays_inside(Path::new("a/b"), Path::new("../c")));
        assert!(link_stays_inside(Path::new("a/b"), Path::new("./c")));
        assert!(!link_stays_inside(Path::new("a"), Path::new("../../etc")));
        assert!(!link_stays_inside(Path::new("a/b"), Path::new("../../x")));
        assert!(!link_stays_inside(
            Path::new("a/b"),
            Path::new("c/../../../x")
        ));
        assert!(!link_stays_inside(Path::new("a"), Path::new("/etc/passwd")));
    }

    #[test]
    fn members_lose_their_top_directory() {
        assert_eq!(
            strip_top(Path::new("pkg-1.0/a/b.py")).unwrap(),
            Some(PathBuf::from("a/b.py"))
        );
        assert_eq!(strip_top(Path::new("pkg-1.0/")).unwrap(), None);
        assert!(strip_top(Path::new("pkg-1.0/../../x")).is_err());
        assert!(strip_top(Path::new("/etc/passwd")).is_err());
    }
}
