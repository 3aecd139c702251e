//! Path inputs: how the `--path` values a user typed become archive members on save and
//! allowed destinations on restore.
//!
//! The rules are actions/cache's (toolkit `internal/cacheUtils.ts::resolvePaths`, `@actions/glob`
//! with `implicitDescendants: false`): inputs are split on newlines and trimmed; `~` is the home
//! directory; relative patterns resolve against the current directory; each match is stored
//! under its path *relative to the workspace* (`GITHUB_WORKSPACE`, else the current directory),
//! so paths outside it get `../` prefixes. One difference, on purpose: an `!exclude` pattern
//! also drops what it matches below an included directory, which is what users expect and
//! what actions/cache silently does not do.
//!
//! Everything here is lexical: `..` is folded without asking the file system, both when names
//! are made and when they are checked on restore, so the two sides always agree.

use anyhow::{Context, Result, bail};
use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

/// The path inputs as typed, split and trimmed like actions/cache does it.
#[derive(Clone, Debug)]
pub struct PathInputs {
    /// Every non-empty line, in order: what goes into the entry version.
    pub lines: Vec<String>,
}

impl PathInputs {
    /// Splits each `--path` value on newlines, turns `!  pattern` into `!pattern`, trims, and
    /// drops empty lines (actions/cache `actionUtils.ts::getInputAsArray`).
    pub fn parse(values: &[String]) -> Result<Self> {
        let lines: Vec<String> = values
            .iter()
            .flat_map(|value| value.split('\n'))
            .map(normalize_input_line)
            .filter(|line| !line.is_empty())
            .collect();
        if lines.is_empty() {
            bail!("no path was given: `--path` needs at least one non-empty line");
        }
        if lines.iter().all(|line| line.starts_with('!')) {
            bail!("every `--path` line is an `!` exclude; at least one must say what to include");
        }
        Ok(Self { lines })
    }

    /// The lines that say what to include (not `!` excludes).
    pub fn includes(&self) -> impl Iterator<Item = &str> {
        self.lines
            .iter()
            .filter(|l| !l.starts_with('!'))
            .map(String::as_str)
    }

    fn excludes(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().filter_map(|l| l.strip_prefix('!'))
    }
}

/// Whether an input names its path without the current directory: `/…` or `~`, `~/…`.
pub fn is_absolute_input(pattern: &str) -> bool {
    let pattern = pattern.strip_prefix('!').unwrap_or(pattern);
    pattern == "~" || pattern.starts_with("~/") || Path::new(pattern).is_absolute()
}

fn normalize_input_line(line: &str) -> String {
    let line = line.trim();
    match line.strip_prefix('!') {
        Some(rest) => format!("!{}", rest.trim_start()),
        None => line.to_string(),
    }
}

/// Where relative inputs resolve and what member names are relative to.
///
/// Two layouts:
/// - with a workspace (`GITHUB_WORKSPACE` in Actions, or `--workspace`), every member name is
///   relative to it, exactly as actions/cache names members, so entries move both ways;
/// - without one (a laptop), the matches of an absolute input (`/…`, `~/…`) are named by their
///   absolute path and only relative inputs are named relative to the current directory. The
///   same absolute `--path` then restores from any current directory, and the archive still
///   extracts with GNU `tar -P`, as actions/cache's does.
#[derive(Clone, Debug)]
pub struct Roots {
    /// The current directory: relative patterns resolve against it.
    pub cwd: PathBuf,
    /// `GITHUB_WORKSPACE`, `--workspace`, or the current directory: relative member names are
    /// relative to it.
    pub workspace: PathBuf,
    /// Whether a workspace was given; without one, absolute inputs get absolute member names.
    pub workspace_given: bool,
    /// The home directory, for `~`.
    pub home: Option<PathBuf>,
}

impl Roots {
    pub fn new(cwd: PathBuf, workspace: Option<PathBuf>, home: Option<PathBuf>) -> Self {
        let cwd = normalize(&cwd);
        let workspace_given = workspace.is_some();
        let workspace = workspace
            .map(|w| normalize(&cwd.join(w)))
            .unwrap_or_else(|| cwd.clone());
        Self {
            cwd,
            workspace,
            workspace_given,
            home,
        }
    }

    /// The member name of a match of `pattern` (see the layouts above).
    pub fn member_name_for(&self, pattern: &str, path: &Path) -> String {
        if !self.workspace_given && is_absolute_input(pattern) {
            return path.to_string_lossy().replace('\\', "/");
        }
        self.member_name(path)
    }

