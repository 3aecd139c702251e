//! The simple repository API, just enough to find one sdist by sha256: PEP 691 JSON when the
//! index offers it, PEP 503 HTML otherwise (both asked for in one `Accept` header, as pip and
//! uv do). Links are resolved against the page URL; the sha256 comes from `hashes` (JSON) or
//! the `#sha256=` fragment (HTML), `Requires-Python` from `requires-python` (PEP 691) or
//! `data-requires-python` (PEP 503, HTML-escaped: `&gt;=3.8`).

use anyhow::{Context, Result};
use reqwest::Url;

use super::normalize_name;

pub const ACCEPT: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1";

/// One file an index lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexFile {
    pub filename: String,
    pub url: String,
    pub sha256: Option<String>,
    pub size: Option<u64>,
    /// The file's `Requires-Python`, when the index publishes it.
    pub requires_python: Option<String>,
}

/// The page URL of a project: `<index>/<normalized name>/`.
pub fn project_url(index: &str, name: &str) -> Result<Url> {
    let base = if index.ends_with('/') {
        index.to_string()
    } else {
        format!("{index}/")
    };
    let base = Url::parse(&base).with_context(|| format!("`{index}` is not an index URL"))?;
    Ok(base.join(&format!("{}/", normalize_name(name)))?)
}

/// Whether `text` can be an index: an absolute `http` or `https` URL with a host. `Err`
/// says what was expected, for a usage error that names the flag or variable.
pub fn check_index_url(text: &str) -> Result<(), String> {
    const EXPECTED: &str = "expected an absolute http(s) URL, such as `https://pypi.org/simple`";
    match Url::parse(text.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        _ => Err(EXPECTED.to_string()),
    }
}

/// [`redact`] for text that may not even parse as a URL: whatever precedes an `@` is masked.
pub fn redact_loose(text: &str) -> String {
    if Url::parse(text).is_ok_and(|u| u.host().is_some()) {
        return redact(text);
    }
    match text.rsplit_once('@') {
        Some((_, host)) => format!("****@{host}"),
        None => text.to_string(),
    }
}

/// A URL fit for messages: credentials in it are masked (`https://****@host/…`), as uv's
/// `DisplaySafeUrl` does, so an index token never reaches a log line.
pub fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_password(None);
            let _ = parsed.set_username("****");
            parsed.to_string()
        }
        Ok(_) => url.to_string(),
        Err(_) => "<not a URL>".to_string(),
    }
}

/// Fetches a project page and lists its files. Errors carry no URL (it may hold credentials);
/// callers name the page with [`redact`].
pub async fn list_files(client: &reqwest::Client, page: &Url) -> Result<Vec<IndexFile>> {
    let response = client
        .get(page.clone())
        .header(reqwest::header::ACCEPT, ACCEPT)
        .send()
        .await
        .map_err(reqwest::Error::without_url)?
        .error_for_status()
        .map_err(reqwest::Error::without_url)?;
    let url = response.url().clone();
    let json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let body = response.text().await.map_err(reqwest::Error::without_url)?;
    if json {
        parse_json(&body, &url)
    } else {
        Ok(parse_html(&body, &url))
    }
}

#[derive(serde::Deserialize)]
struct JsonPage {
    files: Vec<JsonFile>,
}

#[derive(serde::Deserialize)]
struct JsonFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: std::collections::HashMap<String, String>,
    size: Option<u64>,
    #[serde(rename = "requires-python")]
    requires_python: Option<String>,
}

pub fn parse_json(body: &str, page: &Url) -> Result<Vec<IndexFile>> {
    let parsed: JsonPage = serde_json::from_str(body)
        .with_context(|| format!("`{page}` is not a PEP 691 project page"))?;
    Ok(parsed
        .files
        .into_iter()
        .filter_map(|f| {
            Some(IndexFile {
                url: page.join(&f.url).ok()?.to_string(),
                sha256: f.hashes.get("sha256").map(|h| h.to_ascii_lowercase()),
                filename: f.filename,
                size: f.size,
                requires_python: f.requires_python.filter(|r| !r.trim().is_empty()),
            })
        })
        .collect())
}

