//! ingress-nginx's Grafana dashboards and the Helm chart's example alerts, evaluated by a
//! real Prometheus (Debian's) scraping the controller under traffic: every query returns data.
//!
//! The queries are those of ingress-nginx's `deploy/grafana/dashboards/nginx.json` and
//! `request-handling-performance.json` and of the chart's `prometheusRule` examples,
//! verbatim, with the dashboards' variables set to `.*` (Grafana's "All"). The scrape job adds
//! the labels Kubernetes service discovery adds (`namespace`, `pod`, `kubernetes_pod_name`), so
//! the series' own `namespace` becomes `exported_namespace`, as the dashboards expect.

mod support;

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use support::manifests::{CLASS, ingress};
use support::{Controller, demo_manifests, echo_backend, eventually, free_port, get, services};

/// `nginx.json`, every panel's expression.
const NGINX_DASHBOARD: &[&str] = &[
    r#"round(sum(irate(nginx_ingress_controller_requests{controller_pod=~"$controller",controller_class=~"$controller_class",namespace=~"$namespace"}[2m])), 0.001)"#,
    r#"sum(avg_over_time(nginx_ingress_controller_nginx_process_connections{controller_pod=~"$controller",controller_class=~"$controller_class",controller_namespace=~"$namespace",state="active"}[2m]))"#,
    r#"sum(rate(nginx_ingress_controller_requests{controller_pod=~"$controller",controller_class=~"$controller_class",namespace=~"$namespace",status!~"[4-5].*"}[2m])) / sum(rate(nginx_ingress_controller_requests{controller_pod=~"$controller",controller_class=~"$controller_class",namespace=~"$namespace"}[2m]))"#,
    r#"avg(irate(nginx_ingress_controller_success{controller_pod=~"$controller",controller_class=~"$controller_class",controller_namespace=~"$namespace"}[1m])) * 60"#,
    // "Config Reloads failed": `count(… == 0)`, empty while every reload succeeds (as with
    // ingress-nginx); its series is checked below.
    r#"nginx_ingress_controller_config_last_reload_successful{controller_pod=~"$controller",controller_namespace=~"$namespace"}"#,
    r#"round(sum(irate(nginx_ingress_controller_requests{controller_pod=~"$controller",controller_class=~"$controller_class",controller_namespace=~"$namespace",exported_namespace=~"$exported_namespace",ingress=~"$ingress"}[2m])) by (ingress), 0.001)"#,
    r#"sum(rate(nginx_ingress_controller_requests{controller_pod=~"$controller",controller_class=~"$controller_class",namespace=~"$namespace",exported_namespace=~"$exported_namespace",ingress=~"$ingress",status!~"[4-5].*"}[2m])) by (ingress) / sum(rate(nginx_ingress_controller_requests{controller_pod=~"$controller",controller_class=~"$controller_class",namespace=~"$namespace",exported_namespace=~"$exported_namespace",ingress=~"$ingress"}[2m])) by (ingress)"#,
    r#"sum (irate (nginx_ingress_controller_request_size_sum{controller_pod=~"$controller",controller_class=~"$controller_class",controller_namespace=~"$namespace"}[2m]))"#,
    r#"- sum (irate (nginx_ingress_controller_response_size_sum{controller_pod=~"$controller",controller_class=~"$controller_class",controller_namespace=~"$namespace"}[2m]))"#,
    r#"avg(nginx_ingress_controller_nginx_process_resident_memory_bytes{controller_pod=~"$controller",controller_class=~"$controller_class",controller_namespace=~"$namespace"}) "#,
    r#"avg (rate (nginx_ingress_controller_nginx_process_cpu_seconds_total{controller_pod=~"$controller",controller_class=~"$controller_class",controller_namespace=~"$namespace"}[2m])) "#,
    r#"histogram_quantile(0.50, sum(rate(nginx_ingress_controller_request_duration_seconds_bucket{ingress!="",controller_pod=~"$controller",controller_class=~"$controller_class",controller_namespace=~"$namespace",ingress=~"$ingress",exported_namespace=~"$exported_namespace"}[2m])) by (le, ingress))"#,
    r#"histogram_quantile(0.90, sum(rate(nginx_ingress_controller_request_duration_seconds_bucket{ingress!="",controller_pod=~"$controller",controller_class=~"$controller_class",controller_namespace=~"$namespace",ingress=~"$ingress",exported_namespace=~"$exported_namespace"}[2m])) by (le, ingress))"#,
    r#"histogram_quantile(0.99, sum(rate(nginx_ingress_controller_request_duration_seconds_bucket{ingress!="",controller_pod=~"$controller",controller_class=~"$controller_class",controller_namespace=~"$namespace",ingress=~"$ingress",exported_namespace=~"$exported_namespace"}[2m])) by (le, ingress))"#,
    r#"sum(irate(nginx_ingress_controller_request_size_sum{ingress!="",controller_pod=~"$controller",controller_class=~"$controller_class",controller_namespace=~"$namespace",ingress=~"$ingress",exported_namespace=~"$exported_namespace"}[2m])) by (ingress)"#,
    r#"sum(irate(nginx_ingress_controller_response_size_sum{ingress!="",controller_pod=~"$controller",controller_class=~"$controller_class",controller_namespace=~"$namespace",ingress=~"$ingress",exported_namespace=~"$exported_namespace"}[2m])) by (ingress)"#,
    r#"histogram_quantile(0.80, sum(rate(nginx_ingress_controller_request_duration_seconds_bucket{ingress!="",controller_pod=~"$controller",controller_class=~"$controller_class",controller_namespace=~"$namespace",ingress=~"$ingress",exported_namespace=~"$exported_namespace"}[2m])) by (le))"#,
    r#"histogram_quantile(0.90, sum(rate(nginx_ingress_controller_request_duration_seconds_bucket{ingress!="",controller_pod=~"$controller",controller_class=~"$controller_class",controller_namespace=~"$namespace",ingress=~"$ingress",exported_namespace=~"$exported_namespace"}[2m])) by (le))"#,
    r#"histogram_quantile(0.99, sum(rate(nginx_ingress_controller_request_duration_seconds_bucket{ingress!="",controller_pod=~"$controller",controller_class=~"$controller_class",controller_namespace=~"$namespace",ingress=~"$ingress",exported_namespace=~"$exported_namespace"}[2m])) by (le))"#,
    r#"sum(increase(nginx_ingress_controller_request_duration_seconds_bucket{ingress!="",controller_pod=~"$controller",controller_class=~"$controller_class",controller_namespace=~"$namespace",ingress=~"$ingress",exported_namespace=~"$exported_namespace"}[2m])) by (le)"#,
    r#"avg(nginx_ingress_controller_ssl_expire_time_seconds{kubernetes_pod_name=~"$controller",namespace=~"$namespace",ingress=~"$ingress"}) by (host) - time()"#,
    // Its variables' queries.
    r#"nginx_ingress_controller_config_hash"#,
    r#"nginx_ingress_controller_config_hash{namespace=~"$namespace"}"#,
    r#"nginx_ingress_controller_requests{namespace=~"$namespace",controller_class=~"$controller_class",controller_pod=~"$controller"}"#,
];

