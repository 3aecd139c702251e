//! Wheel file names (PEP 427 / the binary distribution format spec):
//! `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`, where each of the last three
//! may be a `.`-separated set ("compressed tag set").

use super::tags::Tag;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WheelFilename {
    pub name: String,
    pub version: String,
    pub pythons: Vec<String>,
    pub abis: Vec<String>,
    pub platforms: Vec<String>,
}

impl WheelFilename {
    /// Parses a wheel file name; `None` when it is not one.
    pub fn parse(filename: &str) -> Option<Self> {
        let stem = filename.strip_suffix(".whl")?;
        let parts: Vec<&str> = stem.split('-').collect();
        let (name, version, rest) = match parts.len() {
            5 => (parts[0], parts[1], &parts[2..]),
            6 => (parts[0], parts[1], &parts[3..]),
            _ => return None,
        };
        if name.is_empty() || version.is_empty() || rest.iter().any(|p| p.is_empty()) {
            return None;
        }
        let set = |s: &str| s.split('.').map(str::to_string).collect::<Vec<_>>();
        Some(Self {
            name: name.to_string(),
            version: version.to_string(),
            pythons: set(rest[0]),
            abis: set(rest[1]),
            platforms: set(rest[2]),
        })
    }

    /// Every tag the name stands for.
    pub fn tags(&self) -> impl Iterator<Item = Tag> + '_ {
        self.pythons.iter().flat_map(move |py| {
            self.abis.iter().flat_map(move |abi| {
                self.platforms
                    .iter()
                    .map(move |plat| Tag::new(py, abi, plat))
            })
        })
    }

    /// The tags joined back, as in the file name: `cp311-cp311-linux_x86_64`.
    pub fn tag_string(&self) -> String {
        format!(
            "{}-{}-{}",
            self.pythons.join("."),
            self.abis.join("."),
            self.platforms.join(".")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compressed_tag_sets() {
        let w = WheelFilename::parse(
            "markupsafe-3.0.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        )
        .unwrap();
        assert_eq!(w.name, "markupsafe");
        assert_eq!(w.platforms.len(), 2);
        assert_eq!(w.tags().count(), 2);
        let six = WheelFilename::parse("six-1.17.0-py2.py3-none-any.whl").unwrap();
        assert!(six.tags().any(|t| t == Tag::new("py3", "none", "any")));
        let build = WheelFilename::parse("foo-1.0-1-py3-none-any.whl").unwrap();
        assert_eq!(build.version, "1.0");
        assert!(WheelFilename::parse("foo-1.0.tar.gz").is_none());
        assert!(WheelFilename::parse("foo-py3-none-any.whl").is_none());
    }
}
