//! OMA DM application-layer authentication (OMA-TS-DM_Security-V1_2, "DM Security").
//!
//! What this module does:
//! - the three authentication types of DM Security §5.3/§5.4 — `syncml:auth-basic`,
//!   `syncml:auth-md5` and `syncml:auth-MAC` (HMAC-MD5 in the `x-syncml-hmac` transport header);
//! - computes and verifies (in constant time) the values carried in `<Cred><Data>` and in the
//!   `x-syncml-hmac` header;
//! - carries nonces (`<NextNonce>` in a `<Chal>`) as raw bytes, with their base64 wire form;
//! - lets a store keep [`DigestKey`]s (`b64(H(name:secret))`) instead of plaintext secrets:
//!   every `*_with_key` function verifies or computes from the key alone.
//!
//! What it does not do:
//! - it never generates randomness or reads the clock: a fresh nonce is built from bytes the caller
//!   drew ([`Nonce::from_random`]);
//! - it does not decide *when* to challenge, which nonce is current, or how credentials are
//!   stored; that is session-engine policy;
//! - it does not read or write XML: [`make_cred`] and [`verify_cred`] work on the plain strings the
//!   message model carries in `<Cred><Meta><Type/><Format/></Meta><Data/></Cred>`.
//!
//! The same functions serve both directions (DM Security §5.1, §5.3): a device authenticating to
//! the server uses the device's user name/secret and the nonce the *server* issued; the server
//! authenticating to a device uses its server identifier/server secret and the nonce the *device*
//! issued. The captured Funambol exchange in `tests/data/fixtures/pkg2-server.xml` is the second
//! case (server id `funambol`, secret `srvpwd`, empty nonce).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use md5::{Digest as _, Md5};
use subtle::ConstantTimeEq as _;

/// Lenient base64 decoder for values received from peers: standard alphabet, padding optional
/// (the DM Security §5.4.3 example `mac` value itself has no padding).
const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Name of the transport header carrying the HMAC (DM Security §5.4.3).
pub const HMAC_HEADER_NAME: &str = "x-syncml-hmac";

/// The `<Format>` value used for every credential and nonce this module emits (DM Security §5.3,
/// DM RepPro: Chal/NextNonce format MUST be b64 for MD5 and MAC).
pub const FORMAT_B64: &str = "b64";

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

/// An authentication scheme of DM Security 1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthType {
    /// `syncml:auth-basic`: `b64(username:password)` in `<Cred>`.
    Basic,
    /// `syncml:auth-md5`: the MD5 digest of DM Security §5.3.2 in `<Cred>`.
    Md5,
    /// `syncml:auth-MAC`: HMAC-MD5 over the message body in the `x-syncml-hmac` transport
    /// header (DM Security §5.4); never carried in `<Cred>` (§5.4.1).
    Hmac,
}

impl AuthType {
    /// The wire name used in `<Meta><Type>` of `Cred`/`Chal`.
    pub const fn wire_name(self) -> &'static str {
        match self {
            AuthType::Basic => "syncml:auth-basic",
            AuthType::Md5 => "syncml:auth-md5",
            AuthType::Hmac => "syncml:auth-MAC",
        }
    }

    /// Parses a wire name. Case-insensitive and whitespace-tolerant, because devices spell it
    /// `syncml:auth-MD5`, `syncml:auth-md5`, `syncml:auth-mac`… (the DM Protocol examples
    /// themselves use both cases).
    pub fn from_wire(s: &str) -> Option<AuthType> {
        let s = s.trim();
        [AuthType::Basic, AuthType::Md5, AuthType::Hmac]
            .into_iter()
            .find(|t| t.wire_name().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for AuthType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wire_name())
    }
}

/// A nonce as raw bytes. On the wire it travels base64-encoded in `<NextNonce>` (Format `b64`);
/// the digests of DM Security §5.3.2/§5.4.2 use the *decoded* bytes.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Nonce(Vec<u8>);

impl Nonce {
    /// The length DM Security §5.3.3 recommends for a nonce: at least 128 bits.
    pub const RECOMMENDED_LEN: usize = 16;

