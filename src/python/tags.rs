//! The wheel tags an interpreter accepts, in priority order, computed the way
//! `packaging.tags.sys_tags()` does (packaging `tags.py`, `_manylinux.py`, `_musllinux.py`):
//! the interpreter's own ABIs (debug `d`, free-threaded `t`, `m` before 3.8), `abi3` (`abi3t`
//! for free-threaded builds), `none`, older `abi3` versions, then the `py3x` fallbacks and
//! `any`; platforms are `linux_<arch>`, then manylinux down from the running glibc, then
//! musllinux down from the running musl (packaging 26.3+ order); macOS from the running version down, with its binary formats; Windows
//! and others use `sysconfig.get_platform()`.
//!
//! We compute them in Rust from what [`super::interpreter`] reports instead of importing
//! `packaging` on the target, because a CI interpreter need not have it. A test checks the
//! result against `packaging.tags.sys_tags()` on every interpreter the machine has.

use std::collections::HashSet;

use super::interpreter::Interpreter;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag {
    pub interpreter: String,
    pub abi: String,
    pub platform: String,
}

impl Tag {
    pub fn new(interpreter: &str, abi: &str, platform: &str) -> Self {
        Self {
            interpreter: interpreter.to_string(),
            abi: abi.to_string(),
            platform: platform.to_string(),
        }
    }
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}-{}", self.interpreter, self.abi, self.platform)
    }
}

/// The tags one interpreter accepts, in priority order, with a set for lookups.
#[derive(Clone, Debug)]
pub struct Tags {
    pub ordered: Vec<Tag>,
    set: HashSet<Tag>,
}

impl Tags {
    pub fn for_interpreter(interpreter: &Interpreter) -> Self {
        let ordered = sys_tags(interpreter);
        let set = ordered.iter().cloned().collect();
        Self { ordered, set }
    }

    pub fn contains(&self, tag: &Tag) -> bool {
        self.set.contains(tag)
    }

    /// Whether a wheel with these tags installs here.
    pub fn accepts(&self, wheel: &super::wheel::WheelFilename) -> bool {
        wheel.tags().any(|t| self.contains(&t))
    }
}

/// `packaging.tags.sys_tags()`.
pub fn sys_tags(interp: &Interpreter) -> Vec<Tag> {
    let platforms = platform_tags(interp);
    let (major, minor, _) = interp.version;
    let mut tags = Vec::new();
    let interpreter_name = match interp.implementation.as_str() {
        "cpython" => "cp",
        "pypy" => "pp",
        "ironpython" => "ip",
        "jython" => "jy",
        other => other,
    };
    let nodot = interp
        .py_version_nodot
        .clone()
        .unwrap_or_else(|| format!("{major}{minor}"));
    let interpreter = format!("{interpreter_name}{nodot}");
    if interpreter_name == "cp" {
        cpython_tags(interp, &platforms, &mut tags);
    } else {
        let mut abis = generic_abi(interp);
        if !abis.iter().any(|a| a == "none") {
            abis.push("none".to_string());
        }
        for abi in &abis {
            for platform in &platforms {
                tags.push(Tag::new(&interpreter, abi, platform));
            }
        }
    }
    // compatible_tags()
    let py_range = py_interpreter_range(major, minor);
    for version in &py_range {
        for platform in &platforms {
            tags.push(Tag::new(version, "none", platform));
        }
    }
    // packaging names the interpreter here only for CPython (`cp312`) and PyPy (`pp3`).
    match interpreter_name {
        "cp" => tags.push(Tag::new(&interpreter, "none", "any")),
        "pp" => tags.push(Tag::new("pp3", "none", "any")),
        _ => {}
    }
    for version in &py_range {
        tags.push(Tag::new(version, "none", "any"));
    }
    tags
}

fn cpython_tags(interp: &Interpreter, platforms: &[String], tags: &mut Vec<Tag>) {
    let (major, minor, _) = interp.version;
    let interpreter = format!("cp{major}{minor}");
    let abis = cpython_abis(interp);
    for abi in &abis {
        for platform in platforms {
            tags.push(Tag::new(&interpreter, abi, platform));
        }
    }
    // The first ABI decides (packaging `_is_threaded_cpython`): free-threaded builds take
    // `abi3t` (PEP 803) instead of `abi3`.
    let threaded = abis
        .first()
        .is_some_and(|a| a.trim_start_matches("cp").contains('t'));
    let stable = if threaded { "abi3t" } else { "abi3" };
    let use_stable = (major, minor) >= (3, 2);
    if use_stable {
        for platform in platforms {
            tags.push(Tag::new(&interpreter, stable, platform));
        }
    }
    for platform in platforms {
        tags.push(Tag::new(&interpreter, "none", platform));
    }
    if use_stable {
        for older in (2..minor).rev() {
            for platform in platforms {
                tags.push(Tag::new(&format!("cp{major}{older}"), stable, platform));
            }
        }
    }
}

