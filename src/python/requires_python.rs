//! `Requires-Python` (PEP 345, specifiers per PEP 440): does a source distribution accept an
//! interpreter of a given version? Heal asks this so that it never fetches a source for an
//! interpreter that uv would refuse to build it for.
//!
//! Only what an interpreter version needs is implemented: the interpreter is a final release
//! (`3.12.1`), so the pre-release and post-release exclusions of `<` and `>` never apply to
//! it. A specifier set that does not parse is not trusted to exclude anything: heal then plans
//! the source as if it said nothing, and uv decides.

use std::cmp::Ordering;

/// A parsed `Requires-Python` value, such as `>=3.8, !=3.9.*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequiresPython {
    specifiers: Vec<Specifier>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Specifier {
    operator: Operator,
    version: Version,
    /// `==3.8.*` / `!=3.8.*`.
    wildcard: bool,
    /// The version as written, for `===`.
    text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    Equal,
    NotEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    Compatible,
    Arbitrary,
}

/// A PEP 440 version reduced to what orders it against a final release: the release numbers
/// and where a pre-, post- or dev-release sits relative to that release.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Version {
    release: Vec<u64>,
    /// Orders the suffixes: dev < pre (a < b < rc) < final < post.
    suffix: (u8, u64, u64),
}

impl RequiresPython {
    /// Parses a specifier set; `None` when any part of it is not a PEP 440 specifier.
    pub fn parse(text: &str) -> Option<Self> {
        let specifiers = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Specifier::parse)
            .collect::<Option<Vec<_>>>()?;
        Some(Self { specifiers })
    }

    /// Whether an interpreter of this version satisfies every specifier.
    pub fn contains(&self, version: (u32, u32, u32)) -> bool {
        let (major, minor, micro) = version;
        let candidate = Version {
            release: vec![major.into(), minor.into(), micro.into()],
            suffix: FINAL,
        };
        let text = format!("{major}.{minor}.{micro}");
        self.specifiers
            .iter()
            .all(|s| s.contains(&candidate, &text))
    }
}

const FINAL: (u8, u64, u64) = (3, 0, 0);

impl Specifier {
    fn parse(text: &str) -> Option<Self> {
        let (operator, rest) = [
            ("===", Operator::Arbitrary),
            ("~=", Operator::Compatible),
            ("==", Operator::Equal),
            ("!=", Operator::NotEqual),
            ("<=", Operator::LessEqual),
            (">=", Operator::GreaterEqual),
            ("<", Operator::Less),
            (">", Operator::Greater),
        ]
        .into_iter()
        .find_map(|(prefix, op)| text.strip_prefix(prefix).map(|rest| (op, rest.trim())))?;
        if operator == Operator::Arbitrary {
            return Some(Self {
                operator,
                version: Version {
                    release: Vec::new(),
                    suffix: FINAL,
                },
                wildcard: false,
                text: rest.to_string(),
            });
        }
        let (body, wildcard) = match rest.strip_suffix(".*") {
            Some(body) if matches!(operator, Operator::Equal | Operator::NotEqual) => (body, true),
            Some(_) => return None,
            None => (rest, false),
        };
        let version = Version::parse(body)?;
        if operator == Operator::Compatible && version.release.len() < 2 {
            return None;
        }
        Some(Self {
            operator,
            version,
            wildcard,
            text: rest.to_string(),
        })
    }

    fn contains(&self, candidate: &Version, text: &str) -> bool {
        let order = candidate.cmp_to(&self.version);
        match self.operator {
            Operator::Arbitrary => text == self.text,
            Operator::Equal if self.wildcard => candidate.starts_with(&self.version.release),
            Operator::NotEqual if self.wildcard => !candidate.starts_with(&self.version.release),
            Operator::Equal => order == Ordering::Equal,
            Operator::NotEqual => order != Ordering::Equal,
            Operator::Less => order == Ordering::Less,
            Operator::LessEqual => order != Ordering::Greater,
            Operator::Greater => order == Ordering::Greater,
            Operator::GreaterEqual => order != Ordering::Less,
            Operator::Compatible => {
                let prefix = &self.version.release[..self.version.release.len() - 1];
                order != Ordering::Less && candidate.starts_with(prefix)
            }
        }
    }
}

