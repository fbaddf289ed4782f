//! User-interaction alerts 1100–1104 (DM Protocol 1.2 §2.5 "User interaction commands",
//! options in §2.5.3 / §10.3 of the numbering used by `specs/diagmon-dlota-parlay.md` §5).
//!
//! The simulator has no user: a [`UiPolicy`] says what the "user" does for each alert kind,
//! and [`answer`] turns that into the Status code and items the spec prescribes:
//! - 1100 Display → 200;
//! - 1101 Confirm → 200 "Yes" / 304 "No";
//! - 1102 Text input → 200 + one Item with the text (MAXLEN respected);
//! - 1103 Single choice → 200 + one Item with the chosen index (from 1);
//! - 1104 Multiple choice → 200 + one Item per chosen index;
//! - cancel → 214 (and 215 for the commands then skipped, done by the session);
//! - no answer within MAXDT → the default response (DR) when there is one, else 408 (what the
//!   Motorola/Android engine sends; the spec says "timeout status or default response");
//! - a client without UI → 406.

use omnidm_syncml::{AlertCode, StatusCode};

/// The optional parameters of the first Item (`MINDT=10&MAXDT=30&DR=1&…`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UiOptions {
    /// MINDT: minimum display time, seconds.
    pub min_display_secs: Option<u32>,
    /// MAXDT: maximum time to wait for the user, seconds.
    pub max_display_secs: Option<u32>,
    /// DR: the default response, URL-decoded.
    pub default_response: Option<String>,
    /// MAXLEN: maximum input length (text input).
    pub max_len: Option<usize>,
    /// IT: input type (`A`, `N`, `D`, `T`, `P`, `I`).
    pub input_type: Option<char>,
    /// ET: echo type (`T` text, `P` password).
    pub echo_type: Option<char>,
}

/// Decodes RFC 2396 URL encoding (`%XX`, `+` as space); invalid escapes stay literal.
fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl UiOptions {
    /// Parses the option string; unknown or malformed options are skipped (the client
    /// "MUST skip without error message" what it cannot process).
    pub fn parse(s: &str) -> UiOptions {
        let mut o = UiOptions::default();
        for part in s.split('&') {
            let Some((k, v)) = part.split_once('=') else {
                continue;
            };
            let v = url_decode(v.trim());
            match k.trim().to_ascii_uppercase().as_str() {
                "MINDT" => o.min_display_secs = v.parse().ok(),
                "MAXDT" => o.max_display_secs = v.parse().ok(),
                "DR" => o.default_response = Some(v),
                "MAXLEN" => o.max_len = v.parse().ok(),
                "IT" => o.input_type = v.chars().next(),
                "ET" => o.echo_type = v.chars().next(),
                _ => {}
            }
        }
        o
    }
}

/// What the simulated user does with one alert.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum UiAction {
    /// Confirm "Yes", acknowledge a display, take the default text/choice (DR) or, without
    /// one, the empty text / the first choice.
    #[default]
    Accept,
    /// Confirm "No" (304); for other kinds the same as [`UiAction::Cancel`].
    Decline,
    /// Cancel (214).
    Cancel,
    /// Type this text (text input).
    Text(String),
    /// Choose these 1-based indexes (choices); invalid ones are dropped.
    Choose(Vec<usize>),
    /// Never answer: the MAXDT timeout fires.
    Timeout,
    /// The device has no UI: 406.
    Unsupported,
}

/// The simulated user's behaviour per alert kind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UiPolicy {
    /// 1100 Display.
    pub display: UiAction,
    /// 1101 Confirm or reject.
    pub confirm: UiAction,
    /// 1102 Text input.
    pub text_input: UiAction,
    /// 1103 Single choice.
    pub single_choice: UiAction,
    /// 1104 Multiple choice.
    pub multiple_choice: UiAction,
}

impl UiPolicy {
    /// The same action for every kind.
    pub fn all(action: UiAction) -> UiPolicy {
        UiPolicy {
            display: action.clone(),
            confirm: action.clone(),
            text_input: action.clone(),
            single_choice: action.clone(),
            multiple_choice: action,
        }
    }

    fn action(&self, code: AlertCode) -> &UiAction {
        match code.0 {
            1100 => &self.display,
            1101 => &self.confirm,
            1102 => &self.text_input,
            1103 => &self.single_choice,
            _ => &self.multiple_choice,
        }
    }
}

/// A parsed UI alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiPrompt {
    /// 1100–1104.
    pub code: AlertCode,
    /// Options from the first Item.
    pub options: UiOptions,
    /// The text or title (second Item).
    pub text: String,
    /// Choices (Items 3..n), numbered from 1.
    pub choices: Vec<String>,
}

/// The answer: the Status code and the Item data values to put in the Status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiAnswer {
    /// 200, 304, 214, 406, 408.
    pub status: StatusCode,
    /// Texts / indexes for the Status Items.
    pub items: Vec<String>,
}

