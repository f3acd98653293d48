//! The ConfigMap's access log format keys: `log-format-upstream` (with `upstreaminfo` naming
//! ingress-nginx's default), `log-format-escape-json`, `log-format-escape-none` and
//! `log-format-stream`.
//!
//! Gathered first, as the escaping keys change how `log-format-upstream` is compiled. Unset,
//! the access log stays Ferry's JSON object. A template that cannot be compiled (a variable
//! Ferry does not provide, a dangling `$`) is reported and the JSON default stays, where
//! ingress-nginx's `nginx -t` would refuse the whole configuration.

use std::sync::Arc;

use ingress_proxy::{LogEscape, LogFormat, LogTemplate, RuntimeSettings};

/// The keys, gathered before they make the formats.
#[derive(Debug, Default)]
pub(super) struct LogKeys<'a> {
    upstream: Option<&'a str>,
    escape_json: Option<&'a str>,
    escape_none: Option<&'a str>,
    stream: Option<&'a str>,
}

impl<'a> LogKeys<'a> {
    /// Takes `key` if it is one of these; whether it was.
    pub(super) fn take(&mut self, key: &str, value: &'a str) -> bool {
        let slot = match key {
            "log-format-upstream" => &mut self.upstream,
            "log-format-escape-json" => &mut self.escape_json,
            "log-format-escape-none" => &mut self.escape_none,
            "log-format-stream" => &mut self.stream,
            _ => return false,
        };
        *slot = Some(value);
        true
    }

    /// Sets the formats the keys say in `s`; returns the keys reported (key, reason).
    pub(super) fn apply(&self, s: &mut RuntimeSettings) -> Vec<(&'static str, String)> {
        let mut reported = Vec::new();
        let mut flag = |key: &'static str, value: Option<&str>| match value.map(super::boolean) {
            None => false,
            Some(Ok(on)) => on,
            Some(Err(reason)) => {
                reported.push((key, reason));
                false
            }
        };
        // As ingress-nginx's template: `escape=none` wins over `escape=json`.
        let escape = if flag("log-format-escape-none", self.escape_none) {
            LogEscape::None
        } else if flag("log-format-escape-json", self.escape_json) {
            LogEscape::Json
        } else {
            LogEscape::Default
        };
        if let Some(source) = self.upstream.filter(|v| !v.is_empty()) {
            match LogTemplate::http(source, escape) {
                Ok(template) => s.log_format = LogFormat::Template(Arc::new(template)),
                Err(e) => reported.push(("log-format-upstream", format!("{e}; the JSON access log stays"))),
            }
        }
        if let Some(source) = self.stream.filter(|v| !v.is_empty()) {
            match LogTemplate::stream(source) {
                Ok(template) => s.stream.log_format = Some(Arc::new(template)),
                Err(e) => reported.push(("log-format-stream", format!("{e}; the JSON session log stays"))),
            }
        }
        reported
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn read(data: &[(&str, &str)]) -> (RuntimeSettings, Vec<super::super::Ignored>) {
        let data: BTreeMap<String, String> =
            data.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        super::super::from_configmap(&RuntimeSettings::default(), &data, &BTreeMap::new())
    }

    fn template(s: &RuntimeSettings) -> Option<&LogTemplate> {
        match &s.log_format {
            LogFormat::Template(t) => Some(t),
            LogFormat::Json => None,
        }
    }

    #[test]
    fn the_escaping_keys_shape_the_upstream_template() -> Result<(), ingress_proxy::LogFormatError> {
        let (s, ignored) = read(&[("log-format-upstream", "upstreaminfo")]);
        assert!(ignored.is_empty(), "{ignored:?}");
        assert_eq!(template(&s), Some(&LogTemplate::http(ingress_proxy::UPSTREAMINFO, LogEscape::Default)?));
        let (s, _) = read(&[("log-format-upstream", "$status"), ("log-format-escape-json", "true")]);
        assert_eq!(template(&s), Some(&LogTemplate::http("$status", LogEscape::Json)?));
        // `escape=none` wins, as in ingress-nginx's template.
        let (s, _) = read(&[
            ("log-format-upstream", "$status"),
            ("log-format-escape-json", "true"),
            ("log-format-escape-none", "true"),
        ]);
        assert_eq!(template(&s), Some(&LogTemplate::http("$status", LogEscape::None)?));
        // Unset or empty: Ferry's JSON.
        assert_eq!(read(&[("log-format-escape-json", "true")]).0.log_format, LogFormat::Json);
        assert_eq!(read(&[("log-format-upstream", "")]).0.log_format, LogFormat::Json);
        Ok(())
    }

    #[test]
    fn a_template_that_cannot_be_compiled_is_reported_and_json_stays() {
        let (s, ignored) = read(&[
            ("log-format-upstream", "$remote_addr $ssl_cipher $geoip_country_code"),
            ("log-format-stream", "$protocol $"),
            ("log-format-escape-json", "maybe"),
        ]);
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.stream.log_format, None);
        let reasons: Vec<_> = ignored.iter().map(|i| format!("{}: {}", i.key, i.reason)).collect();
        assert_eq!(
            reasons,
            [
                "log-format-escape-json: value `maybe`: expected `true` or `false`",
                "log-format-upstream: value `$remote_addr $ssl_cipher $geoip_country_code`: variables not supported: $ssl_cipher, $geoip_country_code; the JSON access log stays",
                "log-format-stream: value `$protocol $`: `$` at byte 10 is not followed by a variable name; the JSON session log stays",
            ]
        );
    }

    #[test]
    fn skipped_urls_are_a_trimmed_list() {
        let (s, ignored) = read(&[("skip-access-log-urls", " /healthz, /metrics?x=1 ,,")]);
        assert!(ignored.is_empty(), "{ignored:?}");
        assert_eq!(s.skip_access_log_urls, ["/healthz", "/metrics?x=1"]);
    }
}
