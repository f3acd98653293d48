//! What an access log line says: Ferry's JSON object (the default), or an nginx `log_format`
//! template (ingress-nginx's `log-format-upstream` and `log-format-stream`), compiled once
//! when the settings change and filled in per request.
//!
//! Templates follow nginx: `$name` or `${name}` (names are letters, digits and `_`, matched
//! without regard to case), everything else literal; a value the request does not have is
//! written `-` (nothing with JSON escaping); values are escaped as `escape=default`
//! (`"`, `\`, control and non-ASCII bytes as `\xHH`), `escape=json` or `escape=none` say.
//! A variable Ferry does not know is an error naming it, so a template is applied whole or
//! not at all.

use std::sync::Arc;

/// ingress-nginx's default `log-format-upstream`, the format of its `upstreaminfo` log.
pub const UPSTREAMINFO: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status \
    $body_bytes_sent \"$http_referer\" \"$http_user_agent\" $request_length $request_time \
    [$proxy_upstream_name] [$proxy_alternative_upstream_name] $upstream_addr \
    $upstream_response_length $upstream_response_time $upstream_status $req_id";

/// The longest template accepted, in bytes.
const MAX_SOURCE: usize = 16 * 1024;

/// The access log's format.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, in Ferry's own fields.
    #[default]
    Json,
    /// An nginx `log_format` template.
    Template(Arc<LogTemplate>),
}

/// How a template's values are escaped (nginx's `log_format … escape=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogEscape {
    /// `"`, `\`, control bytes and bytes past ASCII as `\xHH`.
    #[default]
    Default,
    /// As in a JSON string; a missing value is an empty string rather than `-`.
    Json,
    /// Nothing escaped (`log-format-escape-none`): values can break the line.
    None,
}

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogFormatError {
    /// A `$` not followed by a name.
    #[error("`$` at byte {0} is not followed by a variable name")]
    NoName(usize),
    /// A `${` without its `}`.
    #[error("`${{` at byte {0} has no closing `}}`")]
    Unclosed(usize),
    /// Variables Ferry does not provide.
    #[error("variables not supported: {}", .0.join(", "))]
    Unsupported(Vec<String>),
    /// Longer than the limit.
    #[error("longer than {MAX_SOURCE} bytes")]
    TooLong,
}

/// A compiled nginx `log_format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTemplate {
    source: String,
    escape: LogEscape,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(Vec<u8>),
    Var(Var),
}

/// Which lines a template writes: HTTP requests or TCP/UDP sessions (their variables differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Http,
    Stream,
}

/// A variable a template can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Var {
    RemoteAddr,
    RemotePort,
    TimeLocal,
    TimeIso8601,
    Msec,
    Status,
    ServerPort,
    /// Bytes sent to the client (HTTP: head and body).
    BytesSent,
    UpstreamAddr,
    ProxyUpstreamName,
    Hostname,
    Pid,
    RemoteUser,
    Request,
    RequestMethod,
    RequestUri,
    Uri,
    Args,
    IsArgs,
    ServerProtocol,
    Scheme,
    Host,
    BodyBytesSent,
    RequestLength,
    RequestTime,
    ProxyAlternativeUpstreamName,
    UpstreamStatus,
    UpstreamResponseTime,
    UpstreamResponseLength,
    ReqId,
    Namespace,
    IngressName,
    ServiceName,
    ServicePort,
    /// A request header, by its lower-case name (`$http_x_forwarded_for` → `x-forwarded-for`).
    Header(String),
    Protocol,
    BytesReceived,
    SessionTime,
}

impl Var {
    /// The variable `name` (lower case) stands for in `context`.
    fn named(name: &str, context: Context) -> Option<Var> {
        use Var::*;
        let common = match name {
            "remote_addr" => Some(RemoteAddr),
            "remote_port" => Some(RemotePort),
            "time_local" => Some(TimeLocal),
            "time_iso8601" => Some(TimeIso8601),
            "msec" => Some(Msec),
            "status" => Some(Status),
            "server_port" => Some(ServerPort),
            "bytes_sent" => Some(BytesSent),
            "upstream_addr" => Some(UpstreamAddr),
            "proxy_upstream_name" => Some(ProxyUpstreamName),
            "hostname" => Some(Hostname),
            "pid" => Some(Pid),
            _ => None,
        };
        if common.is_some() {
            return common;
        }
        match context {
            Context::Stream => match name {
                "protocol" => Some(Protocol),
                "bytes_received" => Some(BytesReceived),
                "session_time" => Some(SessionTime),
                _ => None,
            },
            Context::Http => Some(match name {
                "remote_user" => RemoteUser,
                "request" => Request,
                "request_method" => RequestMethod,
                "request_uri" => RequestUri,
                "uri" | "document_uri" => Uri,
                "args" | "query_string" => Args,
                "is_args" => IsArgs,
                "server_protocol" => ServerProtocol,
                "scheme" => Scheme,
                "host" => Host,
                "body_bytes_sent" => BodyBytesSent,
                "request_length" => RequestLength,
                "request_time" => RequestTime,
                "proxy_alternative_upstream_name" => ProxyAlternativeUpstreamName,
                "upstream_status" => UpstreamStatus,
                "upstream_response_time" => UpstreamResponseTime,
                "upstream_response_length" => UpstreamResponseLength,
                "req_id" | "request_id" => ReqId,
                "namespace" => Namespace,
                "ingress_name" => IngressName,
                "service_name" => ServiceName,
                "service_port" => ServicePort,
                _ => match name.strip_prefix("http_") {
                    Some(header) if !header.is_empty() => Header(header.replace('_', "-")),
                    _ => return None,
                },
            }),
        }
    }
}