/// Every `<a href="…">` of a PEP 503 page.
pub fn parse_html(body: &str, page: &Url) -> Vec<IndexFile> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("<a ").or_else(|| rest.find("<A ")) {
        rest = &rest[start + 3..];
        let Some(end) = rest.find('>') else { break };
        let attrs = &rest[..end];
        if let Some(href) = attribute(attrs, "href") {
            let href = unescape(&href);
            if let Ok(url) = page.join(&href) {
                let sha256 = url
                    .fragment()
                    .and_then(|f| f.strip_prefix("sha256="))
                    .map(str::to_ascii_lowercase);
                let mut clean = url.clone();
                clean.set_fragment(None);
                let filename = clean
                    .path_segments()
                    .and_then(|mut s| s.next_back())
                    .unwrap_or("")
                    .to_string();
                out.push(IndexFile {
                    filename: percent_decode(&filename),
                    url: clean.to_string(),
                    sha256,
                    size: None,
                    requires_python: attribute(attrs, "data-requires-python")
                        .map(|r| unescape(&r))
                        .filter(|r| !r.trim().is_empty()),
                });
            }
        }
        rest = &rest[end..];
    }
    out
}

fn attribute(attrs: &str, name: &str) -> Option<String> {
    let lower = attrs.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find(name) {
        let at = from + pos;
        let after = attrs[at + name.len()..].trim_start();
        if let Some(value) = after.strip_prefix('=') {
            let value = value.trim_start();
            let quote = value.chars().next()?;
            if quote == '"' || quote == '\'' {
                let inner = &value[1..];
                return inner.find(quote).map(|e| inner[..e].to_string());
            }
            let end = value.find(char::is_whitespace).unwrap_or(value.len());
            return Some(value[..end].to_string());
        }
        from = at + name.len();
    }
    None
}

fn unescape(text: &str) -> String {
    text.replace("&amp;", "&")
        .replace("&#43;", "+")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_links_with_hashes() {
        let page = Url::parse("http://127.0.0.1:1/simple/docopt/").unwrap();
        let html = r#"<html><body>
<a href="../../files/docopt-0.6.2.tar.gz#sha256=ABCDEF" data-requires-python="&gt;=3">docopt-0.6.2.tar.gz</a><br/>
<a href='https://other.example/x/docopt-0.6.1.tar.gz'>docopt-0.6.1.tar.gz</a>
</body></html>"#;
        let files = parse_html(html, &page);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].url, "http://127.0.0.1:1/files/docopt-0.6.2.tar.gz");
        assert_eq!(files[0].sha256.as_deref(), Some("abcdef"));
        assert_eq!(files[0].filename, "docopt-0.6.2.tar.gz");
        assert_eq!(files[0].requires_python.as_deref(), Some(">=3"));
        assert_eq!(files[1].sha256, None);
        assert_eq!(files[1].requires_python, None);
    }

    #[test]
    fn json_pages() {
        let page = Url::parse("http://127.0.0.1:1/simple/docopt/").unwrap();
        let body = r#"{"meta":{"api-version":"1.1"},"name":"docopt","files":[
            {"filename":"docopt-0.6.2.tar.gz","url":"/files/docopt-0.6.2.tar.gz","hashes":{"sha256":"AB"},"size":12,"requires-python":">=3.8"}]}"#;
        let files = parse_json(body, &page).unwrap();
        assert_eq!(files[0].url, "http://127.0.0.1:1/files/docopt-0.6.2.tar.gz");
        assert_eq!(files[0].size, Some(12));
        assert_eq!(files[0].requires_python.as_deref(), Some(">=3.8"));
    }

    #[test]
    fn credentials_never_show() {
        assert_eq!(
            redact("https://user:s3cret@idx.example/simple/"),
            "https://****@idx.example/simple/"
        );
        assert_eq!(
            redact("https://tok@idx.example/"),
            "https://****@idx.example/"
        );
        assert_eq!(
            redact("http://127.0.0.1:1/simple"),
            "http://127.0.0.1:1/simple"
        );
    }

    #[test]
    fn index_urls_must_be_absolute_http() {
        assert!(check_index_url("https://pypi.org/simple").is_ok());
        assert!(check_index_url("http://127.0.0.1:8080/simple/").is_ok());
        let relative = check_index_url("pypi.org/simple").unwrap_err();
        assert!(relative.contains("absolute http(s) URL"), "{relative}");
        assert!(check_index_url("file:///srv/simple").is_err());
        assert!(check_index_url("https://").is_err());
        assert_eq!(
            redact_loose("user:tok@pypi.org/simple"),
            "****@pypi.org/simple"
        );
    }

    #[test]
    fn project_urls_are_normalized() {
        let url = project_url("http://127.0.0.1:1/simple", "Foo_Bar").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:1/simple/foo-bar/");
    }
}
