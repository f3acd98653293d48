//! Standalone mode: the controller fed from a manifest directory (no cluster), through the
//! same translation and publish channel as the cluster mode.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use common::{routed, wait_for};
use ingress_k8s::{Config, Controller};

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn manifest_directory_is_watched_and_applied_atomically() -> Result<()> {
    common::logs();
    let dir = std::env::temp_dir().join(format!("ferry-manifest-mode-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("apps"))?;
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed");
    for file in ["demo.yaml", "webapp.yaml", "webapp-tls-secret.yaml"] {
        std::fs::copy(seed.join(file), dir.join("apps").join(file))?;
    }
    let config = Config {
        ingress_class: "nginx".into(),
        manifest_poll: Duration::from_millis(50),
        configmap: Some("ingress-ferry/ingress-ferry".parse()?),
        ..Config::default()
    };
    let controller = Controller::from_manifests(&dir, config).await?;
    let snapshots = controller.snapshots();
    let s = controller.ready().await?;
    assert_eq!(routed(&s, "demo.example.com", "/").unwrap(), ["10.244.1.5:80", "10.244.2.7:80"]);
    assert_eq!(routed(&s, "webapp.example.com", "/").unwrap(), ["10.244.1.20:8080", "10.244.2.21:8080"]);
    assert_eq!(
        s.table.tls().certificate_for(Some("webapp.example.com")).unwrap().certificate.name,
        "webapp-tls-secret"
    );

    // A new JSON file (a ConfigMap) is picked up.
    std::fs::write(
        dir.join("config.json"),
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ingress-ferry", "namespace": "ingress-ferry"}, "data": {"ssl-redirect": "false"}}"#,
    )?;
    wait_for(&snapshots, T, "configmap", |s| s.config.get("ssl-redirect").is_some_and(|v| v == "false"))
        .await?;

    // A file that breaks: reported with file and document index; its old content stays.
    let demo = dir.join("apps/demo.yaml");
    let good = std::fs::read_to_string(&demo)?;
    std::fs::write(&demo, format!("{good}\n---\napiVersion: v1\nkind: Service\nmetadata: [oops\n"))?;
    let mut errors = controller.manifest_errors();
    let errs = errors.wait_for(|e| !e.is_empty()).await?.clone();
    assert_eq!(errs[0].file, demo);
    assert_eq!(errs[0].document, Some(3));
    let s = controller.current().unwrap();
    assert!(routed(&s, "demo.example.com", "/").is_some(), "the last good content stays in force");

    // Fixed, with a change: applied, the error clears.
    std::fs::write(&demo, good.replace("demo.example.com", "demo2.example.com"))?;
    wait_for(&snapshots, T, "fixed file", |s| {
        routed(s, "demo2.example.com", "/").is_some() && routed(s, "demo.example.com", "/").is_none()
    })
    .await?;
    errors.wait_for(Vec::is_empty).await?;

    // A deleted file takes its objects with it.
    std::fs::remove_file(dir.join("apps/webapp.yaml"))?;
    wait_for(&snapshots, T, "file removed", |s| routed(s, "webapp.example.com", "/").is_none()).await?;
    controller.shutdown().await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn a_scan_reads_only_changed_files_and_shares_the_objects_of_the_others() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("ferry-manifest-share-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed");
    std::fs::copy(seed.join("webapp-tls-secret.yaml"), dir.join("secret.yaml"))?;
    let service = |port: u16| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default}}\nspec: {{ports: [{{port: {port}}}]}}\n"
        )
    };
    std::fs::write(dir.join("service.yaml"), service(80))?;
    let mut manifests = ingress_k8s::ManifestDir::new(&dir);
    assert!(manifests.scan()?);
    let first = manifests.objects();
    assert!(!manifests.scan()?, "nothing changed");
    // Another length, so the stamp differs whatever the file system's clock resolution.
    std::fs::write(dir.join("service.yaml"), service(8080))?;
    assert!(manifests.scan()?);
    let second = manifests.objects();
    let key = |name: &str| -> ingress_k8s::Key { ("default".into(), name.into()) };
    let secret = |o: &ingress_k8s::Objects| o.secrets.get(&key("webapp-tls-secret")).cloned();
    assert!(
        std::sync::Arc::ptr_eq(&secret(&first).expect("secret"), &secret(&second).expect("secret")),
        "the unchanged file's Secret is the same object (its parsed certificate stays cached)"
    );
    assert!(!std::sync::Arc::ptr_eq(&first.services[&key("web")], &second.services[&key("web")]));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Scans `manifests`, applies its update to `store`, and returns the Services the update put