    /// Wraps raw nonce bytes (for example a stored nonce, or the empty nonce used before any
    /// challenge was ever received).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Nonce {
        Nonce(bytes.into())
    }

    /// Builds a fresh nonce from 16 random bytes drawn by the caller.
    ///
    /// Why an array and not a `rand_core::RngCore` parameter: this crate is sans-IO and should
    /// not tie its public API to one version of a randomness trait; every RNG can fill a
    /// `[u8; 16]`, and the type forces exactly the 128 bits DM Security §5.3.3 recommends.
    pub fn from_random(bytes: [u8; 16]) -> Nonce {
        Nonce(bytes.to_vec())
    }

    /// Decodes the base64 text of a `<NextNonce>` (padding optional, surrounding and embedded
    /// ASCII whitespace ignored, as XML pretty-printers may wrap long values).
    pub fn from_b64(text: &str) -> Result<Nonce, AuthError> {
        decode_b64_lenient(text).map(Nonce)
    }

    /// The base64 text to put in `<NextNonce>`.
    pub fn to_b64(&self) -> String {
        STANDARD.encode(&self.0)
    }

    /// The raw nonce bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The nonces a peer may fall back to during nonce resynchronisation (DM Notification 1.2,
    /// "Nonce Resynchronisation" under §6.1 Server Alerted Management Session: the "special
    /// nonce value 0x00000000", used for package 0 and for the session that follows). The spec text is
    /// ambiguous: libdmclient uses the ten ASCII characters `0x00000000`, other clients use four
    /// zero octets, so both are returned, most common first.
    pub fn resync_candidates() -> [Nonce; 2] {
        [Nonce(b"0x00000000".to_vec()), Nonce(vec![0, 0, 0, 0])]
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Nonces are public (sent in clear), so showing the wire form is safe and useful.
        write!(f, "Nonce({})", self.to_b64())
    }
}

/// A name and shared secret: a device's `AAuthName`/`AAuthSecret` or the server's server
/// identifier and server secret (DM Security §5.1).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (device credentials) or server identifier (server credentials).
    pub username: String,
    /// The shared secret (password). Never printed by `Debug`.
    pub secret: String,
}

impl Credentials {
    /// Builds credentials from a name and a secret.
    pub fn new(username: impl Into<String>, secret: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            secret: secret.into(),
        }
    }

    /// `H(username:password)`: the value an authenticator may store instead of the password
    /// (DM Security §5.3.2).
    fn user_pass_hash(&self) -> [u8; 16] {
        let mut h = Md5::new();
        h.update(self.username.as_bytes());
        h.update(b":");
        h.update(self.secret.as_bytes());
        h.finalize().into()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// What a verifier or signer needs to keep instead of a plaintext secret: the name and
/// `H(name:secret)` (DM Security §5.3.2 allows the authenticator to store this hash). Every
/// MD5 digest, HMAC and package-0 digest starts from `B64(H(name:secret))`, and a Basic
/// credential is checked by hashing what the peer sent and comparing — so a store never needs
/// the secret itself. Only *producing* a Basic credential needs the plaintext (use
/// [`Credentials`] for that).
///
/// Stored as text with [`DigestKey::to_b64`] and loaded back with [`DigestKey::from_b64`].
/// `Debug` never prints the hash.
#[derive(Clone, PartialEq, Eq)]
pub struct DigestKey {
    /// The user name (device credentials) or server identifier (server credentials): needed in
    /// the `x-syncml-hmac` header and to check a Basic credential's name.
    username: String,
    /// `H(username:secret)`.
    hash: [u8; 16],
}

impl DigestKey {
    /// Computes the key from a name and its secret.
    pub fn from_credentials(creds: &Credentials) -> DigestKey {
        DigestKey {
            username: creds.username.clone(),
            hash: creds.user_pass_hash(),
        }
    }

    /// Loads a key stored as `b64(H(username:secret))` (what [`DigestKey::to_b64`] wrote).
    /// Fails unless the text decodes to exactly 16 bytes.
    pub fn from_b64(username: impl Into<String>, b64: &str) -> Result<DigestKey, AuthError> {
        let raw = decode_b64_lenient(b64)?;
        let hash =
            <[u8; 16]>::try_from(raw.as_slice()).map_err(|_| Malformed::DigestLength(raw.len()))?;
        Ok(DigestKey {
            username: username.into(),
            hash,
        })
    }

    /// `b64(H(username:secret))`, the form to store.
    pub fn to_b64(&self) -> String {
        STANDARD.encode(self.hash)
    }

    /// The user name or server identifier.
    pub fn username(&self) -> &str {
        &self.username
    }
}

impl From<&Credentials> for DigestKey {
    fn from(creds: &Credentials) -> Self {
        DigestKey::from_credentials(creds)
    }
}

impl fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestKey")
            .field("username", &self.username)
            .field("hash", &"<redacted>")
            .finish()
    }
}

