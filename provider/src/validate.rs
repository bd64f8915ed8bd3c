//! Plain validation functions for `beads_autodispatch` and the provider
//! block. Each returns `Err(explanation)` with a sentence for the user; the
//! resource turns it into a diagnostic on the attribute.

use std::sync::LazyLock;

use regex_lite::Regex;

fn re(pattern: &str) -> Regex {
    // The patterns are literals in this file and covered by the tests below.
    #[allow(clippy::expect_used)]
    Regex::new(pattern).expect("valid regex literal")
}

static DNS_LABEL: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"));
static IMAGE_COMPONENT: LazyLock<Regex> =
    LazyLock::new(|| re(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$"));
static REGISTRY_HOST: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]{1,5})?$",
    )
});
static TAG: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"));
static DIGEST: LazyLock<Regex> = LazyLock::new(|| re(r"^sha256:[a-f0-9]{64}$"));
static HOSTNAME: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?))*\.?$",
    )
});
static SECRET_KEY: LazyLock<Regex> = LazyLock::new(|| re(r"^[-._a-zA-Z0-9]+$"));

/// The CronJob name limit: 52 characters, since the Jobs it creates add an
/// 11-character suffix (kube-apiserver's `ValidateCronJobCreate`).
const CRONJOB_NAME_MAX: usize = 52;

/// A Kubernetes DNS-1123 label (namespaces, object names): at most 63
/// characters, lowercase letters, digits and '-', starting and ending with
/// a letter or digit.
pub fn dns1123_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 63 {
        return Err(format!("{s:?} is longer than 63 characters"));
    }
    if !DNS_LABEL.is_match(s) {
        return Err(format!(
            "{s:?} is not a valid DNS-1123 label: use lowercase letters, digits and '-', \
             starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// A Kubernetes DNS-1123 subdomain (Secret names): dot-separated labels, at
/// most 253 characters.
pub fn dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 253 {
        return Err(format!("{s:?} is longer than 253 characters"));
    }
    if !s.split('.').all(|l| DNS_LABEL.is_match(l)) {
        return Err(format!(
            "{s:?} is not a valid DNS-1123 subdomain: use lowercase letters, digits, '-' and '.', \
             each part starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// The resource's `name`: a DNS-1123 label short enough that every object
/// name rendered from it fits Kubernetes' limits: the CronJob names (the
/// longest is `<name>-dispatcher`) at most 52 characters, the others at
/// most 63 (they are label values too).
pub fn object_name(s: &str) -> Result<(), String> {
    dns1123_label(s)?;
    let names = crate::names::Names::new(s);
    for cron_job in [&names.dispatcher, &names.reaper] {
        if cron_job.len() > CRONJOB_NAME_MAX {
            let max = s.len() - (cron_job.len() - CRONJOB_NAME_MAX);
            return Err(format!(
                "{s:?} is longer than {max} characters: the CronJob name {cron_job:?} would exceed \
                 Kubernetes' {CRONJOB_NAME_MAX}-character limit"
            ));
        }
    }
    for other in [&names.config_map, &names.deployment] {
        dns1123_label(other).map_err(|e| format!("object name {other:?}: {e}"))?;
    }
    Ok(())
}

/// A container image reference *without* tag or digest, e.g.
/// `ghcr.io/acme/beads-runner` or `registry.local:5000/beads`.
pub fn image_repository(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 255 {
        return Err(format!("{s:?} is longer than 255 characters"));
    }
    if s.contains('@') {
        return Err(format!(
            "{s:?} contains a digest; give the repository only and put the digest in image_tag"
        ));
    }
    let parts: Vec<&str> = s.split('/').collect();
    let has_registry = parts.len() > 1
        && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost");
    let path = if has_registry {
        if !REGISTRY_HOST.is_match(parts[0]) {
            return Err(format!(
                "{:?} is not a valid registry host in {s:?}",
                parts[0]
            ));
        }
        &parts[1..]
    } else {
        &parts[..]
    };
    if let Some(last) = path.last()
        && last.contains(':')
    {
        return Err(format!(
            "{s:?} includes a tag; give the repository only and set image_tag instead"
        ));
    }
    for c in path {
        if !IMAGE_COMPONENT.is_match(c) {
            return Err(format!(
                "{s:?} is not a valid image repository: path component {c:?} must be lowercase \
                 letters and digits, separated by '.', '_', '__' or '-'"
            ));
        }
    }
    Ok(())
}

/// An image tag (`v1.2.3`, `0.1.0`) or a digest (`sha256:` + 64 hex digits).
pub fn image_tag(s: &str) -> Result<(), String> {
    if s.starts_with("sha256:") {
        if DIGEST.is_match(s) {
            return Ok(());
        }
        return Err(format!(
            "{s:?} is not a valid digest: write sha256: followed by 64 lowercase hex digits"
        ));
    }
    if TAG.is_match(s) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid image tag (letters, digits, '_', '.', '-', at most 128, \
             not starting with '.' or '-') nor a sha256 digest"
        ))
    }
}

/// An absolute `http://` or `https://` URL with a host, e.g. `https://beadboard.example.com`.
pub fn http_url(s: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{s:?} is not a valid http(s) URL: {why}"));
    if s.chars().any(char::is_whitespace) {
        return bad("it contains whitespace");
    }
    let rest = if let Some(r) = s.strip_prefix("https://") {
        r
    } else if let Some(r) = s.strip_prefix("http://") {
        r
    } else {
        return bad("it must start with http:// or https://");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return bad("credentials in the URL are not supported");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, p)) if h.parse::<std::net::Ipv6Addr>().is_ok() => (h, p.strip_prefix(':')),
            _ => return bad("the IPv6 address is malformed"),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return bad("the host is missing");
    }
    if !authority.starts_with('[') && !HOSTNAME.is_match(host) {
        return bad("the host is not a valid host name or IPv4 address");
    }
    if let Some(p) = port
        && !matches!(p.parse::<u32>(), Ok(1..=65535))
    {
        return bad("the port must be a number from 1 to 65535");
    }
    Ok(())
}

/// A cron schedule as kube-apiserver accepts it in a CronJob: robfig/cron's
/// `ParseStandard` dialect and no `TZ` ([`beads_contract::cron`]; the e2e
/// test `validation_agrees` checks it against the real kube-apiserver).
pub fn cron_schedule(s: &str) -> Result<(), String> {
    beads_contract::cron::parse(s)
        .map(|_| ())
        .map_err(|e| format!("{s:?}: {e}"))
}

/// A whole number in `min..=max`.
pub fn int_range(n: i64, min: i64, max: i64) -> Result<(), String> {
    if (min..=max).contains(&n) {
        Ok(())
    } else {
        Err(format!("{n} is outside {min}-{max}"))
    }
}

/// A key inside a Kubernetes Secret.
pub fn secret_key(s: &str) -> Result<(), String> {
    if s.len() <= 253 && SECRET_KEY.is_match(s) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid Secret key (letters, digits, '-', '_', '.')"
        ))
    }
}