impl UiAnswer {
    fn code(c: u16) -> UiAnswer {
        UiAnswer {
            status: StatusCode(c),
            items: Vec::new(),
        }
    }

    /// True when the user cancelled (processing stops, 215 for the rest).
    pub fn cancelled(&self) -> bool {
        self.status == StatusCode::OPERATION_CANCELLED
    }

    /// True for 1101 "No".
    pub fn declined(&self) -> bool {
        self.status.0 == 304
    }
}

/// Applies `policy` to `prompt`.
pub fn answer(policy: &UiPolicy, prompt: &UiPrompt) -> UiAnswer {
    answer_with(policy.action(prompt.code), prompt)
}

fn answer_with(action: &UiAction, p: &UiPrompt) -> UiAnswer {
    let n = p.choices.len();
    let ok = |items: Vec<String>| UiAnswer {
        status: StatusCode::OK,
        items,
    };
    let clip = |t: &str| match p.options.max_len {
        Some(m) => t.chars().take(m).collect::<String>(),
        None => t.to_owned(),
    };
    let valid = |v: &[usize]| -> Vec<String> {
        v.iter()
            .filter(|i| **i >= 1 && **i <= n)
            .map(ToString::to_string)
            .collect()
    };
    let dr_indexes = || -> Vec<usize> {
        p.options
            .default_response
            .as_deref()
            .map(|d| d.split('-').filter_map(|x| x.trim().parse().ok()).collect())
            .unwrap_or_default()
    };
    match (action, p.code.0) {
        (UiAction::Unsupported, _) => UiAnswer::code(406),
        (UiAction::Cancel, _) => UiAnswer::code(214),
        // DR for a confirmation: 0 = reject, 1 = accept.
        (UiAction::Timeout, 1101) => match p.options.default_response.as_deref() {
            Some("0") => UiAnswer::code(304),
            Some(_) => ok(Vec::new()),
            None => UiAnswer::code(408),
        },
        (UiAction::Timeout, _) => match &p.options.default_response {
            Some(_) => answer_with(&UiAction::Accept, p),
            None => UiAnswer::code(408),
        },
        (_, 1100) => ok(Vec::new()),
        (UiAction::Decline, 1101) => UiAnswer::code(304),
        (UiAction::Decline, _) => UiAnswer::code(214),
        (_, 1101) => ok(Vec::new()),
        (UiAction::Text(t), 1102) => ok(vec![clip(t)]),
        (_, 1102) => ok(vec![clip(
            p.options.default_response.as_deref().unwrap_or(""),
        )]),
        (UiAction::Choose(v), 1103) => ok(valid(v).into_iter().take(1).collect()),
        (UiAction::Choose(v), _) => ok(valid(v)),
        (_, 1103) => {
            let d = valid(&dr_indexes());
            ok(if d.is_empty() {
                valid(&[1])
            } else {
                d.into_iter().take(1).collect()
            })
        }
        (_, _) => {
            let d = valid(&dr_indexes());
            ok(if d.is_empty() { valid(&[1]) } else { d })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(code: u16, opts: &str, choices: usize) -> UiPrompt {
        UiPrompt {
            code: AlertCode(code),
            options: UiOptions::parse(opts),
            text: "t".into(),
            choices: (1..=choices).map(|i| format!("c{i}")).collect(),
        }
    }

    #[test]
    fn options_parse() {
        let o = UiOptions::parse("MINDT=10&MAXDT=30&DR=John+Doe%21&MAXLEN=4&IT=N&ET=P&X=1&bad");
        assert_eq!(o.min_display_secs, Some(10));
        assert_eq!(o.max_display_secs, Some(30));
        assert_eq!(o.default_response.as_deref(), Some("John Doe!"));
        assert_eq!(o.max_len, Some(4));
        assert_eq!(o.input_type, Some('N'));
        assert_eq!(o.echo_type, Some('P'));
    }

    #[test]
    fn answers() {
        let p = UiPolicy::default();
        assert_eq!(answer(&p, &prompt(1100, "", 0)).status, StatusCode::OK);
        let no = UiPolicy::all(UiAction::Decline);
        assert_eq!(answer(&no, &prompt(1101, "", 0)).status, StatusCode(304));
        let t = answer(&p, &prompt(1102, "DR=abcdef&MAXLEN=3", 0));
        assert_eq!(t.items, vec!["abc"]);
        let m = answer(&p, &prompt(1104, "DR=2-3", 3));
        assert_eq!(m.items, vec!["2", "3"]);
        let s = answer(
            &UiPolicy::all(UiAction::Choose(vec![9, 2])),
            &prompt(1103, "", 3),
        );
        assert_eq!(s.items, vec!["2"]);
        let to = answer(&UiPolicy::all(UiAction::Timeout), &prompt(1101, "", 0));
        assert_eq!(to.status, StatusCode(408));
        assert!(answer(&UiPolicy::all(UiAction::Cancel), &prompt(1103, "", 2)).cancelled());
    }
}
