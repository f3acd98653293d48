//! `check --kubeconfig`: the migration report of a live cluster's ingress-nginx Ingresses,
//! against a real kube-apiserver, read with an identity that can only `list` and `get`, and
//! changing nothing.

mod support;

use std::process::Command;

use anyhow::{Context, Result};
use support::cluster::{ApiServer, create, namespace};

/// What an ingress-nginx user has: the seed's Ingress, a rewrite, an HTTPS redirect, a canary,
/// basic auth, a snippet, a typo, client-certificate auth (not applied: fails closed), an
/// out-of-range value, and an Ingress of another class.
fn ingresses() -> String {
    let ingress = |name: &str, host: &str, path: &str, service: &str, annotations: &[(&str, &str)]| {
        let mut notes = String::from("    kubernetes.io/ingress.class: nginx\n");
        for (k, v) in annotations {
            let key =
                if k.contains('/') { (*k).to_owned() } else { format!("nginx.ingress.kubernetes.io/{k}") };
            notes.push_str(&format!("    {key}: {v:?}\n"));
        }
        format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  annotations:\n{notes}spec:\n  rules:\n  - host: {host}\n    http:\n      paths:\n      - path: {path}\n        pathType: ImplementationSpecific\n        backend: {{service: {{name: {service}, port: {{number: 80}}}}}}\n"
        )
    };
    [
        ingress("demo-ingress", "demo.example.com", "/", "demo-app", &[]),
        ingress(
            "rewrite",
            "rewrite.example.com",
            "/api(/|$)(.*)",
            "demo-app",
            &[("use-regex", "true"), ("rewrite-target", "/$2")],
        ),
        ingress("redirect", "secure.example.com", "/", "demo-app", &[("force-ssl-redirect", "true")]),
        ingress(
            "canary",
            "demo.example.com",
            "/",
            "canary-app",
            &[("canary", "true"), ("canary-weight", "20")],
        ),
        ingress(
            "basic",
            "basic.example.com",
            "/",
            "demo-app",
            &[("auth-type", "basic"), ("auth-secret", "basic-auth"), ("auth-realm", "Private")],
        ),
        ingress(
            "snippet",
            "snippet.example.com",
            "/",
            "demo-app",
            &[("configuration-snippet", "more_set_headers \"X: y\";")],
        ),
        ingress("typo", "typo.example.com", "/", "demo-app", &[("proxy-bdy-size", "8m")]),
        ingress(
            "mtls",
            "mtls.example.com",
            "/",
            "demo-app",
            &[("auth-tls-secret", "default/ca"), ("auth-tls-verify-client", "on")],
        ),
        ingress("mtls-too", "mtls2.example.com", "/", "demo-app", &[("auth-tls-secret", "default/ca")]),
        ingress("timeout", "timeout.example.com", "/", "demo-app", &[("proxy-read-timeout", "10m")]),
        ingress(
            "traefik",
            "other.example.com",
            "/",
            "demo-app",
            &[("kubernetes.io/ingress.class", "traefik")],
        )
        .replacen("    kubernetes.io/ingress.class: nginx\n", "", 1),
    ]
    .concat()
}

const OTHERS: &str = "---\napiVersion: v1\nkind: Service\nmetadata: {name: demo-app}\nspec: {ports: [{port: 80}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: canary-app}\nspec: {ports: [{port: 80}]}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: basic-auth}\ntype: Opaque\nstringData: {auth: \"user:$apr1$6fOzCFf4$5V8Tt8GkUyXJ/Rj6ZtLCq/\"}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ingress-nginx-controller}\ndata:\n  use-forwarded-headers: \"true\"\n  proxy-body-size: 8m\n  enable-opentelemetry: \"true\"\n";

/// ingress-nginx's controller Deployment, with the arguments of its deploy manifest
/// (`$(POD_NAMESPACE)` as the manifest writes it). No pod runs it: the test API server has no
/// scheduler; the report only reads the object.
const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ingress-nginx-controller}\nspec:\n  selector: {matchLabels: {app: ingress-nginx}}\n  template:\n    metadata: {labels: {app: ingress-nginx}}\n    spec:\n      containers:\n      - name: controller\n        image: registry.k8s.io/ingress-nginx/controller:v1.12.0\n        args:\n        - /nginx-ingress-controller\n        - --publish-service=$(POD_NAMESPACE)/ingress-nginx-controller\n        - --election-id=ingress-nginx-leader\n        - --controller-class=k8s.io/ingress-nginx\n        - --ingress-class=nginx\n        - --configmap=$(POD_NAMESPACE)/ingress-nginx-controller\n        - --validating-webhook=:8443\n        - --validating-webhook-certificate=/usr/local/certificates/cert\n        - --validating-webhook-key=/usr/local/certificates/key\n        - --enable-metrics=false\n        - --v=2\n";