    /// Makes one pattern absolute: `~` expanded, relative ones joined to the current directory,
    /// `.` and `..` folded.
    pub fn absolute(&self, pattern: &str) -> Result<PathBuf> {
        let expanded = if pattern == "~" || pattern.starts_with("~/") {
            let home = self
                .home
                .as_ref()
                .context("`~` in a path needs a home directory, and none is known (set `HOME`)")?;
            home.join(pattern.trim_start_matches('~').trim_start_matches('/'))
        } else {
            PathBuf::from(pattern)
        };
        Ok(normalize(&self.cwd.join(expanded)))
    }

    /// The archive member name of an absolute path: relative to the workspace, `/`-separated.
    pub fn member_name(&self, path: &Path) -> String {
        relative_name(&self.workspace, path)
    }

    /// Where an archive member lands: the workspace joined with its name, folded lexically.
    /// An absolute name stays absolute, as GNU tar `-P` extracts it.
    pub fn destination(&self, member_name: &Path) -> PathBuf {
        normalize(&self.workspace.join(member_name))
    }
}

/// The home directory, for `~`: `HOME`, else `USERPROFILE`.
pub fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("USERPROFILE").map(PathBuf::from))
}

/// Files (anything not a directory) and their bytes below a path, without following links.
pub fn tree_size(path: &Path) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    for entry in walkdir::WalkDir::new(path)
        .follow_links(false)
        .into_iter()
        .flatten()
    {
        if !entry.file_type().is_dir() {
            files += 1;
            bytes += entry.metadata().map_or(0, |m| m.len());
        }
    }
    (files, bytes)
}

/// Folds `.` and `..` without touching the file system. `..` never climbs above the root.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => out.push(component.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                // `..` never climbs above the root.
                Some(Component::RootDir | Component::Prefix(_)) => {}
                // A relative path that already climbs (or is empty) climbs one more.
                _ => out.push(".."),
            },
            Component::Normal(name) => out.push(name),
        }
    }
    out
}

/// `to` relative to `from`, both absolute and normalized, with `/` separators; `.` when equal.
fn relative_name(from: &Path, to: &Path) -> String {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let ups = std::iter::repeat_n("..".to_string(), from.len() - common);
    let downs = to[common..]
        .iter()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    let parts: Vec<String> = ups.chain(downs).collect();
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

pub fn has_glob_chars(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

fn match_options() -> glob::MatchOptions {
    glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    }
}

/// One top-level path to archive: a match of an include pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaveRoot {
    pub absolute: PathBuf,
    pub member_name: String,
}

/// What `save` archives: the matches of the include patterns, and the excludes to apply while
/// walking below them.
#[derive(Debug)]
pub struct SavePlan {
    pub roots: Vec<SaveRoot>,
    /// The `!` patterns.
    pub excludes: Vec<glob::Pattern>,
    /// Absolute paths left out with everything below them: what pruning removes, credential
    /// files, the local store. Many thousands in a large uv cache, so a set, checked once per
    /// walked entry; a directory found here is skipped whole, never walked into.
    left_out: HashSet<PathBuf>,
}

impl SavePlan {
    /// Whether a walked path is excluded: by an `!` pattern, or left out by path.
    pub fn is_excluded(&self, path: &Path) -> bool {
        (!self.left_out.is_empty() && self.left_out.contains(path))
            || self
                .excludes
                .iter()
                .any(|p| p.matches_path_with(path, match_options()))
    }

    /// Leaves out one path, and everything below it when it is a directory. `path` is absolute
    /// and normalized, spelled as the walk spells it: a root joined with names below it.
    pub fn leave_out(&mut self, path: PathBuf) {
        self.left_out.insert(path);
    }

    /// Visits everything `save` archives, in archive order: each root and all below it,
    /// sorted, symlinks not followed (a root that is a symlink is visited as the symlink),
    /// minus what an exclude drops. Packing, the credential check and the fingerprint all walk
    /// through here, so they always agree on what a save holds.
    pub fn walk(
        &self,
        mut visit: impl FnMut(&SaveRoot, &walkdir::DirEntry) -> Result<()>,
    ) -> Result<()> {
        for root in &self.roots {
            let mut entries = walkdir::WalkDir::new(&root.absolute)
                .follow_links(false)
                .follow_root_links(false)
                .sort_by_file_name()
                .into_iter();
            while let Some(entry) = entries.next() {
                let entry =
                    entry.with_context(|| format!("walking `{}`", root.absolute.display()))?;
                if self.is_excluded(entry.path()) {
                    if entry.file_type().is_dir() {
                        entries.skip_current_dir();
                    }
                    continue;
                }
                visit(root, &entry)?;
            }
        }
        Ok(())
    }

    /// Leaves out a directory and everything below it (the local store, when it sits inside a
    /// saved path: archiving it into itself would never end well).
    pub fn exclude_tree(&mut self, dir: &Path) {
        self.leave_out(normalize(dir));
    }
}

