//! Our wheel tags against `packaging.tags.sys_tags()`, the reference, on every Python 3 the
//! machine has (pyenv), in order. Free-threaded and musl interpreters are not installed here,
//! so two more cases patch what packaging reads (`Py_GIL_DISABLED`; the glibc and musl
//! versions) on 3.13 and feed our code the same facts. macOS platform lists are compared
//! through `packaging.tags.mac_platforms(version, arch)` directly.
#![allow(clippy::disallowed_methods)] // tests use std::fs directly; fs-err is for the binary

mod support;

use cache_heal::python::interpreter::{self, Interpreter};
use cache_heal::python::tags::{mac_platforms_for, sys_tags};
use std::path::Path;
use std::process::Command;
use support::uv;

/// Runs `code` (which has `packaging.tags` imported as `tags`) and returns its output lines.
fn packaging(python: &Path, minor: u32, code: &str) -> Vec<String> {
    let script = format!("import sys, sysconfig\nimport packaging.tags as tags\n{code}");
    let out = Command::new(python)
        .args(["-s", "-c", &script])
        .env("PYTHONPATH", uv::packaging_path(minor))
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{} failed: {}",
        python.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn ours(interp: &Interpreter) -> Vec<String> {
    sys_tags(interp).iter().map(ToString::to_string).collect()
}

fn assert_same(expected: &[String], actual: &[String], what: &str) {
    let first = expected.iter().zip(actual).position(|(e, a)| e != a);
    assert!(
        expected == actual,
        "{what}: {} tags from packaging, {} from us; first difference at {:?}: packaging {:?}, ours {:?}",
        expected.len(),
        actual.len(),
        first,
        first.map(|i| &expected[i]),
        first.map(|i| &actual[i]),
    );
}

/// `sys_tags` should equal `packaging.tags.sys_tags()`, tag for tag and in order, on every
/// interpreter pyenv has.
#[test]
fn tags_match_packaging_on_every_interpreter() {
    let pythons = uv::all_pythons();
    assert!(
        pythons.len() >= 3,
        "expected several pyenv Pythons, found {pythons:?}"
    );
    for (name, python) in &pythons {
        let minor: u32 = name.split('.').nth(1).unwrap().parse().unwrap();
        let expected = packaging(python, minor, "for t in tags.sys_tags(): print(t)");
        let interp = interpreter::query(python).unwrap();
        let actual = ours(&interp);
        if minor >= 10 {
            assert_same(&expected, &actual, &format!("Python {name}"));
        } else {
            // packaging 26 needs 3.10+. 25.0 and 21.3 put `linux_*` last (before packaging
            // 26.3), and 21.3 did not yet yield `cp3X-none-any`: compare the sets, less that
            // one tag for 21.3.
            let mut expected = expected.clone();
            let own_any = format!("cp3{minor}-none-any");
            let mut actual: Vec<String> = actual
                .into_iter()
                .filter(|t| minor >= 8 || *t != own_any)
                .collect();
            expected.sort();
            actual.sort();
            assert_same(&expected, &actual, &format!("Python {name} (as a set)"));
        }
        assert!(expected.len() > 100, "Python {name}: suspiciously few tags");
    }
}

/// A free-threaded 3.13 (`Py_GIL_DISABLED=1`): `cp313t`, no `abi3`.
#[test]
fn free_threaded_tags_match_packaging() {
    let python = uv::python("3.13");
    let expected = packaging(
        &python,
        13,
        "real = sysconfig.get_config_var\n\
         sysconfig.get_config_var = lambda n: 1 if n == 'Py_GIL_DISABLED' else real(n)\n\
         for t in tags.sys_tags(): print(t)",
    );
    let mut interp = interpreter::query(&python).unwrap();
    interp.gil_disabled = Some(1);
    let actual = ours(&interp);
    assert!(actual[0].starts_with("cp313-cp313t-"), "{}", actual[0]);
    assert!(actual.iter().any(|t| t == "cp313-abi3t-linux_x86_64"));
    assert_same(&expected, &actual, "free-threaded 3.13");
}

/// A musl 1.2 interpreter: musllinux tags from 1.2 down, no manylinux.
#[test]
fn musllinux_tags_match_packaging() {
    let python = uv::python("3.13");
    let expected = packaging(
        &python,
        13,
        "import packaging._manylinux as m, packaging._musllinux as ml\n\
         m._get_glibc_version = lambda: (-1, -1)\n\
         ml._get_musl_version = lambda exe: ml._MuslVersion(1, 2)\n\
         for t in tags.sys_tags(): print(t)",
    );
    let mut interp = interpreter::query(&python).unwrap();
    interp.glibc = None;
    interp.musl = Some((1, 2));
    let actual = ours(&interp);
    assert!(
        actual
            .iter()
            .any(|t| t == "cp313-cp313-musllinux_1_0_x86_64")
    );
    assert_same(&expected, &actual, "musl 3.13");
}

/// macOS platform lists for old and new macOS, Intel and Apple silicon.
#[test]
fn mac_platforms_match_packaging() {
    let python = uv::python("3.13");
    for (version, arch) in [
        ((10, 15), "x86_64"),
        ((11, 0), "arm64"),
        ((14, 2), "x86_64"),
        ((15, 1), "arm64"),
    ] {
        let expected = packaging(
            &python,
            13,
            &format!(
                "for p in tags.mac_platforms(({}, {}), {arch:?}): print(p)",
                version.0, version.1
            ),
        );
        assert_same(
            &expected,
            &mac_platforms_for(version, arch),
            &format!("macOS {version:?} {arch}"),
        );
    }
}