/// How the nonce entered an MD5/HMAC digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum NonceForm {
    /// The decoded nonce bytes, as DM Security §5.3.2 specifies.
    #[default]
    Raw,
    /// Known client quirk: the base64 *text* of the nonce (what appeared in `<NextNonce>`) is
    /// hashed instead of the decoded bytes. Accepted on verification and reported in
    /// [`Verified::nonce_form`] so the engine can record a per-device quirk and answer in kind.
    B64Text,
}

/// How the received digest was encoded inside its base64 wrapper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DigestEncoding {
    /// `b64(16 digest bytes)`, as DM Security specifies.
    #[default]
    Raw,
    /// `b64(32 lowercase/uppercase hex characters)`: what the DM Security §5.4.3 example
    /// (`mac=NTI2OTJh…`) shows and some implementations copied.
    Hex,
}

/// Successful verification result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The scheme that was verified.
    pub auth_type: AuthType,
    /// The authenticated identity (the user name / server identifier).
    pub username: String,
    /// Which nonce form matched (always [`NonceForm::Raw`] for Basic).
    pub nonce_form: NonceForm,
    /// Which digest encoding matched (always [`DigestEncoding::Raw`] for Basic).
    pub digest_encoding: DigestEncoding,
}

/// A credential ready for `<Cred><Meta><Type/><Format/></Meta><Data/></Cred>`.
#[derive(Clone, PartialEq, Eq)]
pub struct WireCred {
    /// `<Meta><Type>`: the scheme's wire name.
    pub type_: &'static str,
    /// `<Meta><Format>`: always `b64`.
    pub format: &'static str,
    /// `<Data>`: the base64 credential.
    pub data: String,
}

impl From<WireCred> for crate::Cred {
    /// The `<Cred>` element carrying these values.
    fn from(w: WireCred) -> crate::Cred {
        crate::Cred {
            meta: Some(crate::Meta::with_format(w.format).and_type(w.type_)),
            data: crate::Data::Text(w.data),
        }
    }
}

impl fmt::Debug for WireCred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A Basic credential's data *is* the password, merely base64-encoded.
        f.debug_struct("WireCred")
            .field("type_", &self.type_)
            .field("format", &self.format)
            .field("data", &"<redacted>")
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a credential was not accepted. Grouped by what the peer is told: see
/// [`AuthError::status_code`]. Messages never contain secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credentials were supplied where they are required (SyncML status 407, with a `Chal`).
    #[error("credentials missing")]
    Missing,
    /// The credential could not be parsed (SyncML status 401, with a `Chal`).
    #[error("malformed credentials: {0}")]
    Malformed(#[from] Malformed),
    /// The credential uses a scheme, format or algorithm this side does not accept for the
    /// situation (SyncML status 401, with a `Chal` naming the wanted scheme).
    #[error("unsupported authentication: {0}")]
    Unsupported(Unsupported),
    /// Well-formed credentials that do not match (wrong name, password or nonce) (SyncML 401).
    #[error("invalid credentials")]
    Rejected,
}

/// Parse failures of a received credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// The data is not valid base64.
    #[error("invalid base64")]
    Base64,
    /// A Basic credential without a `:` between user name and password.
    #[error("basic credential has no ':' separator")]
    MissingColon,
    /// A Basic credential that is not UTF-8.
    #[error("basic credential is not UTF-8")]
    NotUtf8,
    /// An MD5/HMAC digest that decodes to neither 16 bytes nor 32 hex characters.
    #[error("digest has {0} bytes, expected 16")]
    DigestLength(usize),
    /// The `x-syncml-hmac` header could not be parsed; names what was wrong.
    #[error("x-syncml-hmac header: {0}")]
    HmacHeader(&'static str),
}

/// Schemes, formats and algorithms that are understood but not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unsupported {
    /// A `<Meta><Format>` other than `b64` (or absent).
    #[error("credential format {0:?}")]
    Format(String),
    /// An `x-syncml-hmac` algorithm other than MD5.
    #[error("HMAC algorithm {0:?}")]
    HmacAlgorithm(String),
    /// `syncml:auth-MAC` presented in `<Cred>`, which DM Security §5.4.1 forbids.
    #[error("syncml:auth-MAC is carried in the x-syncml-hmac header, not in Cred")]
    HmacInCred,
    /// A `<Meta><Type>` in `<Cred>` that names no DM authentication scheme.
    #[error("authentication type {0:?}")]
    AuthType(String),
}