/// The values of one line's variables: a finished request or session.
pub(crate) trait Facts {
    /// Appends `var`'s value, unescaped, to `out`; false when this line has none (nginx's
    /// `-`).
    fn value(&self, var: &Var, out: &mut Vec<u8>) -> bool;
}

impl LogTemplate {
    /// An HTTP access log template (`log-format-upstream`); `upstreaminfo` names
    /// ingress-nginx's default, [`UPSTREAMINFO`].
    pub fn http(source: &str, escape: LogEscape) -> Result<Self, LogFormatError> {
        let source = if source.trim() == "upstreaminfo" { UPSTREAMINFO } else { source };
        Self::compile(source, escape, Context::Http)
    }

    /// A TCP/UDP session template (`log-format-stream`, escaped as nginx's default).
    pub fn stream(source: &str) -> Result<Self, LogFormatError> {
        Self::compile(source, LogEscape::Default, Context::Stream)
    }

    /// The template's text, as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn compile(source: &str, escape: LogEscape, context: Context) -> Result<Self, LogFormatError> {
        if source.len() > MAX_SOURCE {
            return Err(LogFormatError::TooLong);
        }
        let bytes = source.as_bytes();
        let mut parts = Vec::new();
        let mut text = Vec::new();
        let mut unsupported = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'$' => {
                    let start = i;
                    let braced = bytes.get(i + 1) == Some(&b'{');
                    let from = if braced { i + 2 } else { i + 1 };
                    let len =
                        bytes[from..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
                    if len == 0 {
                        return Err(LogFormatError::NoName(start));
                    }
                    let name = source[from..from + len].to_ascii_lowercase();
                    i = from + len;
                    if braced {
                        if bytes.get(i) != Some(&b'}') {
                            return Err(LogFormatError::Unclosed(start));
                        }
                        i += 1;
                    }
                    match Var::named(&name, context) {
                        Some(var) => {
                            if !text.is_empty() {
                                parts.push(Part::Text(std::mem::take(&mut text)));
                            }
                            parts.push(Part::Var(var));
                        }
                        None => unsupported.push(format!("${name}")),
                    }
                }
                // nginx's quoted-string escapes: ingress-nginx writes the template in quotes.
                b'\\' if matches!(bytes.get(i + 1), Some(b'"' | b'\'' | b'\\' | b't' | b'r' | b'n')) => {
                    text.push(match bytes[i + 1] {
                        b't' => b'\t',
                        b'r' => b'\r',
                        b'n' => b'\n',
                        other => other,
                    });
                    i += 2;
                }
                other => {
                    text.push(other);
                    i += 1;
                }
            }
        }
        if !unsupported.is_empty() {
            unsupported.dedup();
            return Err(LogFormatError::Unsupported(unsupported));
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Self { source: source.to_owned(), escape, parts })
    }

    /// The line for `facts`, ended.
    pub(crate) fn line(&self, facts: &impl Facts) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.render(facts, &mut out);
        out.push(b'\n');
        out
    }

    /// Appends the line for `facts` to `out`, without its newline.
    pub(crate) fn render(&self, facts: &impl Facts, out: &mut Vec<u8>) {
        let mut value = Vec::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.extend_from_slice(text),
                Part::Var(var) => {
                    value.clear();
                    if facts.value(var, &mut value) {
                        match self.escape {
                            LogEscape::Default => escape_default(&value, out),
                            LogEscape::Json => escape_json(&value, out),
                            LogEscape::None => out.extend_from_slice(&value),
                        }
                    } else if self.escape != LogEscape::Json {
                        out.push(b'-');
                    }
                }
            }
        }
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// nginx's default log escaping: `"`, `\`, control bytes and bytes past ASCII as `\xHH`.
fn escape_default(value: &[u8], out: &mut Vec<u8>) {
    for &b in value {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX_UPPER[usize::from(b >> 4)],
                HEX_UPPER[usize::from(b & 15)],
            ]);
        } else {
            out.push(b);
        }
    }
}

