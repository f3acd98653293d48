//! The validating admission webhook against a real kube-apiserver: `kubectl apply` of an
//! Ingress that Ferry would reject fails with the reason, a good one passes (with warnings for
//! what is not applied), and with the controller down the webhook's `failurePolicy` decides.
//! Then `webhook-certificate`, the provisioning Job's command, run against it.

mod support;

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use support::cluster::{ApiServer, namespace};
use support::{Controller, eventually, free_port};

/// `kubectl apply -f -` of `yaml`: whether it succeeded, and stdout + stderr (warnings).
fn apply(api: &ApiServer, dir: &std::path::Path, yaml: &str) -> Result<(bool, String)> {
    let file = dir.join("apply.yaml");
    std::fs::write(&file, yaml)?;
    let out = Command::new("kubectl")
        .args(["apply", "-f", file.to_str().context("path")?])
        .env("KUBECONFIG", api.kubeconfig())
        .output()?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}

fn ingress(ns: &str, name: &str, annotations: &[(&str, &str)]) -> String {
    let mut meta = format!(
        "  name: {name}\n  namespace: {ns}\n  labels: {{ferry-webhook-test: {ns}}}\n  annotations:\n    kubernetes.io/ingress.class: nginx\n"
    );
    for (k, v) in annotations {
        meta.push_str(&format!("    nginx.ingress.kubernetes.io/{k}: {v:?}\n"));
    }
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n{meta}spec:\n  rules:\n  - host: {name}.test\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}\n"
    )
}

/// The ValidatingWebhookConfiguration of `deploy/`, pointed at the test's webhook by URL and
/// limited to the test's Ingresses by label.
fn configuration(ns: &str, port: u16, ca: &str, policy: &str) -> String {
    format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {{name: {ns}}}\nwebhooks:\n- name: validate.ferry.dev\n  matchPolicy: Equivalent\n  rules:\n  - {{apiGroups: [networking.k8s.io], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [ingresses]}}\n  failurePolicy: {policy}\n  sideEffects: None\n  admissionReviewVersions: [v1]\n  timeoutSeconds: 5\n  objectSelector: {{matchLabels: {{ferry-webhook-test: {ns}}}}}\n  clientConfig:\n    url: https://127.0.0.1:{port}/networking/v1/ingresses\n    caBundle: {ca}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_is_judged_by_the_webhook() -> Result<()> {
    let api = ApiServer::ensure()?;
    let client = api.client().await?;
    let ns = namespace(&client, "cli-webhook").await?;
    let tmp = tempfile::tempdir()?;
    let (cert, key) = support::webhook::certificate(tmp.path())?;
    let ca = openssl::base64::encode_block(&std::fs::read(&cert)?);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let election = format!("ferry-{ns}");
    let c = Controller::start(
        &[
            "--kubeconfig",
            api.kubeconfig(),
            "--ingress-class",
            "nginx",
            "--watch-namespace",
            &ns,
            "--pod-namespace",
            &ns,
            "--election-id",
            &election,
            "--validating-webhook",
            &listen,
            "--validating-webhook-certificate",
            &cert,
            "--validating-webhook-key",
            &key,
        ],
        tmp.path(),
    )?;
    let (ok, out) = apply(&api, tmp.path(), &configuration(&ns, port, &ca, "Fail"))?;
    assert!(ok, "{out}");

    // Denied, with the reason `check` gives (the API server picks the configuration up within
    // a moment).
    let bad = ingress(&ns, "bad", &[("proxy-body-size", "lots")]);
    let mut denial = String::new();
    eventually(Duration::from_secs(20), || {
        let (ok, out) = apply(&api, tmp.path(), &bad)?;
        denial = out;
        Ok(!ok)
    })
    .with_context(|| c.logs())?;
    assert!(denial.contains("denied the request"), "{denial}");
    assert!(denial.contains("nginx.ingress.kubernetes.io/proxy-body-size: rejected"), "{denial}");

    // Allowed, with a warning for what Ferry does not apply.
    let (ok, out) = apply(&api, tmp.path(), &ingress(&ns, "good", &[("proxy-buffer-size", "8k")]))?;
    assert!(ok, "{out}");
    assert!(
        out.contains("Warning: annotation nginx.ingress.kubernetes.io/proxy-buffer-size: ignored"),
        "{out}"
    );

    // The controller down: `Fail` refuses every write, `Ignore` lets them through.
    drop(c);
    let (ok, out) = apply(&api, tmp.path(), &ingress(&ns, "later", &[]))?;
    assert!(!ok && out.contains("failed calling webhook"), "{out}");
    let (ok, out) = apply(&api, tmp.path(), &configuration(&ns, port, &ca, "Ignore"))?;
    assert!(ok, "{out}");
    eventually(Duration::from_secs(20), || Ok(apply(&api, tmp.path(), &ingress(&ns, "later", &[]))?.0))?;
    api.kubectl(&["delete", "validatingwebhookconfiguration", &ns])?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_certificate_provisions_the_secret_and_the_ca_bundle() -> Result<()> {
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    use k8s_openapi::api::core::v1::Secret;
    let api = ApiServer::ensure()?;
    let client = api.client().await?;
    let ns = namespace(&client, "cli-certgen").await?;
    let tmp = tempfile::tempdir()?;
    // deploy/'s configuration, renamed for the test (its caBundle empty, as deployed).
    let deployed = std::fs::read_to_string(format!(
        "{}/../deploy/base/admission-webhook.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))?;
    let configuration = deployed
        .split("\n---\n")
        .next()
        .context("no configuration")?
        .replace("name: ingress-ferry-admission\n  labels", &format!("name: {ns}\n  labels"));
    let (ok, out) = apply(&api, tmp.path(), &configuration)?;
    assert!(ok, "{out}");
    let run = || -> Result<String> {
        let out = Command::new(env!("CARGO_BIN_EXE_ingress-controller"))
            .args([
                "webhook-certificate",
                "--kubeconfig",
                api.kubeconfig(),
                "--namespace",
                &ns,
                "--webhook",
                &ns,
            ])
            .output()?;
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        anyhow::ensure!(out.status.success(), "webhook-certificate failed: {text}");
        Ok(text)
    };
    let first = run()?;
    assert!(first.contains("created for ingress-ferry-admission, ingress-ferry-admission."), "{first}");
    let secret = kube::Api::<Secret>::namespaced(client.clone(), &ns).get("ingress-ferry-admission").await?;
    let data = secret.data.context("no data")?;
    let ca = openssl::x509::X509::from_pem(&data.get("ca").context("ca")?.0)?;
    let cert = openssl::x509::X509::from_pem(&data.get("cert").context("cert")?.0)?;
    let ca_key = ca.public_key()?;
    assert!(cert.verify(&ca_key)?, "the serving certificate is the CA's");
    let bundle =
        |c: ValidatingWebhookConfiguration| c.webhooks.unwrap_or_default()[0].client_config.ca_bundle.clone();
    let webhooks = kube::Api::<ValidatingWebhookConfiguration>::all(client.clone());
    assert_eq!(bundle(webhooks.get(&ns).await?).map(|b| b.0), Some(data["ca"].0.clone()));
    // Run again (a Job retried, a pod restarted): the Secret is kept.
    let second = run()?;
    assert!(second.contains("exists, kept"), "{second}");
    api.kubectl(&["delete", "validatingwebhookconfiguration", &ns])?;
    Ok(())
}
