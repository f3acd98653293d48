//! Balancing annotations through the real binary in standalone mode: cookie affinity (both
//! modes), `upstream-hash-by` and `load-balance: ewma`, over a Service whose pods are local
//! backends on 127.0.0.1–127.0.0.4 (one port, as pods of one EndpointSlice).

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use support::manifests::{CLASS, ingress, start, write_ingresses};
use support::{Controller, echo_backend_on, eventually, free_port};

/// `count` pods named `pod1`… on 127.0.0.1… sharing one port, each answering after `delay`
/// (`slow`: the delay of the last one only).
fn pods(count: u8, slow: Duration) -> Result<u16> {
    for _ in 0..20 {
        let port = free_port();
        let bound = (1..=count).all(|i| {
            let name: &'static str = Box::leak(format!("pod{i}").into_boxed_str());
            let delay = if i == count { slow } else { Duration::ZERO };
            echo_backend_on([127, 0, 0, i], port, name, delay).is_some()
        });
        if bound {
            return Ok(port);
        }
    }
    bail!("no port free on every loopback address")
}

/// The Service `app` and its EndpointSlice with the pods `ips` (last octets) on `port`.
fn service(dir: &Path, port: u16, ips: &[u8]) -> Result<()> {
    let addresses: Vec<String> = ips.iter().map(|i| format!("{{addresses: [\"127.0.0.{i}\"]}}")).collect();
    std::fs::write(
        dir.join("services.yaml"),
        format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: app, namespace: default}}\nspec:\n  ports: [{{name: http, port: 80, targetPort: {port}}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: app-pods\n  namespace: default\n  labels: {{kubernetes.io/service-name: app}}\naddressType: IPv4\nports: [{{name: http, port: {port}}}]\nendpoints: [{}]\n",
            addresses.join(", ")
        ),
    )?;
    Ok(())
}

/// One request: the raw head (case kept) and the pod that answered.
fn ask(c: &Controller, host: &str, path: &str, cookie: Option<&str>) -> Result<(String, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", c.http))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{cookie}Connection: close\r\n\r\n").as_bytes(),
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let pod =
        body.split_whitespace().next().and_then(|b| b.strip_prefix("backend=")).unwrap_or("").to_owned();
    if !head.starts_with("HTTP/1.1 200") {
        bail!("{head}\n{body}");
    }
    Ok((head.to_owned(), pod))
}

/// The `Set-Cookie` value of `head`, if any.
fn set_cookie(head: &str) -> Option<String> {
    head.lines().find_map(|l| l.strip_prefix("set-cookie: ").map(str::to_owned))
}

/// Opens `n` sessions on `host`: each session's cookie (`name=value`) and pod; checks that each
/// cookie pins its session and is not set again.
fn sessions(c: &Controller, host: &str, n: usize) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for _ in 0..n {
        let (head, pod) = ask(c, host, "/", None)?;
        let cookie = set_cookie(&head).unwrap_or_default();
        let pair = cookie.split(';').next().unwrap_or("").to_owned();
        assert!(pair.contains('|'), "{head}");
        for _ in 0..2 {
            let (again, same) = ask(c, host, "/", Some(&pair))?;
            assert_eq!(same, pod, "the cookie pins the session");
            assert_eq!(set_cookie(&again), None, "a pinned session gets no new cookie");
        }
        out.push((pair, pod));
    }
    Ok(out)
}

#[test]
fn a_cookie_pins_and_only_a_leaving_pods_sessions_move() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    let port = pods(4, Duration::ZERO)?;
    std::fs::write(dir.join("class.yaml"), CLASS)?;
    service(&dir, port, &[1, 2, 3, 4])?;
    let docs = [
        ingress("balanced", "balanced.test", "app", &[("affinity", "cookie")]),
        ingress(
            "persistent",
            "persistent.test",
            "app",
            &[
                ("affinity", "cookie"),
                ("affinity-mode", "persistent"),
                ("session-cookie-name", "route"),
                ("session-cookie-max-age", "3600"),
                ("session-cookie-samesite", "Lax"),
            ],
        ),
        ingress("hashed", "hashed.test", "app", &[("upstream-hash-by", "$request_uri")]),
    ];
    write_ingresses(&dir, &docs)?;
    let c = start(&dir)?;

    let (head, _) = ask(&c, "balanced.test", "/", None)?;
    let cookie = set_cookie(&head).unwrap_or_default();
    assert!(cookie.starts_with("INGRESSCOOKIE=") && cookie.ends_with("; Path=/; HttpOnly"), "{cookie}");
    let (head, _) = ask(&c, "persistent.test", "/", None)?;
    let cookie = set_cookie(&head).unwrap_or_default();
    assert!(
        cookie.starts_with("route=") && cookie.ends_with("; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax"),
        "{cookie}"
    );

    let balanced = sessions(&c, "balanced.test", 40)?;
    let persistent = sessions(&c, "persistent.test", 40)?;
    let mut hashed = BTreeMap::new();
    for i in 0..160 {
        let path = format!("/item/{i}");
        let (_, pod) = ask(&c, "hashed.test", &path, None)?;
        assert_eq!(ask(&c, "hashed.test", &path, None)?.1, pod, "the same key, the same pod");
        hashed.insert(path, pod);
    }
    for (what, pods) in [
        ("balanced", balanced.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>()),
        ("persistent", persistent.iter().map(|(_, p)| p.clone()).collect()),
        ("hashed", hashed.values().cloned().collect()),
    ] {
        for pod in ["pod1", "pod2", "pod3", "pod4"] {
            assert!(pods.iter().any(|p| p == pod), "{what}: no session on {pod}: {pods:?}");
        }
    }

    // pod4 leaves the EndpointSlice: its sessions move, no other does.
    service(&dir, port, &[1, 2, 3])?;
    // Applied once a key that pod4 served goes elsewhere.
    let on_pod4 = hashed.iter().find(|(_, p)| *p == "pod4").map(|(k, _)| k.clone()).unwrap_or_default();
    eventually(Duration::from_secs(10), || {
        Ok(ask(&c, "hashed.test", &on_pod4, None).is_ok_and(|(_, p)| p != "pod4"))
    })?;
    for (host, sessions) in [("balanced.test", &balanced), ("persistent.test", &persistent)] {
        for (cookie, before) in sessions {
            let (head, after) = ask(&c, host, "/", Some(cookie))?;
            if before == "pod4" {
                assert_ne!(after, "pod4", "{host}: the leaving pod's session moves");
                // ingress-nginx's balanced mode keeps the cookie (its key maps to another pod);
                // persistent mode names the pod, so the session gets a new cookie.
                assert_eq!(set_cookie(&head).is_some(), host == "persistent.test", "{host}: {head}");
            } else {
                assert_eq!(&after, before, "{host}: a session on a staying pod does not move");
            }
        }
    }
    let mut moved = 0;
    for (path, before) in &hashed {
        let (_, after) = ask(&c, "hashed.test", path, None)?;
        if before == "pod4" {
            assert_ne!(after, "pod4");
        } else {
            assert_eq!(&after, before, "{path}: a key on a staying pod does not move");
        }
        moved += usize::from(&after != before);
    }
    // One pod of four leaving moves about a quarter of the keys (its own).
    let share = moved as f64 / hashed.len() as f64;
    println!("upstream-hash-by: {moved} of {} keys moved ({share:.2}) when 1 of 4 pods left", hashed.len());
    assert!((0.1..0.45).contains(&share), "{share}");
    Ok(())
}

