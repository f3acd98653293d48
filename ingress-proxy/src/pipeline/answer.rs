//! Answers the proxy gives itself: which status a failure becomes, and the short text body of
//! each status the proxy generates.

use pingora::{ErrorSource, ErrorType};

/// The built-in default backend's body, as ingress-nginx's default backend answers it.
pub const DEFAULT_BACKEND_BODY: &str = "default backend - 404";

/// The HTTP status a failed request gets: the status an earlier phase chose, 504 for upstream
/// timeouts, 502 for any other upstream failure, 408 when the client took too long, 400 for a
/// malformed request, 0 (no response) when the client is gone, 500 otherwise.
pub(crate) fn status_for(etype: &ErrorType, source: &ErrorSource) -> u16 {
    match (etype, source) {
        (ErrorType::HTTPStatus(code), _) => *code,
        (
            ErrorType::ConnectTimedout
            | ErrorType::ReadTimedout
            | ErrorType::WriteTimedout
            | ErrorType::TLSHandshakeTimedout,
            ErrorSource::Upstream,
        ) => 504,
        (_, ErrorSource::Upstream) => 502,
        (ErrorType::ReadTimedout, ErrorSource::Downstream) => 408,
        (
            ErrorType::WriteError
            | ErrorType::ReadError
            | ErrorType::ConnectionClosed
            | ErrorType::WriteTimedout,
            ErrorSource::Downstream,
        ) => 0,
        (_, ErrorSource::Downstream) => 400,
        _ => 500,
    }
}

/// The short text body of a status the proxy generates.
pub(crate) fn body_for(status: u16) -> &'static str {
    match status {
        301 => "301 Moved Permanently\n",
        302 => "302 Found\n",
        303 => "303 See Other\n",
        307 => "307 Temporary Redirect\n",
        308 => "308 Permanent Redirect\n",
        400 => "400 Bad Request\n",
        401 => "401 Authorization Required\n",
        403 => "403 Forbidden\n",
        404 => DEFAULT_BACKEND_BODY,
        405 => "405 Method Not Allowed\n",
        408 => "408 Request Timeout\n",
        413 => "413 Request Entity Too Large\n",
        414 => "414 Request-URI Too Large\n",
        431 => "431 Request Header Fields Too Large\n",
        501 => "501 Not Implemented\n",
        502 => "502 Bad Gateway\n",
        503 => "503 Service Temporarily Unavailable\n",
        504 => "504 Gateway Timeout\n",
        505 => "505 HTTP Version Not Supported\n",
        _ => "",
    }
}

/// The status class label of a status (`2xx` … `5xx`, `none` when nothing was sent).
pub(crate) fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(status_for(&ErrorType::ReadTimedout, &ErrorSource::Upstream), 504);
        assert_eq!(status_for(&ErrorType::ConnectTimedout, &ErrorSource::Upstream), 504);
        assert_eq!(status_for(&ErrorType::ConnectRefused, &ErrorSource::Upstream), 502);
        assert_eq!(status_for(&ErrorType::HTTPStatus(503), &ErrorSource::Internal), 503);
        assert_eq!(status_for(&ErrorType::ConnectionClosed, &ErrorSource::Downstream), 0);
        assert_eq!(status_for(&ErrorType::ReadTimedout, &ErrorSource::Downstream), 408);
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(0), "none");
        assert!(body_for(431).starts_with("431"));
    }
}