impl AuthError {
    /// The SyncML status the peer is told (DM Protocol §2.4.1 / RepPro status codes): 407
    /// "authentication required" when credentials are missing, 401 "unauthorized" otherwise.
    /// Both are sent with a `Chal` carrying a new nonce.
    pub fn status_code(&self) -> u16 {
        match self {
            AuthError::Missing => 407,
            AuthError::Malformed(_) | AuthError::Unsupported(_) | AuthError::Rejected => 401,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Basic (DM Security §5.3, DM RepPro Cred)
// ---------------------------------------------------------------------------------------------

/// Encodes a Basic credential: `b64(username:password)`.
pub fn basic_encode(creds: &Credentials) -> String {
    STANDARD.encode(format!("{}:{}", creds.username, creds.secret))
}

/// Decodes a Basic credential, splitting at the first `:` (user names cannot contain a colon,
/// passwords can).
pub fn basic_decode(data: &str) -> Result<Credentials, AuthError> {
    let raw = decode_b64_lenient(data)?;
    let text = String::from_utf8(raw).map_err(|_| Malformed::NotUtf8)?;
    let (user, secret) = text.split_once(':').ok_or(Malformed::MissingColon)?;
    Ok(Credentials::new(user, secret))
}

// ---------------------------------------------------------------------------------------------
// MD5 digest (DM Security §5.3.2)
// ---------------------------------------------------------------------------------------------

/// The MD5 digest of DM Security §5.3.2: `H(B64(H(username:password)):nonce)`, with the nonce
/// in the given form.
pub fn md5_digest(creds: &Credentials, nonce: &Nonce, form: NonceForm) -> [u8; 16] {
    md5_digest_with_key(&DigestKey::from(creds), nonce, form)
}

/// [`md5_digest`] from a stored [`DigestKey`].
pub fn md5_digest_with_key(key: &DigestKey, nonce: &Nonce, form: NonceForm) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(STANDARD.encode(key.hash).as_bytes());
    h.update(b":");
    update_nonce(&mut h, nonce, form);
    h.finalize().into()
}

/// The `<Cred><Data>` value for `syncml:auth-md5`: `b64(md5_digest(..))`.
pub fn md5_cred_data(creds: &Credentials, nonce: &Nonce, form: NonceForm) -> String {
    STANDARD.encode(md5_digest(creds, nonce, form))
}

/// [`md5_cred_data`] from a stored [`DigestKey`].
pub fn md5_cred_data_with_key(key: &DigestKey, nonce: &Nonce, form: NonceForm) -> String {
    STANDARD.encode(md5_digest_with_key(key, nonce, form))
}

fn update_nonce(h: &mut Md5, nonce: &Nonce, form: NonceForm) {
    match form {
        NonceForm::Raw => h.update(nonce.as_bytes()),
        NonceForm::B64Text => h.update(nonce.to_b64().as_bytes()),
    }
}

// ---------------------------------------------------------------------------------------------
// HMAC (DM Security §5.4)
// ---------------------------------------------------------------------------------------------

/// The HMAC of DM Security §5.4.2: `H(B64(H(username:password)):nonce:B64(H(body)))`, where
/// `body` is the entire message body as sent (XML or WBXML bytes, §5.4.3).
///
/// Package 0 uses the same construction over the trigger (DM Notification 1.2 §6.2.2.2).
pub fn hmac_digest(creds: &Credentials, nonce: &Nonce, form: NonceForm, body: &[u8]) -> [u8; 16] {
    hmac_digest_with_key(&DigestKey::from(creds), nonce, form, body)
}

/// [`hmac_digest`] from a stored [`DigestKey`].
pub fn hmac_digest_with_key(
    key: &DigestKey,
    nonce: &Nonce,
    form: NonceForm,
    body: &[u8],
) -> [u8; 16] {
    let body_hash: [u8; 16] = Md5::digest(body).into();
    let mut h = Md5::new();
    h.update(STANDARD.encode(key.hash).as_bytes());
    h.update(b":");
    update_nonce(&mut h, nonce, form);
    h.update(b":");
    h.update(STANDARD.encode(body_hash).as_bytes());
    h.finalize().into()
}

/// HMAC algorithms of the `x-syncml-hmac` header (DM Security §5.4.3: only MD5 is defined).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HmacAlgorithm {
    /// `algorithm=MD5`, also the default when the parameter is omitted.
    #[default]
    Md5,
}

/// A parsed `x-syncml-hmac` header value (DM Security §5.4.3):
/// `algorithm=MD5, username="name", mac=b64value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacHeader {
    /// The digest algorithm; MD5 when the parameter was omitted.
    pub algorithm: HmacAlgorithm,
    /// The sender's identity (the `LocName` of the SyncHdr `Source`, or the server identifier).
    pub username: String,
    /// The base64 MAC as received (verification decodes it leniently).
    pub mac: String,
}

