//! TCP and UDP services against a real kube-apiserver: the seed tutorial's `tcp-services` and
//! `udp-services` ConfigMaps (ingress-nginx 0.17.1's deploy files) applied verbatim, then
//! given entries as the tutorial's users give them; where the leader election Lease lives
//! when the controller runs out of a cluster without `POD_NAMESPACE`; and
//! `--watch-namespace-selector` following namespace labels live.

mod support;

use std::time::Duration;

use anyhow::{Context, Result};
use support::cluster::{ApiServer, create, namespace};
use support::streams::{ping, tcp_echo, udp_echo};
use support::{Controller, eventually, free_port};

/// ingress-nginx 0.17.1's `deploy/tcp-services-configmap.yaml`, verbatim.
const SEED_TCP_SERVICES: &str =
    "kind: ConfigMap\napiVersion: v1\nmetadata:\n  name: tcp-services\n  namespace: ingress-nginx\n";
/// ingress-nginx 0.17.1's `deploy/udp-services-configmap.yaml`, verbatim.
const SEED_UDP_SERVICES: &str =
    "kind: ConfigMap\napiVersion: v1\nmetadata:\n  name: udp-services\n  namespace: ingress-nginx\n";

/// Service `echo` with a TCP and a UDP port, and `v1beta1` EndpointSlices (the test API server
/// is 1.20) to the local backends.
fn echo_service(tcp: std::net::SocketAddr, udp: std::net::SocketAddr) -> String {
    let slice = |name: &str, port_name: &str, protocol: &str, port: u16| {
        format!(
            "---\napiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata:\n  name: {name}\n  labels: {{kubernetes.io/service-name: echo}}\naddressType: IPv4\nports: [{{name: {port_name}, port: {port}, protocol: {protocol}}}]\nendpoints: [{{addresses: [\"127.0.0.1\"], conditions: {{ready: true}}}}]\n"
        )
    };
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: echo}}\nspec:\n  ports:\n  - {{name: echo, port: 9000, protocol: TCP}}\n  - {{name: dns, port: 5353, protocol: UDP}}\n{}{}",
        slice("echo-tcp", "echo", "TCP", tcp.port()),
        slice("echo-udp", "dns", "UDP", udp.port())
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_stream_configmaps_and_the_lease_out_of_a_cluster() -> Result<()> {
    let api = ApiServer::ensure()?;
    let client = api.client().await?;
    let ns = namespace(&client, "cli-streams").await?;
    let _ = api.kubectl(&["create", "namespace", "ingress-nginx"]);
    let tmp = tempfile::tempdir()?;
    for (file, text) in [("tcp.yaml", SEED_TCP_SERVICES), ("udp.yaml", SEED_UDP_SERVICES)] {
        let path = tmp.path().join(file);
        std::fs::write(&path, text)?;
        api.kubectl(&["apply", "-f", path.to_str().context("path")?])?;
    }
    let (tcp, udp) = (tcp_echo("a")?, udp_echo("u")?);
    create(&client, &ns, &echo_service(tcp, udp)).await?;
    create(
        &client,
        &ns,
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: app, annotations: {kubernetes.io/ingress.class: nginx}}\nspec:\n  rules:\n  - host: app.test\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: echo, port: {number: 9000}}}}\n",
    )
    .await?;

    // The controller as the seed starts it, out of the cluster: no POD_NAMESPACE, and the
    // stream ConfigMaps in ingress-nginx while only the test's namespace is watched.
    let election = format!("ferry-{ns}");
    let start = |extra: &[&str]| {
        let mut args = vec![
            "--kubeconfig",
            api.kubeconfig(),
            "--ingress-class",
            "nginx",
            "--watch-namespace",
            &ns,
            "--election-id",
            &election,
            "--publish-status-address",
            "127.0.0.1",
            "--tcp-services-configmap",
            "ingress-nginx/tcp-services",
            "--udp-services-configmap",
            "ingress-nginx/udp-services",
        ];
        args.extend_from_slice(extra);
        Controller::start(&args, tmp.path())
    };
    let c = start(&[])?;
    // A second replica whose Lease namespace does not exist says so once, and never leads.
    let lost = start(&["--pod-namespace", "no-such-namespace", "--pod-name", "lost"])?;

    let (tcp_port, udp_port) = (free_port(), free_port());
    let patch = |kind: &str, data: String| {
        api.kubectl(&["patch", "configmap", kind, "-n", "ingress-nginx", "--type", "merge", "-p", &data])
    };
    patch("tcp-services", format!(r#"{{"data":{{"{tcp_port}":"{ns}/echo:9000"}}}}"#))?;
    patch("udp-services", format!(r#"{{"data":{{"{udp_port}":"{ns}/echo:dns"}}}}"#))?;
    eventually(Duration::from_secs(15), || Ok(ping(tcp_port).is_ok())).with_context(|| c.logs())?;
    let client_socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    client_socket.set_read_timeout(Some(Duration::from_millis(500)))?;
    eventually(Duration::from_secs(10), || {
        client_socket.send_to(b"q", ("127.0.0.1", udp_port))?;
        let mut buf = [0u8; 16];
        Ok(client_socket.recv(&mut buf).is_ok_and(|n| &buf[..n] == b"u:q"))
    })?;

    // The Lease is in the kubeconfig context's namespace, and this replica leads: it writes
    // the Ingress's status.
    let logs = c.logs();
    assert!(
        logs.contains("leader election Lease, in the kubeconfig context's namespace")
            && logs.contains(&format!("default/{election}")),
        "the start-up log names the Lease:\n{logs}"
    );
    eventually(Duration::from_secs(20), || {
        let out = api.kubectl(&[
            "get",
            "ingress",
            "-n",
            &ns,
            "app",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[*].ip}",
        ])?;
        Ok(out.trim() == "127.0.0.1")
    })
    .with_context(|| c.logs())?;
    // The entry removed: the port closes.
    patch("tcp-services", format!(r#"{{"data":{{"{tcp_port}":null}}}}"#))?;
    eventually(Duration::from_secs(10), || {
        Ok(std::net::TcpStream::connect(("127.0.0.1", tcp_port)).is_err())
    })?;

    // Several renewal rounds later, the missing namespace has been reported once.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let logs = lost.logs();
    assert_eq!(logs.matches("namespace no-such-namespace does not exist").count(), 1, "{logs}");
    assert!(!logs.contains("lease update failed"), "{logs}");
    assert!(!logs.contains("became leader"), "{logs}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_selector_follows_namespace_labels() -> Result<()> {
    let api = ApiServer::ensure()?;
    let client = api.client().await?;
    let ns = namespace(&client, "cli-selected").await?;
    let tmp = tempfile::tempdir()?;
    let backend = support::echo_backend("selected");
    let slice = support::cluster::slice("app-1", "app", backend);
    create(
        &client,
        &ns,
        "apiVersion: v1\nkind: Service\nmetadata: {name: app}\nspec: {ports: [{name: http, port: 80}]}\n",
    )
    .await?;
    create(&client, &ns, &slice).await?;
    create(
        &client,
        &ns,
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: app, annotations: {kubernetes.io/ingress.class: nginx}}\nspec:\n  rules:\n  - host: selected.test\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}\n",
    )
    .await?;
    // The selector names this test's namespace by a label it does not have yet.
    let selector = format!("ferry-test in ({ns}),!excluded");
    let c = Controller::start(
        &[
            "--kubeconfig",
            api.kubeconfig(),
            "--ingress-class",
            "nginx",
            "--watch-namespace-selector",
            &selector,
            "--update-status=false",
        ],
        tmp.path(),
    )?;
    assert_eq!(support::get(c.http, "selected.test", "/")?.status, 404, "not selected yet");
    api.kubectl(&["label", "namespace", &ns, &format!("ferry-test={ns}")])?;
    eventually(Duration::from_secs(10), || Ok(support::get(c.http, "selected.test", "/")?.status == 200))
        .with_context(|| c.logs())?;
    api.kubectl(&["label", "namespace", &ns, "excluded=yes"])?;
    eventually(Duration::from_secs(10), || Ok(support::get(c.http, "selected.test", "/")?.status == 404))?;
    Ok(())
}