/// `request-handling-performance.json`, every panel's expression.
const PERFORMANCE_DASHBOARD: &[&str] = &[
    "histogram_quantile(\n  0.5,\n  sum by (le)(\n    rate(\n      nginx_ingress_controller_request_duration_seconds_bucket{\n        ingress =~ \"$ingress\"\n      }[5m]\n    )\n  )\n)",
    "histogram_quantile(\n  0.95,\n  sum by (le)(\n    rate(\n    nginx_ingress_controller_request_duration_seconds_bucket{\n        ingress =~ \"$ingress\"\n      }[5m]\n    )\n  )\n)",
    "histogram_quantile(\n  0.99,\n  sum by (le)(\n    rate(\n      nginx_ingress_controller_request_duration_seconds_bucket{\n        ingress =~ \"$ingress\"\n      }[5m]\n    )\n  )\n)",
    "histogram_quantile(\n  0.5,\n  sum by (le)(\n    rate(\n      nginx_ingress_controller_response_duration_seconds_bucket{\n        ingress =~ \"$ingress\"\n      }[5m]\n    )\n  )\n)",
    "histogram_quantile(\n  0.95,\n  sum by (le)(\n    rate(\n    nginx_ingress_controller_response_duration_seconds_bucket{\n        ingress =~ \"$ingress\"\n      }[5m]\n    )\n  )\n)",
    "histogram_quantile(\n  0.99,\n  sum by (le)(\n    rate(\n      nginx_ingress_controller_response_duration_seconds_bucket{\n        ingress =~ \"$ingress\"\n      }[5m]\n    )\n  )\n)",
    "  sum by (method, host, path)(\n    rate(\n      nginx_ingress_controller_request_duration_seconds_count{\n        ingress =~ \"$ingress\"\n      }[5m]\n    )\n  )\n",
    "histogram_quantile(\n  .5,\n  sum by (le, method, host, path)(\n    rate(\n      nginx_ingress_controller_response_duration_seconds_bucket{\n        ingress =~ \"$ingress\"\n      }[5m]\n    )\n  )\n)",
    "sum by (method, host, path) (rate(nginx_ingress_controller_request_duration_seconds_count{\n  ingress =~ \"$ingress\",\n  status =~ \"[4-5].*\"\n}[5m])) / sum by (method, host, path) (rate(nginx_ingress_controller_request_duration_seconds_count{\n  ingress =~ \"$ingress\",\n}[5m]))",
    "sum by (method, host, path) (rate(nginx_ingress_controller_response_duration_seconds_sum{ingress =~ \"$ingress\"}[5m]))",
    "  sum (\n    rate(\n      nginx_ingress_controller_request_duration_seconds_count{\n        ingress =~ \"$ingress\",\n        status =~\"[4-5].*\",\n      }[5m]\n    )\n  ) by(method, host, path, status)\n",
    "sum (\n  rate (\n      nginx_ingress_controller_response_size_sum {\n        ingress =~ \"$ingress\",\n      }[5m]\n  )\n)  by (method, host, path) / sum (\n  rate(\n      nginx_ingress_controller_response_size_count {\n        ingress =~ \"$ingress\",\n      }[5m]\n  )\n) by (method, host, path)\n",
    "    sum (rate(nginx_ingress_controller_response_size_bucket{\n        ingress =~ \"$ingress\",\n    }[5m])) by (le)\n",
    "label_values(nginx_ingress_controller_requests, ingress) ",
];

