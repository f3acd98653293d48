//! cargo run -p ferry-examples --example echo_backend -- 127.0.0.1:8080 demo-app
//!
//! A tiny HTTP/1.1 backend that answers every request with the request it saw, as JSON:
//! method, path, query, headers, body size, and the backend's own name and address. The README
//! demo and hand testing point Ingress backends at it.
#![allow(clippy::print_stdout)]

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr =
        args.next().unwrap_or_else(|| "127.0.0.1:8080".into()).parse().context("listen address")?;
    let name = args.next().unwrap_or_else(|| "echo".into());
    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    println!("echo backend `{name}` listening on http://{addr}");
    loop {
        let (stream, peer) = listener.accept().await?;
        let name = name.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| echo(req, name.clone(), addr, peer));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

async fn echo(
    req: Request<Incoming>,
    name: String,
    local: SocketAddr,
    peer: SocketAddr,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body_bytes = body.collect().await.map(|b| b.to_bytes().len()).unwrap_or(0);
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned().into()))
        .collect();
    let json = serde_json::json!({
        "backend": name,
        "address": local.to_string(),
        "peer": peer.to_string(),
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_bytes": body_bytes,
    });
    let mut text = serde_json::to_string_pretty(&json).unwrap_or_default();
    text.push('\n');
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    resp.headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    Ok(resp)
}
