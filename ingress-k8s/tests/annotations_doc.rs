//! `docs/annotations.md` carries the table the parser reads, generated: this test fails when
//! they differ. `FERRY_BLESS=1 cargo test -p ingress-k8s --test annotations_doc` rewrites it.

use std::path::Path;

const BEGIN: &str = "<!-- BEGIN GENERATED: annotations table (ingress-k8s/src/annotations/table.rs) -->\n";
const END: &str = "<!-- END GENERATED -->";

#[test]
fn the_documented_table_is_the_parsers_table() -> anyhow::Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/annotations.md");
    let doc = std::fs::read_to_string(&path)?;
    let start = doc.find(BEGIN).ok_or_else(|| anyhow::anyhow!("no BEGIN marker in {}", path.display()))?;
    let end = doc.find(END).ok_or_else(|| anyhow::anyhow!("no END marker in {}", path.display()))?;
    let table = ingress_k8s::annotations::markdown_table();
    let generated = format!("{}{BEGIN}{table}{}", &doc[..start], &doc[end..]);
    if std::env::var_os("FERRY_BLESS").is_some() {
        std::fs::write(&path, &generated)?;
        return Ok(());
    }
    assert!(
        generated == doc,
        "docs/annotations.md is out of date with the annotation table; run \
         FERRY_BLESS=1 cargo test -p ingress-k8s --test annotations_doc"
    );
    Ok(())
}