impl HmacHeader {
    /// Builds the header a sender attaches to `body` (spec forms: raw nonce, raw digest).
    pub fn compute(creds: &Credentials, nonce: &Nonce, body: &[u8]) -> HmacHeader {
        HmacHeader::compute_with_key(&DigestKey::from(creds), nonce, body)
    }

    /// [`HmacHeader::compute`] from a stored [`DigestKey`].
    pub fn compute_with_key(key: &DigestKey, nonce: &Nonce, body: &[u8]) -> HmacHeader {
        HmacHeader {
            algorithm: HmacAlgorithm::Md5,
            username: key.username.clone(),
            mac: STANDARD.encode(hmac_digest_with_key(key, nonce, NonceForm::Raw, body)),
        }
    }

    /// Parses a header value liberally: parameters in any order, separated by commas and/or
    /// whitespace, names case-insensitive, values quoted or not; `algorithm` optional (MD5).
    /// A leading `x-syncml-hmac:` (a whole header line) is tolerated. Unknown parameters are
    /// ignored, as HTTP parameter lists allow (§5.4.3 uses the RFC 2616 `#rule`).
    pub fn parse(value: &str) -> Result<HmacHeader, AuthError> {
        let mut rest = value.trim();
        if let Some(head) = rest.get(..HMAC_HEADER_NAME.len())
            && head.eq_ignore_ascii_case(HMAC_HEADER_NAME)
            && let Some(after) = rest
                .get(HMAC_HEADER_NAME.len()..)
                .and_then(|r| r.trim_start().strip_prefix(':'))
        {
            rest = after;
        }
        let mut algorithm = None;
        let mut username = None;
        let mut mac = None;
        loop {
            rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
            if rest.is_empty() {
                break;
            }
            let eq = rest
                .find('=')
                .ok_or(Malformed::HmacHeader("parameter without '='"))?;
            let name = rest[..eq].trim();
            if name.is_empty() || name.contains([',', '"']) {
                return Err(Malformed::HmacHeader("bad parameter name").into());
            }
            rest = rest[eq + 1..].trim_start();
            let value;
            if let Some(quoted) = rest.strip_prefix('"') {
                let (v, after) = parse_quoted(quoted)
                    .ok_or(Malformed::HmacHeader("unterminated quoted string"))?;
                value = v;
                rest = after;
            } else {
                let end = rest
                    .find(|c: char| c == ',' || c.is_whitespace())
                    .unwrap_or(rest.len());
                value = rest[..end].to_string();
                rest = &rest[end..];
            }
            let slot = if name.eq_ignore_ascii_case("algorithm") {
                &mut algorithm
            } else if name.eq_ignore_ascii_case("username") {
                &mut username
            } else if name.eq_ignore_ascii_case("mac") {
                &mut mac
            } else {
                continue;
            };
            if slot.is_some() {
                return Err(Malformed::HmacHeader("duplicate parameter").into());
            }
            *slot = Some(value);
        }
        let algorithm = match algorithm {
            None => HmacAlgorithm::Md5,
            Some(a) if a.eq_ignore_ascii_case("MD5") => HmacAlgorithm::Md5,
            Some(a) => return Err(AuthError::Unsupported(Unsupported::HmacAlgorithm(a))),
        };
        let username = username.ok_or(Malformed::HmacHeader("missing username"))?;
        let mac = mac.ok_or(Malformed::HmacHeader("missing mac"))?;
        if mac.is_empty() {
            return Err(Malformed::HmacHeader("empty mac").into());
        }
        Ok(HmacHeader {
            algorithm,
            username,
            mac,
        })
    }

    /// The canonical header value: `algorithm=MD5, username="name", mac=value`
    /// (same as `Display`).
    pub fn to_header_value(&self) -> String {
        self.to_string()
    }

    /// Verifies this header against the expected credentials, the nonce this side issued and
    /// the exact body bytes received. The user name must match exactly; the MAC is compared in
    /// constant time, accepting the [`NonceForm::B64Text`] and [`DigestEncoding::Hex`] quirks.
    pub fn verify(
        &self,
        expected: &Credentials,
        nonce: &Nonce,
        body: &[u8],
    ) -> Result<Verified, AuthError> {
        self.verify_with_key(&DigestKey::from(expected), nonce, body)
    }

    /// [`HmacHeader::verify`] against a stored [`DigestKey`].
    pub fn verify_with_key(
        &self,
        expected: &DigestKey,
        nonce: &Nonce,
        body: &[u8],
    ) -> Result<Verified, AuthError> {
        let received = decode_digest(&self.mac)?;
        let name_ok = self.username.as_bytes().ct_eq(expected.username.as_bytes());
        let (nonce_form, digest_encoding) = match_digest(&received, name_ok.into(), |form| {
            hmac_digest_with_key(expected, nonce, form, body)
        })?;
        Ok(Verified {
            auth_type: AuthType::Hmac,
            username: expected.username.clone(),
            nonce_form,
            digest_encoding,
        })
    }
}