/// and the keys it took out (names).
fn update(
    manifests: &mut ingress_k8s::ManifestDir,
    store: &mut ingress_k8s::Objects,
) -> Result<(Vec<String>, Vec<String>)> {
    use ingress_k8s::Change;
    assert!(manifests.scan()?, "the edit is seen");
    let Change::Update(set, gone) = manifests.take_update() else { anyhow::bail!("not an update") };
    let put = set.services.keys().map(|k| k.1.to_string()).collect();
    let names = gone.iter().map(|(_, k)| k.1.to_string()).collect();
    store.apply(Change::Update(set, gone));
    Ok((put, names))
}

/// A store fed the first `take_all` and then each `take_update` holds what `objects` gives,
/// object for object, through edits, a name defined in two files, and removed files; and an
/// update holds only what the changed files touched.
#[test]
fn updates_carry_what_changed_files_touched_and_keep_the_store_equal() -> Result<()> {
    use ingress_k8s::Objects;
    let dir = std::env::temp_dir().join(format!("ferry-manifest-updates-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let service = |name: &str, port: u16| {
        format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec: {{ports: [{{port: {port}}}]}}\n"
        )
    };
    let write = |file: &str, text: String| std::fs::write(dir.join(file), text);
    write("a.yaml", service("one", 80) + &service("dup", 81))?;
    write("b.yaml", service("two", 80) + &service("dup", 82))?;
    write("c.yaml", service("three", 80))?;
    let mut manifests = ingress_k8s::ManifestDir::new(&dir);
    assert!(manifests.scan()?);
    let mut store = Objects::new();
    store.apply(manifests.take_all());
    let port = |o: &Objects, name: &str| o.services[&("default".into(), name.into())].ports[0].port;
    let same = |store: &Objects, merged: &Objects| {
        store.services.len() == merged.services.len()
            && store
                .services
                .iter()
                .all(|(k, v)| merged.services.get(k).is_some_and(|m| std::sync::Arc::ptr_eq(v, m)))
    };
    assert_eq!(port(&store, "dup"), 82, "the later file wins");
    assert!(same(&store, &manifests.objects()));

    // One Service of one file edited (another length, so the stamp differs): only the objects
    // of that file are looked at; they are parsed anew and put, but for `dup`, whose winning
    // definition is b.yaml's, unchanged.
    write("a.yaml", service("one", 8080) + &service("dup", 81))?;
    assert_eq!(update(&mut manifests, &mut store)?, (vec!["one".to_owned()], vec![]));
    assert_eq!(port(&store, "one"), 8080);
    assert!(same(&store, &manifests.objects()));

    // The winning definition of `dup` leaves b.yaml: a.yaml's shows through, nothing is gone
    // (`two`, parsed anew, is put again).
    write("b.yaml", service("two", 80))?;
    assert_eq!(update(&mut manifests, &mut store)?, (vec!["dup".to_owned(), "two".to_owned()], vec![]));
    assert_eq!(port(&store, "dup"), 81);
    assert!(same(&store, &manifests.objects()));

    // A file removed: its objects go, the other files' stay.
    std::fs::remove_file(dir.join("c.yaml"))?;
    assert_eq!(update(&mut manifests, &mut store)?, (vec![], vec!["three".to_owned()]));
    assert!(same(&store, &manifests.objects()));

    // A new file, and a file that does not parse (its previous content stays in force).
    write("d.yaml", service("four", 80))?;
    write("a.yaml", "kind: [".to_owned())?;
    assert_eq!(update(&mut manifests, &mut store)?, (vec!["four".to_owned()], vec![]));
    assert_eq!(port(&store, "one"), 8080);
    assert!(same(&store, &manifests.objects()));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