/// `packaging.tags._cpython_abis`.
fn cpython_abis(interp: &Interpreter) -> Vec<String> {
    let (major, minor, _) = interp.version;
    let version = format!("{major}{minor}");
    let has_ext = interp.ext_suffixes.iter().any(|s| s == "_d.pyd");
    let debug = match interp.py_debug {
        Some(v) => v != 0,
        None => interp.has_refcount || has_ext,
    };
    let debug = if debug { "d" } else { "" };
    let threading = if (major, minor) >= (3, 13) && interp.gil_disabled.unwrap_or(0) != 0 {
        "t"
    } else {
        ""
    };
    let mut abis = Vec::new();
    let mut pymalloc = "";
    if (major, minor) < (3, 8) {
        if interp.with_pymalloc.is_none_or(|v| v != 0) {
            pymalloc = "m";
        }
    } else if !debug.is_empty() {
        abis.push(format!("cp{version}{threading}"));
    }
    abis.insert(0, format!("cp{version}{threading}{debug}{pymalloc}"));
    abis
}

/// `packaging.tags._generic_abi`, for interpreters other than CPython.
fn generic_abi(interp: &Interpreter) -> Vec<String> {
    let Some(suffix) = &interp.ext_suffix else {
        return Vec::new();
    };
    let parts: Vec<&str> = suffix.split('.').collect();
    if parts.len() < 3 {
        return Vec::new();
    }
    let soabi = parts[1];
    let abi = if let Some(rest) = soabi.strip_prefix("cpython") {
        format!(
            "cp{}",
            rest.trim_start_matches('-').split('-').next().unwrap_or("")
        )
    } else if soabi.starts_with("cp") {
        soabi.split('-').next().unwrap_or("").to_string()
    } else if soabi.starts_with("pypy") {
        soabi.split('-').take(2).collect::<Vec<_>>().join("-")
    } else if soabi.starts_with("graalpy") {
        soabi.split('-').take(3).collect::<Vec<_>>().join("-")
    } else {
        return Vec::new();
    };
    vec![normalize(&abi)]
}

/// `py312`, `py3`, `py311`, …, `py30`.
fn py_interpreter_range(major: u32, minor: u32) -> Vec<String> {
    let mut out = vec![format!("py{major}{minor}"), format!("py{major}")];
    out.extend((0..minor).rev().map(|m| format!("py{major}{m}")));
    out
}

fn normalize(text: &str) -> String {
    text.replace(['.', '-', ' '], "_")
}

/// `packaging.tags.platform_tags()`.
pub fn platform_tags(interp: &Interpreter) -> Vec<String> {
    match interp.system.as_str() {
        "Darwin" => mac_platforms(interp),
        "Linux" => linux_platforms(interp),
        _ => vec![normalize(&interp.platform)],
    }
}

fn linux_platforms(interp: &Interpreter) -> Vec<String> {
    let mut linux = normalize(&interp.platform);
    if !linux.starts_with("linux_") {
        return vec![linux];
    }
    if interp.pointer_bits == 32 {
        if linux == "linux_x86_64" {
            linux = "linux_i686".to_string();
        } else if linux == "linux_aarch64" {
            linux = "linux_armv8l".to_string();
        }
    }
    let arch = linux["linux_".len()..].to_string();
    let archs: Vec<String> = if arch == "armv8l" {
        vec!["armv8l".into(), "armv7l".into()]
    } else {
        vec![arch]
    };
    // Since packaging 26.3 the native `linux_*` tags come first (packaging issue 160).
    let mut out: Vec<String> = archs.iter().map(|a| format!("linux_{a}")).collect();
    if let Some(glibc) = interp.glibc {
        manylinux_tags(glibc, &archs, &mut out);
    }
    if let Some((major, minor)) = interp.musl {
        for arch in &archs {
            for m in (0..=minor).rev() {
                out.push(format!("musllinux_{major}_{m}_{arch}"));
            }
        }
    }
    out
}

/// `packaging._manylinux.platform_tags`: every glibc from the running one down to the oldest
/// manylinux knows, with the legacy aliases (`manylinux2014` = 2.17, `manylinux2010` = 2.12,
/// `manylinux1` = 2.5) right after their PEP 600 names.
fn manylinux_tags(glibc: (u32, u32), archs: &[String], out: &mut Vec<String>) {
    const ALLOWED: &[&str] = &[
        "x86_64",
        "aarch64",
        "ppc64",
        "ppc64le",
        "s390x",
        "loongarch64",
        "riscv64",
        "i686",
        "armv7l",
    ];
    if !archs.iter().any(|a| ALLOWED.contains(&a.as_str())) {
        return;
    }
    let too_old_minor = if archs.iter().any(|a| a == "x86_64" || a == "i686") {
        4
    } else {
        16
    };
    let mut maxima = vec![glibc];
    for major in (2..glibc.0).rev() {
        maxima.push((major, 50));
    }
    for arch in archs {
        for &(major, max_minor) in &maxima {
            let min_minor: i64 = if major == 2 { too_old_minor } else { -1 };
            let mut minor = max_minor as i64;
            while minor > min_minor {
                let version = (major, minor as u32);
                out.push(format!("manylinux_{}_{}_{arch}", version.0, version.1));
                let legacy = match version {
                    (2, 17) => Some("manylinux2014"),
                    (2, 12) => Some("manylinux2010"),
                    (2, 5) => Some("manylinux1"),
                    _ => None,
                };
                if let Some(legacy) = legacy {
                    out.push(format!("{legacy}_{arch}"));
                }
                minor -= 1;
            }
        }
    }
}