/// `value` as the inside of a JSON string (nginx's `ngx_escape_json`: bytes past ASCII kept).
pub(crate) fn escape_json(value: &[u8], out: &mut Vec<u8>) {
    for &b in value {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..0x20 => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX_LOWER[usize::from(b >> 4)],
                HEX_LOWER[usize::from(b & 15)],
            ]),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variable's value is its name in capitals, except `$http_*` (`h:` and the header)
    /// and `$remote_user` (absent).
    struct Named;

    impl Facts for Named {
        fn value(&self, var: &Var, out: &mut Vec<u8>) -> bool {
            match var {
                Var::RemoteUser => false,
                Var::Header(h) if h == "user-agent" => {
                    out.extend_from_slice(b"curl \"evil\"\n\\ \x01 \xc3\xa9");
                    true
                }
                Var::Header(h) => {
                    out.extend_from_slice(format!("h:{h}").as_bytes());
                    true
                }
                other => {
                    out.extend_from_slice(format!("{other:?}").to_uppercase().as_bytes());
                    true
                }
            }
        }
    }

    fn line(t: &LogTemplate) -> String {
        let mut out = Vec::new();
        t.render(&Named, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn upstreaminfo_is_ingress_nginx_default_format() -> Result<(), LogFormatError> {
        let t = LogTemplate::http("upstreaminfo", LogEscape::Default)?;
        assert_eq!(t.source(), UPSTREAMINFO);
        assert_eq!(t, LogTemplate::http(UPSTREAMINFO, LogEscape::Default)?);
        assert_eq!(
            line(&t),
            "REMOTEADDR - - [TIMELOCAL] \"REQUEST\" STATUS BODYBYTESSENT \"h:referer\" \
             \"curl \\x22evil\\x22\\x0A\\x5C \\x01 \\xC3\\xA9\" REQUESTLENGTH REQUESTTIME \
             [PROXYUPSTREAMNAME] [PROXYALTERNATIVEUPSTREAMNAME] UPSTREAMADDR UPSTREAMRESPONSELENGTH \
             UPSTREAMRESPONSETIME UPSTREAMSTATUS REQID"
        );
        Ok(())
    }

    #[test]
    fn json_escaping_keeps_a_line_one_valid_object() -> Result<(), LogFormatError> {
        let t = LogTemplate::http(
            r#"{"ua": "$http_user_agent", "user": "$remote_user", "x": "${http_x_forwarded_for}s"}"#,
            LogEscape::Json,
        )?;
        assert_eq!(
            line(&t),
            "{\"ua\": \"curl \\\"evil\\\"\\n\\\\ \\u0001 \u{e9}\", \"user\": \"\", \"x\": \"h:x-forwarded-fors\"}"
        );
        let none = LogTemplate::http("$remote_user|$http_user_agent", LogEscape::None)?;
        assert_eq!(line(&none), "-|curl \"evil\"\n\\ \x01 \u{e9}");
        Ok(())
    }

    #[test]
    fn names_are_nginx_names() -> Result<(), LogFormatError> {
        // Case-insensitive, braced, next to text, and nginx's quoted-string escapes.
        let t = LogTemplate::http(r#"${STATUS}x$Status.$status_ \"$pid\'\\\q"#, LogEscape::Default);
        assert_eq!(t, Err(LogFormatError::Unsupported(vec!["$status_".into()])));
        let t = LogTemplate::http(r#"${STATUS}x$Status.$msec \"$pid\'\\\q\t"#, LogEscape::Default)?;
        assert_eq!(line(&t), "STATUSxSTATUS.MSEC \"PID'\\\\q\t");
        // The stream variables are the stream's only.
        assert!(LogTemplate::stream("$protocol $bytes_received $session_time $remote_addr").is_ok());
        assert_eq!(
            LogTemplate::stream("$request $protocol $http_host"),
            Err(LogFormatError::Unsupported(vec!["$request".into(), "$http_host".into()]))
        );
        assert!(LogTemplate::http("$protocol", LogEscape::Default).is_err());
        Ok(())
    }

    #[test]
    fn malformed_templates_are_refused_with_where() {
        for (source, error) in [
            ("a $", LogFormatError::NoName(2)),
            ("$ x", LogFormatError::NoName(0)),
            ("x ${", LogFormatError::NoName(2)),
            ("${status", LogFormatError::Unclosed(0)),
            ("${status ]", LogFormatError::Unclosed(0)),
            ("$-", LogFormatError::NoName(0)),
            ("$é", LogFormatError::NoName(0)),
            ("$http_", LogFormatError::Unsupported(vec!["$http_".into()])),
            ("$nope $nope", LogFormatError::Unsupported(vec!["$nope".into()])),
        ] {
            assert_eq!(LogTemplate::http(source, LogEscape::Default), Err(error), "{source:?}");
        }
        let huge = "$status ".repeat(MAX_SOURCE);
        assert_eq!(LogTemplate::http(&huge, LogEscape::Default), Err(LogFormatError::TooLong));
        // Literal text alone, trailing backslashes and multi-byte text are fine.
        for source in ["", "plain", "ends in \\", "naïve — ok", "100%"] {
            let t = LogTemplate::http(source, LogEscape::Default);
            assert!(t.is_ok(), "{source:?}: {t:?}");
        }
    }
}