/// Expands the include patterns (globs, `~`) into the top-level paths to archive.
pub fn resolve_for_save(inputs: &PathInputs, roots: &Roots) -> Result<SavePlan> {
    let excludes = inputs
        .excludes()
        .map(|p| compile_pattern(roots, p))
        .collect::<Result<Vec<_>>>()?;
    let mut found: Vec<(PathBuf, &str)> = Vec::new();
    for pattern in inputs.includes() {
        let absolute = roots.absolute(pattern)?;
        if has_glob_chars(pattern) {
            let text = absolute.to_string_lossy();
            let matches = glob::glob_with(&text, match_options())
                .with_context(|| format!("`--path` pattern `{pattern}` is not a valid glob"))?;
            found.extend(
                matches
                    .filter_map(|m| m.ok())
                    .map(|m| (normalize(&m), pattern)),
            );
        } else if absolute.symlink_metadata().is_ok() {
            found.push((absolute, pattern));
        }
    }
    found.sort();
    found.dedup_by(|a, b| a.0 == b.0);
    let plan = SavePlan {
        roots: Vec::new(),
        excludes,
        left_out: HashSet::new(),
    };
    let roots_list: Vec<SaveRoot> = found
        .into_iter()
        .filter(|(path, _)| !plan.is_excluded(path))
        .map(|(absolute, pattern)| SaveRoot {
            member_name: roots.member_name_for(pattern, &absolute),
            absolute,
        })
        .collect();
    let roots_list = drop_nested(roots_list);
    if roots_list.is_empty() {
        bail!(
            "none of the paths to save exist: {}",
            inputs
                .lines
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(SavePlan {
        roots: roots_list,
        ..plan
    })
}

/// Drops matches that sit inside another match: tar would archive them twice.
fn drop_nested(mut roots: Vec<SaveRoot>) -> Vec<SaveRoot> {
    roots.sort_by(|a, b| a.absolute.cmp(&b.absolute));
    let mut kept: Vec<SaveRoot> = Vec::new();
    for root in roots {
        let nested = kept.iter().any(|k| root.absolute.starts_with(&k.absolute));
        if !nested {
            kept.push(root);
        }
    }
    kept
}

fn compile_pattern(roots: &Roots, pattern: &str) -> Result<glob::Pattern> {
    let absolute = roots.absolute(pattern)?;
    // A literal path may hold characters that are special to globs (`[` in a directory name);
    // escape those so it matches only itself.
    let text = absolute.to_string_lossy();
    let text = if has_glob_chars(pattern) {
        text.into_owned()
    } else {
        glob::Pattern::escape(&text)
    };
    glob::Pattern::new(&text)
        .with_context(|| format!("`--path` pattern `{pattern}` is not a valid glob"))
}

/// A path a restore may write to: one include pattern, made absolute.
#[derive(Clone, Debug)]
enum Declared {
    Literal(PathBuf),
    Glob(glob::Pattern),
}

/// The destinations a restore may write: every archive member must land inside one of them.
#[derive(Clone, Debug)]
pub struct RestoreTargets {
    declared: Vec<Declared>,
}

impl RestoreTargets {
    pub fn new(inputs: &PathInputs, roots: &Roots) -> Result<Self> {
        let declared = inputs
            .includes()
            .map(|pattern| {
                let absolute = roots.absolute(pattern)?;
                Ok(if has_glob_chars(pattern) {
                    Declared::Glob(compile_pattern(roots, pattern)?)
                } else {
                    Declared::Literal(absolute)
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { declared })
    }

    /// The *unit* a destination belongs to: the shortest ancestor-or-self that a declared path
    /// names. A restore replaces units whole, so this is also what gets swapped into place.
    pub fn unit_for(&self, destination: &Path) -> Option<PathBuf> {
        let mut ancestors: Vec<&Path> = destination.ancestors().collect();
        ancestors.reverse();
        ancestors
            .into_iter()
            .find(|candidate| self.declares(candidate))
            .map(Path::to_path_buf)
    }

    fn declares(&self, candidate: &Path) -> bool {
        self.declared.iter().any(|d| match d {
            Declared::Literal(path) => path == candidate,
            Declared::Glob(pattern) => pattern.matches_path_with(candidate, match_options()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots() -> Roots {
        Roots::new(
            PathBuf::from("/work/repo/sub"),
            Some(PathBuf::from("/work/repo")),
            Some(PathBuf::from("/home/me")),
        )
    }

    #[test]
    fn inputs_are_split_and_trimmed_like_actions_cache() {
        let inputs =
            PathInputs::parse(&["  a \n\n!   b\n".to_string(), "~/.cache/uv".to_string()]).unwrap();
        assert_eq!(inputs.lines, vec!["a", "!b", "~/.cache/uv"]);
        assert!(PathInputs::parse(&["\n \n".to_string()]).is_err());
        assert!(PathInputs::parse(&["!x".to_string()]).is_err());
    }

    #[test]
    fn member_names_are_relative_to_the_workspace() {
        let r = roots();
        assert_eq!(r.member_name(&r.absolute("data").unwrap()), "sub/data");
        assert_eq!(
            r.member_name(&r.absolute("~/.cache/uv").unwrap()),
            "../../home/me/.cache/uv"
        );
        assert_eq!(r.member_name(&r.absolute("..").unwrap()), ".");
        assert_eq!(
            r.member_name(&r.absolute("/work/repo/x/../y").unwrap()),
            "y"
        );
    }

    #[test]
    fn without_a_workspace_absolute_inputs_get_absolute_names() {
        let r = Roots::new(
            PathBuf::from("/work/repo/sub"),
            None,
            Some(PathBuf::from("/home/me")),
        );
        let uv = r.absolute("~/.cache/uv").unwrap();
        assert_eq!(r.member_name_for("~/.cache/uv", &uv), "/home/me/.cache/uv");
        let abs = r.absolute("/srv/x").unwrap();
        assert_eq!(r.member_name_for("/srv/x", &abs), "/srv/x");
        let rel = r.absolute("data").unwrap();
        assert_eq!(r.member_name_for("data", &rel), "data");
        // With a workspace, actions/cache's names.
        assert_eq!(
            roots().member_name_for("~/.cache/uv", &uv),
            "../../home/me/.cache/uv"
        );
    }

    #[test]
    fn relative_paths_keep_their_leading_dot_dots() {
        assert_eq!(
            normalize(Path::new("../../etc")),
            PathBuf::from("../../etc")
        );
        assert_eq!(normalize(Path::new("a/../../b")), PathBuf::from("../b"));
        assert_eq!(normalize(Path::new("/a/../../b")), PathBuf::from("/b"));
        assert_eq!(normalize(Path::new("./a/./b/..")), PathBuf::from("a"));
    }

    #[test]
    fn destinations_fold_dot_dot_lexically() {
        let r = roots();
        assert_eq!(
            r.destination(Path::new("../../home/me/.cache/uv/x")),
            PathBuf::from("/home/me/.cache/uv/x")
        );
        assert_eq!(
            r.destination(Path::new("../../../../../../etc/passwd")),
            PathBuf::from("/etc/passwd")
        );
        assert_eq!(r.destination(Path::new("/abs/x")), PathBuf::from("/abs/x"));
    }

    /// A path left out is skipped with everything below it; its siblings are walked.
    #[test]
    fn left_out_paths_are_skipped_whole() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cache");
        for sub in ["keep/a", "drop/deep/er"] {
            fs_err::create_dir_all(root.join(sub)).unwrap();
        }
        for file in ["keep/a/f", "keep/gone", "drop/deep/er/f"] {
            fs_err::write(root.join(file), "x").unwrap();
        }
        let r = Roots::new(dir.path().to_path_buf(), None, None);
        let inputs = PathInputs::parse(&["cache".into()]).unwrap();
        let mut plan = resolve_for_save(&inputs, &r).unwrap();
        plan.leave_out(root.join("drop"));
        plan.leave_out(root.join("keep/gone"));
        let mut walked = Vec::new();
        plan.walk(|_, entry| {
            walked.push(relative_name(&root, entry.path()));
            Ok(())
        })
        .unwrap();
        assert_eq!(walked, [".", "keep", "keep/a", "keep/a/f"]);
    }

    #[test]
    fn units_are_the_shortest_declared_ancestor() {
        let r = roots();
        let inputs = PathInputs::parse(&["~/.cache/uv\npackages/*/node_modules".into()]).unwrap();
        let t = RestoreTargets::new(&inputs, &r).unwrap();
        assert_eq!(
            t.unit_for(Path::new("/home/me/.cache/uv/a/b")),
            Some(PathBuf::from("/home/me/.cache/uv"))
        );
        assert_eq!(
            t.unit_for(Path::new("/work/repo/sub/packages/p1/node_modules/x/y")),
            Some(PathBuf::from("/work/repo/sub/packages/p1/node_modules"))
        );
        assert_eq!(t.unit_for(Path::new("/home/me/.cache/uvx")), None);
        assert_eq!(t.unit_for(Path::new("/home/me/.cache")), None);
        assert_eq!(
            t.unit_for(Path::new("/work/repo/sub/packages/p1/other")),
            None
        );
    }
}