/// The Helm chart's example alerts (`controller.metrics.prometheusRule.rules`), their
/// thresholds left out: the expressions they compare must have data.
const ALERTS: &[&str] = &[
    "count(nginx_ingress_controller_config_last_reload_successful == 1)",
    r#"(avg(nginx_ingress_controller_ssl_expire_time_seconds{host!="_"}) by (host) - time())"#,
    r#"100 * ( sum( nginx_ingress_controller_requests{status=~"5.+"} ) / sum(nginx_ingress_controller_requests) )"#,
    r#"100 * ( sum( nginx_ingress_controller_requests{status=~"4.+"} ) / sum(nginx_ingress_controller_requests) )"#,
];

/// Prometheus, killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(dir: &std::path::Path, target: u16) -> Result<Self> {
        let port = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n- job_name: ingress\n  static_configs:\n  - targets: ['127.0.0.1:{target}']\n    labels: {{namespace: ingress-nginx, pod: ferry-0, kubernetes_pod_name: ferry-0}}\n"
            ),
        )?;
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("running prometheus (scripts/setup.sh installs Debian's)")?;
        Ok(Self { child, port })
    }

    /// The result of an instant query: `(resultType, number of samples)`.
    fn query(&self, expr: &str) -> Result<(String, usize)> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let body = format!("query={}", urlencode(expr));
        write!(
            s,
            "POST /api/v1/query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        let mut raw = String::new();
        s.read_to_string(&mut raw)?;
        let json = raw.split_once("\r\n\r\n").map(|x| x.1).unwrap_or_default();
        // The body may come chunked: the JSON object is the outermost braces.
        let json = &json[json.find('{').unwrap_or(0)..=json.rfind('}').unwrap_or(0)];
        let v: serde_json::Value = serde_json::from_str(json).with_context(|| raw.clone())?;
        if v["status"] != "success" {
            bail!("{expr}: {v}");
        }
        let kind = v["data"]["resultType"].as_str().unwrap_or_default().to_owned();
        let n = match &v["data"]["result"] {
            serde_json::Value::Array(a) => a.len(),
            serde_json::Value::Null => 0,
            _ => 1,
        };
        Ok((kind, n))
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn ingress_nginx_dashboards_and_alerts_have_data() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    // The seed's demo (HTTP and the TLS webapp), plus hosts that answer 503 (no endpoint)
    // and 403 (source ranges), so the alerts' 5xx and 4xx ratios have numbers.
    demo_manifests(&dir, echo_backend("demo"), echo_backend("webapp"))?;
    std::fs::write(dir.join("more-services.yaml"), services(&[("echo", 80, echo_backend("echo"))]))?;
    let empty = "---\napiVersion: v1\nkind: Service\nmetadata: {name: empty, namespace: default}\nspec: {ports: [{name: http, port: 80}]}\n";
    let docs = [
        ingress("broken", "broken.test", "empty", &[]),
        ingress("private", "private.test", "echo", &[("whitelist-source-range", "10.0.0.0/8")]),
    ];
    std::fs::write(dir.join("more.yaml"), format!("{empty}{}", docs.concat()))?;
    std::fs::write(dir.join("class.yaml"), CLASS)?;
    let dir_s = dir.to_str().context("path")?.to_owned();
    let c = Controller::start(&["--manifests", &dir_s, "--ingress-class", "nginx"], tmp.path())?;

    // Traffic for as long as the test runs (bounded).
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (stop, port) = (stop.clone(), c.http);
        std::thread::spawn(move || {
            let t0 = Instant::now();
            while !stop.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(120) {
                for host in ["demo.example.com", "broken.test", "private.test", "demo.example.com"] {
                    let _ = get(port, host, "/");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let mut text = String::new();
    eventually(Duration::from_secs(10), || {
        text = get(c.admin, "localhost", "/metrics")?.body;
        Ok(text.contains("nginx_ingress_controller_requests{"))
    })
    .with_context(|| text.clone())?;

    let prometheus = Prometheus::start(tmp.path(), c.admin)?;
    let all = |q: &str| {
        ["$controller_class", "$controller", "$exported_namespace", "$namespace", "$ingress"]
            .iter()
            .fold(q.to_owned(), |q, var| q.replace(var, ".*"))
    };
    // Rates need two scrapes with traffic between them; wait until the slowest kind has data.
    eventually(Duration::from_secs(60), || {
        Ok(prometheus.query(&all(PERFORMANCE_DASHBOARD[3])).is_ok_and(|(_, n)| n > 0))
    })
    .with_context(|| std::fs::read_to_string(tmp.path().join("prometheus.log")).unwrap_or_default())?;
    let mut empty = Vec::new();
    for q in NGINX_DASHBOARD.iter().chain(PERFORMANCE_DASHBOARD).chain(ALERTS) {
        let expr = all(q.trim_end().trim_start_matches("label_values(").trim_end_matches(", ingress)"));
        let (kind, n) = prometheus.query(&expr)?;
        if n == 0 {
            empty.push(format!("{kind}: {q}"));
        }
    }
    stop.store(true, Ordering::Relaxed);
    traffic.join().map_err(|_| anyhow::anyhow!("traffic thread panicked"))?;
    assert!(empty.is_empty(), "queries without data:\n{}", empty.join("\n"));
    Ok(())
}