/// A ServiceAccount that may only `get` and `list`, cluster-wide.
fn reader(ns: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: reader, namespace: {ns}}}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: {ns}-reader}}\nrules:\n- apiGroups: [\"\", networking.k8s.io, discovery.k8s.io, apps]\n  resources: [ingresses, ingressclasses, services, endpointslices, secrets, configmaps, deployments, namespaces]\n  verbs: [get, list]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: {ns}-reader}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {ns}-reader}}\nsubjects: [{{kind: ServiceAccount, name: reader, namespace: {ns}}}]\n"
    )
}

/// `kind/name=resourceVersion` of every object of the test's namespace.
fn versions(api: &ApiServer, ns: &str) -> Result<String> {
    api.kubectl(&[
        "get",
        "ingresses,services,secrets,configmaps,deployments,endpointslices,serviceaccounts",
        "-n",
        ns,
        "-o",
        "jsonpath={range .items[*]}{.kind}/{.metadata.name}={.metadata.resourceVersion}{\"\\n\"}{end}",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_of_a_live_cluster_read_with_list_and_get_only() -> Result<()> {
    let api = ApiServer::ensure()?;
    let client = api.client().await?;
    let ns = namespace(&client, "cli-check").await?;
    create(&client, &ns, &ingresses()).await?;
    create(&client, &ns, OTHERS).await?;
    create(&client, &ns, DEPLOYMENT).await?;
    create(&client, "", &reader(&ns)).await?;

    // A kubeconfig whose only identity is the reader's token.
    let token = api.kubectl(&["create", "token", "reader", "-n", &ns])?;
    let admin = std::fs::read_to_string(api.kubeconfig())?;
    let tmp = tempfile::tempdir()?;
    let kubeconfig = tmp.path().join("reader.kubeconfig");
    std::fs::write(&kubeconfig, admin.replace(&api.env["FERRY_ADMIN_TOKEN"], token.trim()))?;
    let can = |verb: &str| {
        let out = Command::new("kubectl")
            .args(["auth", "can-i", verb, "ingresses", "-n", &ns])
            .args(["--as", &format!("system:serviceaccount:{ns}:reader")])
            .env("KUBECONFIG", api.kubeconfig())
            .output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
    };
    assert!(can("list").starts_with("yes") && can("watch").contains("no") && can("update").contains("no"));

    let before = versions(&api, &ns)?;
    let check = |format: &str| -> Result<(Option<i32>, String, String)> {
        let out = Command::new(env!("CARGO_BIN_EXE_ingress-controller"))
            .args(["check", "--kubeconfig", kubeconfig.to_str().context("path")?])
            .args(["--ingress-class", "nginx", "--controller-class", "k8s.io/ingress-nginx"])
            .args(["--watch-namespace", &ns, "--configmap", &format!("{ns}/ingress-nginx-controller")])
            .args(["-o", format])
            .output()?;
        Ok((
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    let (code, json, stderr) = check("json")?;
    assert_eq!(code, Some(1), "refused Ingresses fail the check\n{stderr}\n{json}");
    let report: serde_json::Value =
        serde_json::from_str(&json).with_context(|| format!("{json}\n{stderr}"))?;

    // The summary: who switches unchanged, who differs, who is refused; what blocks most.
    let summary = &report["summary"];
    assert_eq!(
        (&summary["ingresses"], &summary["unchanged"], &summary["differences"], &summary["refused"]),
        (&10.into(), &5.into(), &2.into(), &3.into()),
        "{summary:#}"
    );
    assert_eq!(summary["otherClasses"], 1);
    assert_eq!(
        summary["blockers"][0],
        serde_json::json!({"annotation": "nginx.ingress.kubernetes.io/auth-tls-secret", "ingresses": 2}),
        "{summary:#}"
    );
    let blockers = summary["blockers"].as_array().cloned().unwrap_or_default();
    assert!(
        blockers.contains(&serde_json::json!({"annotation": "nginx.ingress.kubernetes.io/proxy-read-timeout", "ingresses": 1})),
        "{summary:#}"
    );

    let ingress = |name: &str| {
        report["ingresses"]
            .as_array()
            .and_then(|all| all.iter().find(|i| i["name"] == name))
            .cloned()
            .unwrap_or_default()
    };
    for (name, outcome) in [
        ("demo-ingress", "unchanged"),
        ("rewrite", "unchanged"),
        ("redirect", "unchanged"),
        ("canary", "unchanged"),
        ("basic", "unchanged"),
        ("snippet", "differs"),
        ("typo", "differs"),
        ("mtls", "refused"),
        ("mtls-too", "refused"),
        ("timeout", "refused"),
    ] {
        assert_eq!(ingress(name)["outcome"], outcome, "{name}: {:#}", ingress(name));
    }
    // Routes as Ferry serves them; the fail-closed ones say so.
    let demo = ingress("demo-ingress");
    assert_eq!(demo["routes"][0]["host"], "demo.example.com");
    assert_eq!(demo["routes"][0]["backend"], format!("{ns}/demo-app:80"));
    assert_eq!(demo["routes"][0]["served"], true);
    let mtls = ingress("mtls");
    assert_eq!(mtls["routes"][0]["served"], false);
    assert!(mtls["routes"][0]["why"].as_str().unwrap_or_default().starts_with("answers 503"), "{mtls:#}");
    let verdict = |i: &serde_json::Value, key: &str| {
        i["annotations"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["key"] == key))
            .map(|x| x["verdict"].clone())
    };
    let key = |short: &str| format!("nginx.ingress.kubernetes.io/{short}");
    assert_eq!(verdict(&ingress("snippet"), &key("configuration-snippet")), Some("ignored".into()));
    assert_eq!(verdict(&ingress("typo"), &key("proxy-bdy-size")), Some("unknown".into()));
    assert_eq!(verdict(&ingress("basic"), &key("auth-secret")), Some("applied".into()));
    assert_eq!(verdict(&ingress("timeout"), &key("proxy-read-timeout")), Some("rejected".into()));

    // The ConfigMap's keys and the Deployment's flags.
    let setting = |section: &str, list: &str, name: &str| {
        report[section][list]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == name))
            .map(|x| x["verdict"].clone())
    };
    assert_eq!(setting("configMap", "keys", "use-forwarded-headers"), Some("applied".into()));
    assert_eq!(setting("configMap", "keys", "enable-opentelemetry"), Some("ignored".into()));
    assert_eq!(report["deployment"]["name"], format!("Deployment {ns}/ingress-nginx-controller"));
    assert_eq!(setting("deployment", "flags", "--ingress-class=nginx"), Some("applied".into()));
    assert_eq!(
        setting("deployment", "flags", &format!("--configmap={ns}/ingress-nginx-controller")),
        Some("applied".into())
    );
    assert_eq!(setting("deployment", "flags", "--v=2"), Some("applied".into()));
    assert_eq!(setting("deployment", "flags", "--enable-metrics=false"), Some("ignored".into()));

    // Text and Markdown say the same, summary first.
    let (code, text, _) = check("text")?;
    assert_eq!(code, Some(1));
    assert!(
        text.starts_with("summary   10 Ingresses of class `nginx`: 5 unchanged, 2 with differences, 3 refused or failing closed (1 Ingress of other classes left alone)\n"),
        "{text}"
    );
    assert!(text.contains("blocks    nginx.ingress.kubernetes.io/auth-tls-secret: 2 Ingresses\n"), "{text}");
    assert!(text.contains(&format!("route     Ingress {ns}/demo-ingress demo.example.com/ ImplementationSpecific -> {ns}/demo-app:80\n")), "{text}");
    let (_, markdown, _) = check("markdown")?;
    assert!(markdown.starts_with("# Switching to Ferry: migration report\n"), "{markdown}");
    assert!(markdown.contains("| `nginx.ingress.kubernetes.io/auth-tls-secret` | 2 |"), "{markdown}");
    assert!(markdown.contains(&format!("| `{ns}/mtls` | refused |")), "{markdown}");

    // Nothing changed.
    assert_eq!(versions(&api, &ns)?, before, "the report wrote nothing");
    Ok(())
}