/// `packaging.tags.mac_platforms`.
fn mac_platforms(interp: &Interpreter) -> Vec<String> {
    let version: Vec<u32> = interp
        .mac_version
        .as_deref()
        .unwrap_or("")
        .split('.')
        .take(2)
        .filter_map(|p| p.parse().ok())
        .collect();
    let version = (
        version.first().copied().unwrap_or(10),
        version.get(1).copied().unwrap_or(0),
    );
    let machine = interp.mac_machine.clone().unwrap_or_default();
    let arch = if interp.pointer_bits == 32 {
        if machine.starts_with("ppc") {
            "ppc"
        } else {
            "i386"
        }
        .to_string()
    } else {
        machine
    };
    mac_platforms_for(version, &arch)
}

pub fn mac_platforms_for(version: (u32, u32), arch: &str) -> Vec<String> {
    let mut out = Vec::new();
    if ((10, 0)..(11, 0)).contains(&version) {
        for minor in (0..=version.1).rev() {
            for format in mac_binary_formats((10, minor), arch) {
                out.push(format!("macosx_10_{minor}_{format}"));
            }
        }
    }
    if version >= (11, 0) {
        for major in (11..=version.0).rev() {
            for format in mac_binary_formats((major, 0), arch) {
                out.push(format!("macosx_{major}_0_{format}"));
            }
        }
        for minor in (4..=16).rev() {
            if arch == "x86_64" {
                for format in mac_binary_formats((10, minor), arch) {
                    out.push(format!("macosx_10_{minor}_{format}"));
                }
            } else {
                out.push(format!("macosx_10_{minor}_universal2"));
            }
        }
    }
    out
}

fn mac_binary_formats(version: (u32, u32), arch: &str) -> Vec<String> {
    let mut formats = vec![arch.to_string()];
    let extra: &[&str] = match arch {
        "x86_64" if version < (10, 4) => return Vec::new(),
        // packaging 26 spells it `fat3` where 21.x wrote `fat32`; we follow the reference.
        "x86_64" => &["intel", "fat64", "fat3"],
        "i386" if version < (10, 4) => return Vec::new(),
        "i386" => &["intel", "fat3", "fat"],
        "ppc64" if !((10, 4)..=(10, 5)).contains(&version) => return Vec::new(),
        "ppc64" => &["fat64"],
        "ppc" if version > (10, 6) => return Vec::new(),
        "ppc" => &["fat3", "fat"],
        _ => &[],
    };
    formats.extend(extra.iter().map(|s| s.to_string()));
    if matches!(arch, "arm64" | "x86_64") {
        formats.push("universal2".into());
    }
    if matches!(arch, "x86_64" | "i386" | "ppc64" | "ppc" | "intel") {
        formats.push("universal".into());
    }
    formats
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux(version: (u32, u32, u32), gil_disabled: bool) -> Interpreter {
        Interpreter {
            implementation: "cpython".into(),
            version,
            platform: "linux-x86_64".into(),
            pointer_bits: 64,
            py_debug: Some(0),
            gil_disabled: Some(gil_disabled as i64),
            with_pymalloc: Some(1),
            has_refcount: false,
            ext_suffixes: vec![],
            ext_suffix: None,
            py_version_nodot: None,
            glibc: Some((2, 36)),
            musl: None,
            mac_version: None,
            mac_machine: None,
            system: "Linux".into(),
            executable: "python".into(),
        }
    }

    #[test]
    fn free_threaded_builds_get_no_abi3() {
        let tags = sys_tags(&linux((3, 13, 0), true));
        assert_eq!(tags[0].to_string(), "cp313-cp313t-linux_x86_64");
        assert!(!tags.iter().any(|t| t.abi == "abi3"));
        assert!(tags.iter().any(|t| t.abi == "abi3t"));
        let tags = sys_tags(&linux((3, 13, 0), false));
        assert!(
            tags.iter()
                .any(|t| t.to_string() == "cp32-abi3-linux_x86_64")
        );
    }

    #[test]
    fn manylinux_aliases_follow_their_glibc() {
        let tags = platform_tags(&linux((3, 12, 1), false));
        let i = tags
            .iter()
            .position(|t| t == "manylinux_2_17_x86_64")
            .unwrap();
        assert_eq!(tags[i + 1], "manylinux2014_x86_64");
        assert_eq!(tags[0], "linux_x86_64");
        assert!(tags.contains(&"manylinux1_x86_64".to_string()));
        assert!(!tags.contains(&"manylinux_2_4_x86_64".to_string()));
    }
}
