//! Reads the checked-in TNDS sample and checks what a tree cache would get from it.
#![allow(clippy::unwrap_used)]

use omnidm_tree::{AclCommand, Format, MgmtTree, NodeType, NodeValue, TreeUri};

const SAMPLE: &[u8] = include_bytes!("data/devinfo_fumo_dmacc.tnds.xml");

#[test]
fn sample_reads_without_warnings() {
    let r = MgmtTree::read(SAMPLE).unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let t = &r.tree;
    assert_eq!(t.ver_dtd, "1.2");
    assert_eq!(t.man.as_deref(), Some("Acme Mobile"));
    assert_eq!(t.mod_.as_deref(), Some("AM-200"));
    assert_eq!(t.nodes.len(), 3);
    assert_eq!(
        t.nodes[1].props.type_,
        Some(NodeType::DdfName("urn:oma:mo:oma-fumo:1.0".into()))
    );
    let acl = t.nodes[1].props.acl.as_ref().unwrap();
    assert!(acl.permits(AclCommand::Get, "anyone"));
    assert!(acl.permits(AclCommand::Replace, "dm.example.com"));
    assert!(!acl.permits(AclCommand::Delete, "dm.example.com"));
}

#[test]
fn sample_flattens_to_typed_values() {
    let r = MgmtTree::read(SAMPLE).unwrap();
    let flat: Vec<_> = r.tree.flatten().map(Result::unwrap).collect();
    assert_eq!(flat.len(), 20);
    let get = |uri: &str| {
        let uri = TreeUri::parse(uri).unwrap();
        flat.iter().find(|f| f.uri == uri).unwrap()
    };
    let state = get("./FUMO/fw1/State");
    assert_eq!(state.format, Format::Int);
    assert_eq!(
        NodeValue::parse(state.format, state.value.unwrap()).unwrap(),
        NodeValue::Int(10)
    );
    let url = get("./FUMO/fw1/DownloadAndUpdate/PkgURL");
    assert_eq!(
        url.value,
        Some("https://dl.example.com/fw/am200-4.2.1.dd?dev=493005100592800&lang=en")
    );
    let nonce = get("./DMAcc/xyzInc/ClientNonce");
    assert_eq!(
        NodeValue::parse(nonce.format, nonce.value.unwrap()).unwrap(),
        NodeValue::B64(b"123456789012".to_vec())
    );
    assert_eq!(nonce.props.size, Some(12));
    assert_eq!(get("./DMAcc/xyzInc/ConRef").format, Format::Null);
    assert_eq!(get("./DevInfo").format, Format::Node);
}

#[test]
fn sample_write_read_is_identity_and_stable() {
    let r = MgmtTree::read(SAMPLE).unwrap();
    let once = r.tree.write();
    let again = MgmtTree::read(once.as_bytes()).unwrap();
    assert!(again.warnings.is_empty());
    assert_eq!(again.tree, r.tree);
    assert_eq!(again.tree.write(), once);
}

#[test]
fn large_tree_round_trips() {
    // About 1 MB of TNDS: a sanity check that size is no problem (timing is for benches).
    let r = MgmtTree::read(SAMPLE).unwrap();
    let mut big = r.tree.clone();
    let template = r.tree.nodes[2].clone();
    for i in 0..900 {
        let mut n = template.clone();
        n.name = format!("DMAcc{i}");
        big.nodes.push(n);
    }
    let text = big.write();
    assert!(text.len() > 1_000_000, "{}", text.len());
    let back = MgmtTree::read(text.as_bytes()).unwrap();
    assert_eq!(back.tree, big);
    assert_eq!(back.tree.flatten().count(), 20 + 900 * 7);
}
