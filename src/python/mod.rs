//! What cache-heal knows about Python packaging, independent of uv: interpreters and what
//! they report ([`interpreter`]), the wheel tags they accept ([`tags`]), wheel file names
//! ([`wheel`]), lock files ([`lockfile`]), the simple repository API ([`index`]), unpacking
//! source distributions ([`sdist`]) and `Requires-Python` ([`requires_python`]).

pub mod index;
pub mod interpreter;
pub mod lockfile;
pub mod requires_python;
pub mod sdist;
pub mod tags;
pub mod wheel;

/// PEP 503 normalisation: lower case, runs of `-`, `_`, `.` become one `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut dash = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            dash = true;
        } else {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_normalize() {
        assert_eq!(super::normalize_name("Foo__Bar.baz"), "foo-bar-baz");
        assert_eq!(super::normalize_name("markupsafe"), "markupsafe");
    }
}