impl Version {
    /// `3.8`, `v3.8.0`, `3.13.0rc1`, `3.7.post1`, `3.9.dev0`; a local label (`+…`) is ignored.
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase();
        let text = text.strip_prefix('v').unwrap_or(&text);
        let text = text.split('+').next()?;
        let text = text.split_once('!').map_or(text, |(_epoch, rest)| rest);
        let end = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (release, rest) = text.split_at(end);
        let release = release.strip_suffix('.').unwrap_or(release);
        let release = release
            .split('.')
            .map(|part| part.parse().ok())
            .collect::<Option<Vec<u64>>>()?;
        let rest = rest.trim_start_matches(['.', '-', '_']);
        let suffix = if rest.is_empty() {
            FINAL
        } else {
            let split = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let (label, number) = rest.split_at(split);
            let number: u64 = number.parse().unwrap_or(0);
            match label.trim_end_matches(['.', '-', '_']) {
                "dev" => (0, 0, number),
                "a" | "alpha" => (1, 0, number),
                "b" | "beta" => (1, 1, number),
                "rc" | "c" | "pre" | "preview" => (1, 2, number),
                "post" | "rev" | "r" => (4, 0, number),
                _ => return None,
            }
        };
        Some(Self { release, suffix })
    }

    fn cmp_to(&self, other: &Self) -> Ordering {
        let len = self.release.len().max(other.release.len());
        let at = |v: &Self, i: usize| v.release.get(i).copied().unwrap_or(0);
        (0..len)
            .map(|i| at(self, i).cmp(&at(other, i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
            .then(self.suffix.cmp(&other.suffix))
    }

    /// `3.8.1` starts with `[3, 8]`; missing numbers count as 0, as PEP 440 pads them.
    fn starts_with(&self, prefix: &[u64]) -> bool {
        prefix
            .iter()
            .enumerate()
            .all(|(i, p)| self.release.get(i).copied().unwrap_or(0) == *p)
    }
}

#[cfg(test)]
mod tests {
    use super::RequiresPython;

    fn accepts(spec: &str, version: (u32, u32, u32)) -> bool {
        RequiresPython::parse(spec)
            .unwrap_or_else(|| panic!("`{spec}` did not parse"))
            .contains(version)
    }

    #[test]
    fn lower_bounds() {
        assert!(!accepts(">=3.8", (3, 6, 15)));
        assert!(accepts(">=3.8", (3, 8, 0)));
        assert!(accepts(">=3.8", (3, 12, 1)));
        assert!(!accepts(">3.8", (3, 8, 0)));
        assert!(accepts(">3.8", (3, 8, 1)));
        assert!(accepts(">=3.6.1", (3, 6, 15)));
    }

    #[test]
    fn upper_bounds_and_exclusions() {
        assert!(!accepts(">=3.8, <3.12", (3, 12, 1)));
        assert!(accepts(">=3.8,<3.12", (3, 11, 7)));
        assert!(accepts("<=3.12", (3, 12, 0)));
        assert!(!accepts("<=3.12", (3, 12, 1)));
        assert!(!accepts("!=3.9.*", (3, 9, 18)));
        assert!(accepts("!=3.9.*", (3, 10, 13)));
        assert!(accepts("==3.*", (3, 13, 0)));
        assert!(!accepts("==2.7.*", (3, 6, 15)));
        assert!(accepts("==3.11", (3, 11, 0)));
        assert!(!accepts("==3.11", (3, 11, 7)));
    }

    #[test]
    fn compatible_release_and_suffixes() {
        assert!(accepts("~=3.8", (3, 12, 1)));
        assert!(!accepts("~=3.8.1", (3, 9, 0)));
        assert!(accepts("~=3.8.1", (3, 8, 5)));
        // A final 3.13.0 is newer than its release candidates, older than its post-releases.
        assert!(accepts(">=3.13.0rc1", (3, 13, 0)));
        assert!(!accepts(">=3.13.0.post1", (3, 13, 0)));
        assert!(accepts(">=3.7.dev0", (3, 7, 0)));
        assert!(accepts("===3.12.1", (3, 12, 1)));
        assert!(accepts("", (3, 6, 15)), "an empty value excludes nothing");
    }

    #[test]
    fn garbage_is_not_trusted() {
        assert_eq!(RequiresPython::parse(">=three"), None);
        assert_eq!(RequiresPython::parse("3.8"), None);
        assert_eq!(RequiresPython::parse(">=3.8.*"), None);
        assert_eq!(RequiresPython::parse("~=3"), None);
    }
}