impl fmt::Display for HmacHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let HmacAlgorithm::Md5 = self.algorithm;
        f.write_str("algorithm=MD5, username=\"")?;
        for c in self.username.chars() {
            if c == '"' || c == '\\' {
                f.write_str("\\")?;
            }
            write!(f, "{c}")?;
        }
        write!(f, "\", mac={}", self.mac)
    }
}

/// Parses the rest of an RFC 2616 quoted-string (after the opening quote); returns the unescaped
/// value and the text after the closing quote.
fn parse_quoted(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => out.push(chars.next()?.1),
            c => out.push(c),
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// High-level helpers for the session engine
// ---------------------------------------------------------------------------------------------

/// Builds the `<Cred>` this side sends: Basic or MD5 with the spec forms (raw nonce). The
/// server uses its server identifier/secret and the device's last nonce; a client its
/// user name/secret and the server's nonce. Returns `None` for [`AuthType::Hmac`], which is not
/// sent in `<Cred>` (DM Security §5.4.1): use [`HmacHeader::compute`].
pub fn make_cred(auth_type: AuthType, creds: &Credentials, nonce: &Nonce) -> Option<WireCred> {
    let data = match auth_type {
        AuthType::Basic => basic_encode(creds),
        AuthType::Md5 => md5_cred_data(creds, nonce, NonceForm::Raw),
        AuthType::Hmac => return None,
    };
    Some(WireCred {
        type_: auth_type.wire_name(),
        format: FORMAT_B64,
        data,
    })
}

/// [`make_cred`] from a stored [`DigestKey`]: MD5 only. `None` for [`AuthType::Basic`] (a Basic
/// credential *is* the plaintext secret, which a key does not hold) and [`AuthType::Hmac`].
pub fn make_cred_with_key(auth_type: AuthType, key: &DigestKey, nonce: &Nonce) -> Option<WireCred> {
    match auth_type {
        AuthType::Md5 => Some(WireCred {
            type_: auth_type.wire_name(),
            format: FORMAT_B64,
            data: md5_cred_data_with_key(key, nonce, NonceForm::Raw),
        }),
        AuthType::Basic | AuthType::Hmac => None,
    }
}

/// Verifies a received `<Cred>` element: its `<Meta><Type>` names the scheme (Basic when absent,
/// the SyncML default), `<Meta><Format>` the encoding, and its data is the credential — b64 text,
/// or raw digest bytes as WBXML `OPAQUE` (some devices), which are base64-encoded here so that
/// both forms verify alike.
pub fn verify_cred_element(
    cred: &crate::Cred,
    expected: &Credentials,
    nonce: &Nonce,
) -> Result<Verified, AuthError> {
    verify_cred_element_with_key(cred, &DigestKey::from(expected), nonce)
}

/// [`verify_cred_element`] against a stored [`DigestKey`].
pub fn verify_cred_element_with_key(
    cred: &crate::Cred,
    expected: &DigestKey,
    nonce: &Nonce,
) -> Result<Verified, AuthError> {
    let meta = cred.meta.as_ref();
    let auth_type = match meta.and_then(|m| m.type_.as_deref()) {
        None => AuthType::Basic,
        Some(t) => AuthType::from_wire(t)
            .ok_or_else(|| AuthError::Unsupported(Unsupported::AuthType(t.to_string())))?,
    };
    let text = match &cred.data {
        crate::Data::Text(s) => std::borrow::Cow::Borrowed(s.as_str()),
        // Text in OPAQUE may carry a C string's NUL terminator (decision 71).
        crate::Data::Opaque(b) => match std::str::from_utf8(crate::strip_nul_terminator(b)) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => std::borrow::Cow::Owned(STANDARD.encode(b)),
        },
    };
    let format = meta.and_then(|m| m.format.as_deref());
    verify_cred_with_key(auth_type, format, &text, expected, nonce)
}

/// Verifies a received `<Cred>` against the credentials expected for the peer and the nonce this
/// side last issued to it. `wire_format` is `<Meta><Format>` (absent is tolerated and treated
/// as `b64`; DM Security requires `b64`). For MD5 the quirk forms are accepted and reported in
/// [`Verified`]. Comparisons are constant-time.
pub fn verify_cred(
    auth_type: AuthType,
    wire_format: Option<&str>,
    wire_data: &str,
    expected: &Credentials,
    nonce: &Nonce,
) -> Result<Verified, AuthError> {
    verify_cred_with_key(
        auth_type,
        wire_format,
        wire_data,
        &DigestKey::from(expected),
        nonce,
    )
}

