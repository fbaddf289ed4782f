//! Properties of the command-list parser behind `POST /operations`.
#![allow(clippy::unwrap_used, missing_docs)]

use proptest::prelude::*;
use serde_json::{Value, json};

fn segment() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{1,8}"
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 1..4).prop_map(|s| format!("./{}", s.join("/")))
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        path().prop_map(|p| json!({"type": "get", "path": p})),
        (path(), "[ -~]{0,12}")
            .prop_map(|(p, v)| json!({"type": "replace", "path": p, "value": v})),
        (path(), -1000i64..1000).prop_map(
            |(p, v)| json!({"type": "replace", "path": p, "value": v.to_string(), "format": "int"})
        ),
        path().prop_map(|p| json!({"type": "add", "path": p, "format": "node"})),
        path().prop_map(|p| json!({"type": "delete", "path": p})),
        (path(), proptest::option::of("[a-z]{0,6}"))
            .prop_map(|(p, d)| json!({"type": "exec", "path": p, "data": d})),
        (path(), path()).prop_map(|(a, b)| json!({"type": "copy", "from": a, "to": b})),
        "[ -~]{1,20}".prop_map(|t| json!({"type": "confirm", "text": t})),
        ("[ -~]{1,20}", prop::collection::vec("[a-z]{1,5}", 1..4))
            .prop_map(|(t, c)| json!({"type": "multiple_choice", "text": t, "choices": c})),
    ]
}

fn command() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        (prop::bool::ANY, prop::collection::vec(inner, 1..4)).prop_map(|(atomic, cs)| {
            json!({"type": if atomic { "atomic" } else { "sequence" }, "commands": cs})
        })
    })
}

proptest! {
    /// What the parser accepts comes back identical after the API's own rendering.
    #[test]
    fn accepted_commands_round_trip(cmds in prop::collection::vec(command(), 1..6)) {
        let text = serde_json::to_vec(&cmds).unwrap();
        let parsed = omnidm_api::parse_commands(&text).unwrap();
        let rendered: Vec<Value> = parsed.iter().map(|c| serde_json::to_value(omnidm_api::render_command(c)).unwrap()).collect();
        let again = omnidm_api::parse_commands(&serde_json::to_vec(&rendered).unwrap()).unwrap();
        prop_assert_eq!(parsed, again);
    }

    /// Arbitrary bytes are refused with a 400 that says what is wrong, never a panic; the
    /// only bytes accepted are a JSON array (whose commands then render back to themselves).
    #[test]
    fn garbage_is_refused(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_refused_or_sound(&bytes)?;
    }

    /// Mutated valid bodies: refused the same way, or accepted as sound commands.
    #[test]
    fn mutations_are_refused_or_accepted_never_panic(cmds in prop::collection::vec(command(), 1..3), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut text = serde_json::to_vec(&cmds).unwrap();
        let i = at.index(text.len());
        text[i] = byte;
        check_refused_or_sound(&text)?;
    }
}

/// What every body must get from `parse_commands`: a 400 "bad-request" problem with a detail
/// that names the trouble, or — only for a JSON array — commands that survive a round trip.
fn check_refused_or_sound(body: &[u8]) -> Result<(), TestCaseError> {
    match omnidm_api::parse_commands(body) {
        Err(err) => {
            prop_assert_eq!(err.kind, omnidm_api::problem::Kind::BadRequest);
            // A sentence naming the trouble, bounded (the body is not echoed whole).
            prop_assert!(
                err.detail.len() > 10 && err.detail.len() < 1000,
                "detail says what is wrong: {}",
                err.detail
            );
        }
        Ok(cmds) => {
            let parsed: serde_json::Value = serde_json::from_slice(body)
                .map_err(|e| TestCaseError::fail(format!("accepted non-JSON: {e}")))?;
            prop_assert!(parsed.is_array(), "accepted a non-array: {parsed}");
            let rendered: Vec<_> = cmds.iter().map(omnidm_api::render_command).collect();
            let again = omnidm_api::parse_commands(&serde_json::to_vec(&rendered).unwrap())
                .map_err(|e| {
                    TestCaseError::fail(format!("rendered commands refused: {}", e.detail))
                })?;
            prop_assert_eq!(again, cmds);
        }
    }
    Ok(())
}

#[test]
fn bad_commands_name_what_is_wrong() {
    let err = omnidm_api::parse_commands(
        br#"[{"type": "replace", "path": "./a", "value": "x", "format": "int"}]"#,
    )
    .unwrap_err();
    assert!(err.detail.contains("format"), "{}", err.detail);
    let err = omnidm_api::parse_commands(br#"[{"type": "get", "path": "./a/../b"}]"#).unwrap_err();
    assert!(err.detail.contains("path"), "{}", err.detail);
    let err = omnidm_api::parse_commands(br#"[{"type": "atomic", "commands": []}]"#).unwrap_err();
    assert!(err.detail.contains("at least one"), "{}", err.detail);
    let err =
        omnidm_api::parse_commands(br#"[{"type": "get", "path": "./a", "extra": 1}]"#).unwrap_err();
    assert!(err.detail.contains("extra"), "{}", err.detail);
}
