//! Reading inputs and writing outputs: files or the standard streams, with the care a
//! debugging tool owes a terminal (no binary dumped on it) and a pipe (a closed reader is not
//! an error worth a panic).

/// `println!` for command output: writes through [`write_stdout`] and returns the error with `?`
/// from the calling function, so a reader that went away (`| head -1`) ends the command
/// quietly instead of panicking as `println!` does on a broken pipe.
macro_rules! outln {
    () => {
        $crate::cli::io::write_stdout(b"\n")?
    };
    ($($arg:tt)*) => {
        $crate::cli::io::write_stdout(format!("{}\n", format_args!($($arg)*)).as_bytes())?
    };
}

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// The contents of an input file and how to name it in messages.
pub struct Input {
    /// The path as given, or `<stdin>`.
    pub name: String,
    /// The raw bytes.
    pub bytes: Vec<u8>,
}

/// Reads `path`, or standard input when it is `-`.
pub fn read_input(path: &Path) -> anyhow::Result<Input> {
    if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .context("<stdin>: cannot read standard input")?;
        return Ok(Input {
            name: "<stdin>".into(),
            bytes,
        });
    }
    let name = path.display().to_string();
    let bytes = std::fs::read(path).with_context(|| format!("{name}: cannot read the file"))?;
    Ok(Input { name, bytes })
}

/// Writes `bytes` to `out`, or to standard output. Binary output is refused when standard output
/// is a terminal, where it would garble the screen.
/// `alternative` names a text form the command offers instead (e.g. `--hex`), if any.
pub fn write_output(
    out: Option<&PathBuf>,
    bytes: &[u8],
    binary: bool,
    alternative: Option<&str>,
) -> anyhow::Result<()> {
    match out {
        Some(path) if path.as_os_str() != "-" => std::fs::write(path, bytes)
            .with_context(|| format!("{}: cannot write the file", path.display())),
        _ => {
            if binary && std::io::stdout().is_terminal() {
                let alt = alternative.map(|a| format!(", or {a}")).unwrap_or_default();
                bail!(
                    "refusing to write binary output to a terminal; use -o FILE, or redirect \
                     standard output (`> FILE` or `| xxd`){alt}"
                );
            }
            write_stdout(bytes)
        }
    }
}

/// Writes to standard output and flushes. A closed pipe surfaces as an error that
/// [`is_broken_pipe`] recognises, so the caller exits quietly instead of panicking as
/// `println!` would.
pub fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .context("cannot write to standard output")
}

/// True when the error comes from writing to a pipe whose reader has gone away.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Parses hex text; ASCII whitespace and an optional `0x` prefix are ignored, so that a value
/// copied from a hex dump or a log line can be pasted as is.
pub fn from_hex(text: &str) -> anyhow::Result<Vec<u8>> {
    let trimmed = text.trim();
    let trimmed = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
        .unwrap_or(trimmed);
    let digits: Vec<u8> = trimmed
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if !digits.len().is_multiple_of(2) {
        bail!(
            "hex text has an odd number of digits ({}); each byte is two digits",
            digits.len()
        );
    }
    digits
        .chunks(2)
        .enumerate()
        .map(|(i, pair)| {
            let hi = hex_digit(pair[0]);
            let lo = hex_digit(pair[1]);
            match (hi, lo) {
                (Some(h), Some(l)) => Ok(h << 4 | l),
                _ => bail!(
                    "invalid hex digit in {:?} (byte {i})",
                    String::from_utf8_lossy(pair)
                ),
            }
        })
        .collect()
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        assert_eq!(to_hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(from_hex("0x00 AB\nff").unwrap(), vec![0, 0xab, 0xff]);
        assert_eq!(from_hex("").unwrap(), Vec::<u8>::new());
        assert!(from_hex("abc").is_err());
        assert!(from_hex("zz").is_err());
        assert!(from_hex("é1").is_err());
    }
}
