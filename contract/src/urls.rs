//! BeadBoard URLs: one grammar (the `url` crate's, WHATWG) for the provider
//! and the runner, and the redaction of credentials wherever a URL is shown.

pub use url::Url;

/// Why a URL was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("{0:?} is not a URL: {1}")]
    Syntax(String, String),
    #[error("{0:?} must be an http:// or https:// URL with a host")]
    NotHttp(String),
}

/// Parses an `http://` or `https://` URL with a host. Surrounding
/// whitespace is ignored.
pub fn parse_http_url(text: &str) -> Result<Url, UrlError> {
    let trimmed = text.trim();
    let url =
        Url::parse(trimmed).map_err(|e| UrlError::Syntax(redact_text(trimmed), e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(UrlError::NotHttp(redact(&url)));
    }
    Ok(url)
}

/// The URL as text with any user name and password replaced by `***`, for
/// notes, logs and error messages.
pub fn redact(url: &Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.as_str().to_string();
    }
    let mut shown = url.clone();
    // Both setters fail only for URLs that cannot have credentials at all.
    let _ = shown.set_password(None);
    let _ = shown.set_username("***");
    shown.as_str().to_string()
}

/// [`redact`] for text that may not even parse: everything between `://`
/// and the last `@` before the path is replaced by `***`.
pub fn redact_text(text: &str) -> String {
    let Some(start) = text.find("://").map(|i| i + 3) else {
        return text.to_string();
    };
    let authority_end = text[start..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |i| start + i);
    match text[start..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &text[..start], &text[start + at..]),
        None => text.to_string(),
    }
}

/// True when the URL's host is the loopback interface (`localhost`,
/// `127.0.0.0/8`, `::1`), where plain `http` never leaves the machine.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_shown() {
        let url = parse_http_url(" http://user:pw@beadboard:3000/x ").unwrap();
        assert_eq!(redact(&url), "http://***@beadboard:3000/x");
        let plain = parse_http_url("https://beadboard").unwrap();
        assert_eq!(redact(&plain), "https://beadboard/");
        assert_eq!(
            redact_text("http://u:p@w@host/path@x"),
            "http://***@host/path@x"
        );
        let err = parse_http_url("http://user:pw@").unwrap_err().to_string();
        assert!(!err.contains("pw"), "{err}");
        let err = parse_http_url("ftp://user:pw@host")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("pw") && err.contains("http://"), "{err}");
    }

    #[test]
    fn loopback_hosts() {
        for (text, expected) in [
            ("http://localhost:3000", true),
            ("http://127.0.0.2", true),
            ("http://[::1]:80", true),
            ("http://beadboard.beads-server.svc.cluster.local", false),
            ("http://10.0.0.1", false),
        ] {
            assert_eq!(
                is_loopback(&parse_http_url(text).unwrap()),
                expected,
                "{text}"
            );
        }
    }
}