/// A database name as `bd` accepts it.
pub fn database_name(s: &str) -> Result<(), String> {
    beads_contract::metadata::check_database_name(s)
}

/// A value that must not be empty or blank.
pub fn non_empty(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        for ok in ["a", "beads", "team-1", "0abc"] {
            assert_eq!(dns1123_label(ok), Ok(()), "{ok}");
        }
        for bad in ["", "Beads", "-a", "a-", "a_b", "a.b", &"x".repeat(64)] {
            assert!(dns1123_label(bad).is_err(), "{bad}");
        }
        assert_eq!(dns1123_subdomain("regcred.team-a"), Ok(()));
        assert!(dns1123_subdomain("a..b").is_err());
        assert!(dns1123_subdomain("UPPER").is_err());
        assert_eq!(object_name(&"a".repeat(41)), Ok(()));
        assert_eq!(
            crate::names::Names::new(&"a".repeat(41)).dispatcher.len(),
            52
        );
        assert!(object_name(&"a".repeat(42)).is_err());
    }

    #[test]
    fn image_repositories() {
        for ok in [
            "beads-runner",
            "ghcr.io/acme/beads-runner",
            "localhost:5000/x",
            "registry.local:5000/a/b_c",
            "a__b",
        ] {
            assert_eq!(image_repository(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "ghcr.io/acme/beads:v1",
            "beads:latest",
            "x@sha256:00",
            "Upper/case",
            "a//b",
            "-x",
        ] {
            assert!(image_repository(bad).is_err(), "{bad}");
        }
        assert!(
            image_repository("ghcr.io/acme/beads:v1")
                .unwrap_err()
                .contains("image_tag")
        );
    }

    #[test]
    fn image_tags_and_digests() {
        for ok in [
            "0.1.0",
            "v1",
            "latest",
            "_x",
            &format!("sha256:{}", "a".repeat(64)),
        ] {
            assert_eq!(image_tag(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "-x",
            ".x",
            "a b",
            "v1:2",
            "sha256:abc",
            &format!("sha256:{}", "A".repeat(64)),
            &"x".repeat(129),
        ] {
            assert!(image_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        for ok in [
            "https://beadboard.example.com",
            "http://10.0.0.1:8080/api",
            "http://svc.ns.svc:80",
            "https://[::1]:443/x",
            "http://localhost",
        ] {
            assert_eq!(http_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "ftp://x",
            "beadboard",
            "http://",
            "http://a b",
            "https://x:0",
            "https://x:70000",
            "https://u:p@x",
            "http://-x-",
        ] {
            assert!(http_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cron() {
        for ok in [
            "*/2 * * * *",
            "*/10 * * * *",
            "0 9-17 * * MON-FRI",
            "5,10,15 0 1 jan,jul 0",
            "0 0 ? * 6",
            "@hourly",
            "@every 1h",
            "30 2 */3 * *",
            "1/5 * * * *",
        ] {
            assert_eq!(cron_schedule(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "* * * *",
            "* * * * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 8",
            "*/0 * * * *",
            "5-1 * * * *",
            "0 0 * * 7",
            "a * * * *",
            "TZ=UTC * * * * *",
        ] {
            assert!(cron_schedule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges_and_names() {
        assert_eq!(int_range(1, 1, 100), Ok(()));
        assert!(int_range(0, 1, 100).is_err());
        assert!(int_range(70000, 1, 65535).is_err());
        assert_eq!(secret_key("password"), Ok(()));
        assert!(secret_key("a/b").is_err());
        assert_eq!(database_name("beads"), Ok(()));
        assert!(database_name("1x").is_err());
    }
}