/// [`verify_cred`] against a stored [`DigestKey`]. A Basic credential is checked by hashing
/// the received `user:password` and comparing with the key (constant time).
pub fn verify_cred_with_key(
    auth_type: AuthType,
    wire_format: Option<&str>,
    wire_data: &str,
    expected: &DigestKey,
    nonce: &Nonce,
) -> Result<Verified, AuthError> {
    if let Some(f) = wire_format
        && !f.trim().eq_ignore_ascii_case(FORMAT_B64)
    {
        return Err(AuthError::Unsupported(Unsupported::Format(f.to_string())));
    }
    if wire_data.trim().is_empty() {
        return Err(AuthError::Missing);
    }
    match auth_type {
        AuthType::Basic => {
            let got = basic_decode(wire_data)?;
            // Compare H(user:password) rather than the strings themselves so that the
            // comparison time does not depend on the secret's length.
            let ok = got.user_pass_hash().ct_eq(&expected.hash);
            if bool::from(ok) {
                Ok(Verified {
                    auth_type,
                    username: got.username,
                    nonce_form: NonceForm::Raw,
                    digest_encoding: DigestEncoding::Raw,
                })
            } else {
                Err(AuthError::Rejected)
            }
        }
        AuthType::Md5 => {
            let received = decode_digest(wire_data)?;
            let (nonce_form, digest_encoding) = match_digest(&received, true, |form| {
                md5_digest_with_key(expected, nonce, form)
            })?;
            Ok(Verified {
                auth_type,
                username: expected.username.clone(),
                nonce_form,
                digest_encoding,
            })
        }
        AuthType::Hmac => Err(AuthError::Unsupported(Unsupported::HmacInCred)),
    }
}

// ---------------------------------------------------------------------------------------------
// Internals
// ---------------------------------------------------------------------------------------------

/// A received digest, after base64 decoding.
struct ReceivedDigest {
    bytes: [u8; 16],
    encoding: DigestEncoding,
}

fn decode_b64_lenient(text: &str) -> Result<Vec<u8>, AuthError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    LENIENT_B64
        .decode(compact.as_bytes())
        .map_err(|_| Malformed::Base64.into())
}

