//! Responses the proxy writes itself, and which status a failure becomes.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{ErrorSource, ErrorType};

/// The built-in default backend's body, as ingress-nginx's default backend answers it.
pub const DEFAULT_BACKEND_BODY: &str = "default backend - 404";

/// The HTTP status a failed request gets: the status an earlier phase chose, 504 for upstream
/// timeouts, 502 for any other upstream failure, 400 for a malformed request, 0 (no response)
/// when the client is gone, 500 otherwise.
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
        (
            ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed,
            ErrorSource::Downstream,
        ) => 0,
        (_, ErrorSource::Downstream) => 400,
        _ => 500,
    }
}

/// The short text body of a status the proxy generates.
pub(crate) fn body_for(status: u16) -> &'static str {
    match status {
        404 => DEFAULT_BACKEND_BODY,
        413 => "413 Request Entity Too Large\n",
        502 => "502 Bad Gateway\n",
        503 => "503 Service Temporarily Unavailable\n",
        504 => "504 Gateway Timeout\n",
        400 => "400 Bad Request\n",
        _ => "",
    }
}

/// Writes a complete response with a fixed text body (Content-Length framed).
pub(crate) async fn write_text(
    session: &mut Session,
    status: u16,
    body: &'static str,
) -> pingora::Result<()> {
    let mut header = ResponseHeader::build(status, Some(3))?;
    header.insert_header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    header.insert_header(http::header::CONTENT_LENGTH, body.len())?;
    session.write_response_header(Box::new(header), body.is_empty()).await?;
    if !body.is_empty() {
        session.write_response_body(Some(Bytes::from_static(body.as_bytes())), true).await?;
    }
    Ok(())
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(status_for(&ErrorType::ReadTimedout, &ErrorSource::Upstream), 504);
        assert_eq!(status_for(&ErrorType::ConnectTimedout, &ErrorSource::Upstream), 504);
        assert_eq!(status_for(&ErrorType::ConnectRefused, &ErrorSource::Upstream), 502);
        assert_eq!(status_for(&ErrorType::HTTPStatus(503), &ErrorSource::Internal), 503);
        assert_eq!(status_for(&ErrorType::ConnectionClosed, &ErrorSource::Downstream), 0);
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(0), "none");
    }
}