#[test]
fn ewma_sends_less_to_a_slow_pod() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    let port = pods(2, Duration::from_millis(150))?;
    std::fs::write(dir.join("class.yaml"), CLASS)?;
    service(&dir, port, &[1, 2])?;
    write_ingresses(
        &dir,
        &[
            ingress("ewma", "ewma.test", "app", &[("load-balance", "ewma")]),
            ingress("rr", "rr.test", "app", &[]),
        ],
    )?;
    let c = start(&dir)?;
    let count = |host: &str| -> Result<usize> {
        let mut slow = 0;
        for _ in 0..30 {
            if ask(&c, host, "/", None)?.1 == "pod2" {
                slow += 1;
            }
        }
        Ok(slow)
    };
    // Until both pods are measured EWMA may pick either (each new pod starts at the others'
    // average); a first round of thirty measures both, all but surely.
    let warm_up = count("ewma.test")?;
    let (ewma, round_robin) = (count("ewma.test")?, count("rr.test")?);
    // Round robin gives the slow pod (150 ms) its half; EWMA the faster one every time.
    println!(
        "of 30 requests, the slow pod got {ewma} under ewma ({warm_up} while warming up), {round_robin} under round robin"
    );
    assert_eq!(round_robin, 15, "round robin");
    assert!(ewma <= 1, "ewma sent {ewma} of 30 to the slow pod");
    Ok(())
}

#[test]
fn service_upstream_sends_to_the_cluster_ip() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    // The pod on 127.0.0.1, the Service's cluster IP on 127.0.0.9, both on one port.
    let mut port = 0;
    for _ in 0..20 {
        let p = free_port();
        if echo_backend_on([127, 0, 0, 9], p, "cluster", Duration::ZERO).is_some()
            && echo_backend_on([127, 0, 0, 1], p, "pod", Duration::ZERO).is_some()
        {
            port = p;
            break;
        }
    }
    assert_ne!(port, 0, "no port free on both addresses");
    let service = |name: &str, cluster_ip: &str| {
        format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  clusterIP: \"{cluster_ip}\"\n  ports: [{{name: http, port: {port}, targetPort: {port}}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-pods\n  namespace: default\n  labels: {{kubernetes.io/service-name: {name}}}\naddressType: IPv4\nports: [{{name: http, port: {port}}}]\nendpoints: [{{addresses: [\"127.0.0.1\"]}}]\n"
        )
    };
    std::fs::write(dir.join("class.yaml"), CLASS)?;
    std::fs::write(
        dir.join("services.yaml"),
        [service("app", "127.0.0.9"), service("headless", "None")].concat(),
    )?;
    let to = |name: &str, host: &str, service: &str, on: &[(&str, &str)]| {
        ingress(name, host, service, on).replace("number: 80", &format!("number: {port}"))
    };
    write_ingresses(
        &dir,
        &[
            to("via", "via.test", "app", &[("service-upstream", "true")]),
            to("pods", "pods.test", "app", &[]),
            to("headless", "headless.test", "headless", &[("service-upstream", "true")]),
        ],
    )?;
    let c = start(&dir)?;
    assert_eq!(ask(&c, "via.test", "/", None)?.1, "cluster");
    assert_eq!(ask(&c, "pods.test", "/", None)?.1, "pod", "the same Service without the annotation");
    assert_eq!(ask(&c, "headless.test", "/", None)?.1, "pod", "no cluster IP: the endpoints");
    Ok(())
}