fn decode_digest(text: &str) -> Result<ReceivedDigest, AuthError> {
    let raw = decode_b64_lenient(text)?;
    if let Ok(bytes) = <[u8; 16]>::try_from(raw.as_slice()) {
        return Ok(ReceivedDigest {
            bytes,
            encoding: DigestEncoding::Raw,
        });
    }
    if raw.len() == 32 {
        let mut bytes = [0u8; 16];
        let mut ok = true;
        for (out, pair) in bytes.iter_mut().zip(raw.chunks_exact(2)) {
            match (hex_val(pair[0]), hex_val(pair[1])) {
                (Some(hi), Some(lo)) => *out = (hi << 4) | lo,
                _ => ok = false,
            }
        }
        if ok {
            return Ok(ReceivedDigest {
                bytes,
                encoding: DigestEncoding::Hex,
            });
        }
    }
    Err(Malformed::DigestLength(raw.len()).into())
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Compares a received digest with the expected one for both nonce forms, in constant time, and
/// with `extra_ok` (e.g. the user-name check) folded in before deciding.
fn match_digest(
    received: &ReceivedDigest,
    extra_ok: bool,
    expected: impl Fn(NonceForm) -> [u8; 16],
) -> Result<(NonceForm, DigestEncoding), AuthError> {
    let raw_ok = bool::from(received.bytes.ct_eq(&expected(NonceForm::Raw)));
    let text_ok = bool::from(received.bytes.ct_eq(&expected(NonceForm::B64Text)));
    match (extra_ok, raw_ok, text_ok) {
        (true, true, _) => Ok((NonceForm::Raw, received.encoding)),
        (true, false, true) => Ok((NonceForm::B64Text, received.encoding)),
        _ => Err(AuthError::Rejected),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for t in [AuthType::Basic, AuthType::Md5, AuthType::Hmac] {
            assert_eq!(AuthType::from_wire(t.wire_name()), Some(t));
        }
        assert_eq!(
            AuthType::from_wire(" syncml:auth-MD5 "),
            Some(AuthType::Md5)
        );
        assert_eq!(AuthType::from_wire("syncml:auth-mac"), Some(AuthType::Hmac));
        assert_eq!(AuthType::from_wire("syncml:auth-x509"), None);
    }

    #[test]
    fn debug_hides_secret() {
        let c = Credentials::new("alice", "hunter2");
        let s = format!("{c:?}");
        assert!(s.contains("alice") && !s.contains("hunter2"));
        let w = make_cred(AuthType::Basic, &c, &Nonce::default()).unwrap();
        assert!(!format!("{w:?}").contains(&w.data));
    }

    #[test]
    fn basic_decode_errors() {
        assert_eq!(
            basic_decode("!!!").unwrap_err(),
            AuthError::Malformed(Malformed::Base64)
        );
        assert_eq!(
            basic_decode(&STANDARD.encode("nocolon")).unwrap_err(),
            AuthError::Malformed(Malformed::MissingColon)
        );
        assert_eq!(
            basic_decode(&STANDARD.encode([0xff, b':', 0xfe])).unwrap_err(),
            AuthError::Malformed(Malformed::NotUtf8)
        );
        let c = basic_decode(&STANDARD.encode("u:p:w")).unwrap();
        assert_eq!((c.username.as_str(), c.secret.as_str()), ("u", "p:w"));
    }

    #[test]
    fn status_codes() {
        assert_eq!(AuthError::Missing.status_code(), 407);
        assert_eq!(AuthError::Rejected.status_code(), 401);
        assert_eq!(AuthError::from(Malformed::Base64).status_code(), 401);
    }

    #[test]
    fn digest_key_round_trip_and_debug() {
        let c = Credentials::new("funambol", "srvpwd");
        let k = DigestKey::from_credentials(&c);
        let loaded = DigestKey::from_b64("funambol", &k.to_b64()).unwrap();
        assert_eq!(loaded, k);
        assert_eq!(k.username(), "funambol");
        let dbg = format!("{k:?}");
        assert!(dbg.contains("funambol") && !dbg.contains(&k.to_b64()));
        assert!(!dbg.contains("srvpwd"));
        assert_eq!(
            DigestKey::from_b64("x", "AAAA").unwrap_err(),
            AuthError::Malformed(Malformed::DigestLength(3))
        );
    }

    #[test]
    fn digest_key_matches_plaintext_functions() {
        // The captured server Cred (pkg2-server.xml): funambol/srvpwd, empty nonce.
        let c = Credentials::new("funambol", "srvpwd");
        let k = DigestKey::from(&c);
        let n = Nonce::default();
        let w = make_cred_with_key(AuthType::Md5, &k, &n).unwrap();
        assert_eq!(w.data, "Lx7CSZp0iHRedCEbryGJuw==");
        assert_eq!(make_cred(AuthType::Md5, &c, &n).unwrap(), w);
        assert!(make_cred_with_key(AuthType::Basic, &k, &n).is_none());
        assert!(make_cred_with_key(AuthType::Hmac, &k, &n).is_none());
        let body = b"<SyncML/>";
        assert_eq!(
            HmacHeader::compute(&c, &n, body),
            HmacHeader::compute_with_key(&k, &n, body)
        );
        let h = HmacHeader::compute_with_key(&k, &n, body);
        assert!(h.verify_with_key(&k, &n, body).is_ok());
        assert_eq!(
            h.verify_with_key(&k, &n, b"other").unwrap_err(),
            AuthError::Rejected
        );
    }

    #[test]
    fn basic_verifies_against_digest_key() {
        let k = DigestKey::from(&Credentials::new("funambol", "funambol"));
        let n = Nonce::default();
        let ok = verify_cred_with_key(
            AuthType::Basic,
            Some("b64"),
            "ZnVuYW1ib2w6ZnVuYW1ib2w=",
            &k,
            &n,
        )
        .unwrap();
        assert_eq!(ok.username, "funambol");
        let wrong = basic_encode(&Credentials::new("funambol", "nope"));
        assert_eq!(
            verify_cred_with_key(AuthType::Basic, None, &wrong, &k, &n).unwrap_err(),
            AuthError::Rejected
        );
        let md5 = md5_cred_data_with_key(&k, &n, NonceForm::Raw);
        assert!(verify_cred_with_key(AuthType::Md5, Some("b64"), &md5, &k, &n).is_ok());
    }

    #[test]
    fn hmac_header_canonical_round_trip() {
        let h = HmacHeader {
            algorithm: HmacAlgorithm::Md5,
            username: "Robert \"Bob\" Jordan".into(),
            mac: "abc=".into(),
        };
        assert_eq!(HmacHeader::parse(&h.to_header_value()).unwrap(), h);
    }
}
