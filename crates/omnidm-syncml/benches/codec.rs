//! Codec throughput: decode and encode in MB/s for XML and WBXML, on a realistic message mix and
//! on one message carrying a ~1 MB TNDS document, against raw tokenizer baselines.
//!
//! Run by hand (never part of the test suite):
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-bench cargo bench -p omnidm-syncml --bench codec
//! ```
//!
//! Criterion groups (all `Throughput::BytesDecimal`, so criterion prints MB/s):
//! - `decode/{mix,tnds_1mb}/{xml,wbxml}`: [`decode`] over the input bytes.
//! - `encode/…`: [`encode`]; throughput counted on the output bytes.
//! - `encoded_size/…`: [`encoded_size`], counted on the bytes it predicts, so its MB/s compares
//!   directly with `encode`'s.
//! - `raw/{mix,tnds_1mb}/{quick_xml,wbxml_reader}`: the tokenizers alone, every event
//!   `black_box`ed: the ceiling the decoder is measured against.
//!
//! After criterion, a summary pass times our decode and the raw tokenizer in alternating short
//! batches and prints the median ratio per round. Ratios taken that way survive other builds on
//! a shared machine far better than two criterion figures measured a minute apart. The summary
//! only runs under `cargo bench` (criterion's `--bench` flag), not when `cargo test --benches`
//! smoke-runs this target.
//!
//! Inputs are built here rather than checked in: the captured fixtures of
//! `tests/data/fixtures/` (packages 1–4), two constructed typical packages (a server package 2
//! with 10 Replace/Get/Exec commands on DMAcc/FUMO nodes, a device package 3 with 20 Results),
//! and a device Results whose single `<Data>` holds a generated ~1 MB TNDS `<MgmtTree>`, escaped
//! as text in XML and an inline string in WBXML.

// A benchmark whose inputs do not decode measures nothing: setup failures abort loudly, as in
// tests.
#![allow(clippy::expect_used, clippy::panic)]

use criterion::{BenchmarkId, Criterion, Throughput};
use omnidm_syncml::{
    Command, Cred, Data, Encoding, Exec, Header, Item, ItemCommand, Location, Message, Meta,
    Results, Status, StatusCode, decode, encode, encoded_size,
};
use std::hint::black_box;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

/// A set of messages benchmarked together: every iteration processes all of them.
struct Corpus {
    name: &'static str,
    messages: Vec<Message>,
    /// Bytes fed to XML decode. Captured fixtures are decoded as captured, constructed messages
    /// as we encode them.
    xml: Vec<Vec<u8>>,
    /// `encode(m, Wbxml)` for every message.
    wbxml: Vec<Vec<u8>>,
}

impl Corpus {
    fn new(name: &'static str, sources: Vec<(Message, Option<Vec<u8>>)>) -> Self {
        let mut corpus = Corpus {
            name,
            messages: Vec::new(),
            xml: Vec::new(),
            wbxml: Vec::new(),
        };
        for (message, captured) in sources {
            let xml = captured.unwrap_or_else(|| encode(&message, Encoding::Xml));
            let wbxml = encode(&message, Encoding::Wbxml);
            // The benchmark is meaningless if the inputs do not decode to the same message.
            let from_xml = decode(&xml).expect("XML input decodes").message;
            let from_wbxml = decode(&wbxml).expect("WBXML input decodes").message;
            assert_eq!(from_xml, message, "{name}: XML input round trip");
            assert_eq!(from_wbxml, message, "{name}: WBXML input round trip");
            corpus.messages.push(message);
            corpus.xml.push(xml);
            corpus.wbxml.push(wbxml);
        }
        corpus
    }

    fn inputs(&self, encoding: Encoding) -> &[Vec<u8>] {
        match encoding {
            Encoding::Xml => &self.xml,
            Encoding::Wbxml => &self.wbxml,
        }
    }

    fn input_bytes(&self, encoding: Encoding) -> u64 {
        self.inputs(encoding).iter().map(|b| b.len() as u64).sum()
    }

    fn output_bytes(&self, encoding: Encoding) -> u64 {
        self.messages
            .iter()
            .map(|m| encode(m, encoding).len() as u64)
            .sum()
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn captured(name: &str) -> (Message, Option<Vec<u8>>) {
    let bytes = fixture(name);
    let message = decode(&bytes).expect("fixture decodes").message;
    (message, Some(bytes))
}

const SERVER: &str = "https://dm.example.com/omnidm/dm";
const DEVICE: &str = "IMEI:356938035643809";

fn server_header(msg_id: u32) -> Header {
    Header {
        session_id: "1A2F".into(),
        msg_id,
        target: Location::new(DEVICE),
        source: Location::new(SERVER),
        cred: Some(Cred {
            meta: Some(Meta::with_format("b64").and_type("syncml:auth-md5")),
            data: Data::Text("Lx7CSZp0iHRedCEbryGJuw==".into()),
        }),
        meta: Some(Meta {
            max_msg_size: Some(16_000),
            max_obj_size: Some(4_000_000),
            ..Meta::default()
        }),
        ..Header::default()
    }
}

fn device_header(msg_id: u32) -> Header {
    Header {
        session_id: "1A2F".into(),
        msg_id,
        target: Location::new(SERVER),
        source: Location::new(DEVICE),
        meta: Some(Meta {
            max_msg_size: Some(16_000),
            ..Meta::default()
        }),
        ..Header::default()
    }
}

fn status(cmd_id: u32, msg_ref: u32, cmd_ref: u32, cmd: &str, code: StatusCode) -> Command {
    Command::Status(Status {
        cmd_id,
        msg_ref,
        cmd_ref,
        cmd: cmd.into(),
        target_refs: Vec::new(),
        source_refs: Vec::new(),
        cred: None,
        chal: None,
        code,
        items: Vec::new(),
    })
}

fn chr_item(target: &str, value: &str) -> Item {
    Item {
        target: Some(Location::new(target)),
        meta: Some(Meta::with_format("chr").and_type("text/plain")),
        data: Some(Data::Text(value.into())),
        ..Item::default()
    }
}

/// A typical server package 2: header statuses, then DMAcc provisioning (Replace), FUMO
/// queries (Get) and a firmware update (Replace PkgURL + Exec with a correlator): 10 commands
/// after the statuses.
fn server_package2() -> Message {
    let acc = "./DMAcc/omnidm";
    let fumo = "./FUMO/fw1";
    let mut header_status = status(1, 1, 0, "SyncHdr", StatusCode::AUTHENTICATION_ACCEPTED);
    if let Command::Status(s) = &mut header_status {
        s.target_refs.push(SERVER.into());
        s.source_refs.push(DEVICE.into());
    }
    let mut commands = vec![
        header_status,
        status(2, 1, 1, "Alert", StatusCode::OK),
        status(3, 1, 2, "Replace", StatusCode::OK),
    ];
    let replace = |cmd_id, items| {
        Command::Replace(ItemCommand {
            cmd_id,
            items,
            ..ItemCommand::default()
        })
    };
    let get = |cmd_id, uri: &str| {
        Command::Get(ItemCommand {
            cmd_id,
            items: vec![Item::target(uri)],
            ..ItemCommand::default()
        })
    };
    commands.extend([
        replace(
            4,
            vec![
                chr_item(&format!("{acc}/ServerID"), "omnidm"),
                chr_item(&format!("{acc}/Name"), "OmniDM production"),
                chr_item(&format!("{acc}/AAuthPref"), "syncml:auth-md5"),
            ],
        ),
        replace(
            5,
            vec![chr_item(
                &format!("{acc}/AppAddr/srv/Addr"),
                "https://dm.example.com/omnidm/dm",
            )],
        ),
        replace(
            6,
            vec![
                chr_item(&format!("{acc}/AppAuth/srv/AAuthLevel"), "SRVCRED"),
                chr_item(&format!("{acc}/AppAuth/srv/AAuthType"), "DIGEST"),
                chr_item(&format!("{acc}/AppAuth/srv/AAuthName"), "omnidm"),
                chr_item(
                    &format!("{acc}/AppAuth/srv/AAuthSecret"),
                    "c2VydmVyLXNlY3JldC0yMDI2",
                ),
                chr_item(
                    &format!("{acc}/AppAuth/srv/AAuthData"),
                    "bm9uY2UtMDEyMzQ1Njc4OQ==",
                ),
            ],
        ),
        get(7, "./DevDetail/SwV"),
        get(8, "./DevDetail/FwV"),
        get(9, &format!("{fumo}/State")),
        get(10, "./DevInfo/Ext/BatteryLevel"),
        replace(
            11,
            vec![chr_item(
                &format!("{fumo}/Download/PkgURL"),
                "https://fw.example.com/pkg/X1-4.2.1-to-4.3.0.bin?sig=8f2a&exp=1795000000",
            )],
        ),
        replace(12, vec![chr_item(&format!("{fumo}/PkgName"), "X1-4.3.0")]),
        Command::Exec(Exec {
            cmd_id: 13,
            correlator: Some("omnidm-job-000042".into()),
            item: Item {
                target: Some(Location::new(format!("{fumo}/DownloadAndUpdate"))),
                meta: Some(Meta::with_format("chr").and_type("text/plain")),
                data: Some(Data::Text("0".into())),
                ..Item::default()
            },
            ..Exec::default()
        }),
    ]);
    Message {
        header: server_header(2),
        body: omnidm_syncml::Body {
            commands,
            final_: true,
        },
    }
}

/// A typical device package 3: header and command statuses, then 20 Results of DevDetail,
/// DevInfo and FUMO nodes.
fn device_package3() -> Message {
    let values = [
        ("./DevInfo/DevId", "IMEI:356938035643809"),
        ("./DevInfo/Man", "Acme Devices"),
        ("./DevInfo/Mod", "X1"),
        ("./DevInfo/DmV", "1.2"),
        ("./DevInfo/Lang", "en-GB"),
        ("./DevDetail/DevTyp", "smartphone"),
        ("./DevDetail/OEM", "Acme Devices Ltd."),
        ("./DevDetail/FwV", "4.2.1-20260911"),
        ("./DevDetail/SwV", "X1_EU_4.2.1_b1187"),
        ("./DevDetail/HwV", "rev-C"),
        ("./DevDetail/LrgObj", "true"),
        ("./DevDetail/URI/MaxDepth", "0"),
        ("./DevDetail/URI/MaxTotLen", "0"),
        ("./DevDetail/URI/MaxSegLen", "0"),
        ("./FUMO/fw1/PkgName", "X1-4.2.1"),
        ("./FUMO/fw1/PkgVersion", "4.2.1"),
        ("./FUMO/fw1/State", "10"),
        ("./DevInfo/Ext/BatteryLevel", "87"),
        ("./DevInfo/Ext/FreeStorage", "5123456789"),
        (
            "./DevInfo/Ext/Network",
            "LTE; MCC=234; MNC=15; cell=0x1A2B3C",
        ),
    ];
    let mut commands = vec![status(1, 2, 0, "SyncHdr", StatusCode::OK)];
    let mut cmd_id = 2;
    for (cmd_ref, (uri, _)) in (3..).zip(values.iter()) {
        let mut s = status(cmd_id, 2, cmd_ref, "Get", StatusCode::OK);
        if let Command::Status(s) = &mut s {
            s.target_refs.push((*uri).into());
        }
        commands.push(s);
        cmd_id += 1;
    }
    for (cmd_ref, (uri, value)) in (3..).zip(values.iter()) {
        let format = if value.parse::<u64>().is_ok() {
            "int"
        } else if *value == "true" {
            "bool"
        } else {
            "chr"
        };
        commands.push(Command::Results(Results {
            cmd_id,
            msg_ref: Some(2),
            cmd_ref,
            items: vec![Item {
                source: Some(Location::new(*uri)),
                meta: Some(Meta::with_format(format).and_type("text/plain")),
                data: Some(Data::Text((*value).into())),
                ..Item::default()
            }],
            ..Results::default()
        }));
        cmd_id += 1;
    }
    Message {
        header: device_header(3),
        body: omnidm_syncml::Body {
            commands,
            final_: true,
        },
    }
}

/// A deterministic, realistic-looking TNDS document (OMA DM TNDS 1.2) of at least `min_len`
/// bytes: a `./Vendor/Acme` tree of applications, each with settings and a nested account
/// subtree. Indented and newline-separated, as devices and tools write it.
fn tnds(min_len: usize) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(min_len + 4096);
    s.push_str(
        "<MgmtTree xmlns=\"syncml:dmddf1.2\">\n  <VerDTD>1.2</VerDTD>\n  <Man>Acme Devices</Man>\n  \
         <Mod>X1</Mod>\n  <Node>\n    <NodeName>Acme</NodeName>\n    <Path>./Vendor</Path>\n    \
         <RTProperties>\n      <Format><node/></Format>\n      \
         <Type><DDFName>urn:acme:mo:config:1.0</DDFName></Type>\n    </RTProperties>\n",
    );
    let leaf = |s: &mut String, indent: &str, name: &str, format: &str, value: &str| {
        let _ = write!(
            s,
            "{indent}<Node>\n{indent}  <NodeName>{name}</NodeName>\n{indent}  <RTProperties>\n\
             {indent}    <ACL>Get=*&amp;Replace=omnidm</ACL>\n\
             {indent}    <Format><{format}/></Format>\n\
             {indent}    <Type><MIME>text/plain</MIME></Type>\n{indent}  </RTProperties>\n\
             {indent}  <Value>{value}</Value>\n{indent}</Node>\n"
        );
    };
    let interior = |s: &mut String, indent: &str, name: &str| {
        let _ = write!(
            s,
            "{indent}<Node>\n{indent}  <NodeName>{name}</NodeName>\n{indent}  <RTProperties>\n\
             {indent}    <Format><node/></Format>\n{indent}  </RTProperties>\n"
        );
    };
    let mut app = 0u32;
    while s.len() < min_len {
        app += 1;
        interior(&mut s, "    ", &format!("App{app:04}"));
        leaf(
            &mut s,
            "      ",
            "Name",
            "chr",
            &format!("Acme service {app}"),
        );
        leaf(
            &mut s,
            "      ",
            "Enabled",
            "bool",
            if app.is_multiple_of(3) {
                "false"
            } else {
                "true"
            },
        );
        leaf(
            &mut s,
            "      ",
            "Priority",
            "int",
            &format!("{}", app % 10),
        );
        leaf(
            &mut s,
            "      ",
            "URL",
            "chr",
            &format!("https://svc{app}.example.com/api/v2?region=eu&amp;tier=gold"),
        );
        leaf(
            &mut s,
            "      ",
            "Timeout",
            "int",
            &format!("{}", 1000 + app * 7 % 9000),
        );
        interior(&mut s, "      ", "Account");
        for (i, user) in ["primary", "backup"].into_iter().enumerate() {
            interior(&mut s, "        ", user);
            leaf(
                &mut s,
                "          ",
                "UserName",
                "chr",
                &format!("user{app}-{i}"),
            );
            leaf(
                &mut s,
                "          ",
                "Secret",
                "b64",
                "c2VjcmV0LXBhc3N3b3JkLTAxMjM0NTY3ODk=",
            );
            s.push_str("        </Node>\n");
        }
        s.push_str("      </Node>\n    </Node>\n");
    }
    s.push_str("  </Node>\n</MgmtTree>\n");
    s
}

/// A device Results answering `Get ./Vendor/Acme?list=Struct+Value` with one ~1 MB TNDS.
fn tnds_results() -> Message {
    let doc = tnds(1_000_000);
    Message {
        header: device_header(4),
        body: omnidm_syncml::Body {
            commands: vec![
                status(1, 3, 0, "SyncHdr", StatusCode::OK),
                Command::Results(Results {
                    cmd_id: 2,
                    msg_ref: Some(3),
                    cmd_ref: 4,
                    meta: Some(
                        Meta::with_format("xml").and_type("application/vnd.syncml.dmtnds+xml"),
                    ),
                    items: vec![Item {
                        source: Some(Location::new("./Vendor/Acme")),
                        data: Some(Data::Text(doc)),
                        ..Item::default()
                    }],
                    ..Results::default()
                }),
            ],
            final_: true,
        },
    }
}

fn mix() -> Corpus {
    Corpus::new(
        "mix",
        vec![
            captured("pkg1-client.xml"),
            captured("pkg2-server.xml"),
            captured("pkg3-client.xml"),
            captured("pkg4-server.xml"),
            (server_package2(), None),
            (device_package3(), None),
        ],
    )
}

fn large() -> Corpus {
    Corpus::new("tnds_1mb", vec![(tnds_results(), None)])
}

// ---------------------------------------------------------------------------------------------
// Work units
// ---------------------------------------------------------------------------------------------

fn decode_all(inputs: &[Vec<u8>]) {
    for bytes in inputs {
        let decoded = decode(black_box(bytes)).expect("decodes");
        black_box(decoded);
    }
}

fn encode_all(messages: &[Message], encoding: Encoding) {
    for m in messages {
        black_box(encode(black_box(m), encoding));
    }
}

fn size_all(messages: &[Message], encoding: Encoding) {
    for m in messages {
        black_box(encoded_size(black_box(m), encoding));
    }
}

/// Raw quick-xml event iteration, default configuration, as an application would start.
fn raw_quick_xml(inputs: &[Vec<u8>]) {
    for bytes in inputs {
        let text = std::str::from_utf8(bytes).expect("UTF-8");
        let mut reader = quick_xml::Reader::from_str(black_box(text));
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(ev) => {
                    black_box(ev);
                }
                Err(e) => panic!("raw quick-xml: {e}"),
            }
        }
    }
}

/// Raw WBXML token iteration with our own tokenizer (`omnidm-wbxml`).
fn raw_wbxml(inputs: &[Vec<u8>]) {
    for bytes in inputs {
        let mut reader =
            omnidm_wbxml::Reader::new(black_box(bytes), Default::default()).expect("WBXML header");
        while let Some(ev) = reader.next_event().expect("WBXML token") {
            black_box(ev);
        }
    }
}

fn encoding_name(e: Encoding) -> &'static str {
    match e {
        Encoding::Xml => "xml",
        Encoding::Wbxml => "wbxml",
    }
}

// ---------------------------------------------------------------------------------------------
// Criterion
// ---------------------------------------------------------------------------------------------

fn configure<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.warm_up_time(Duration::from_millis(700));
    g.measurement_time(Duration::from_secs(2));
    g.sample_size(20);
    g
}

fn bench_decode(c: &mut Criterion, corpora: &[Corpus]) {
    let mut g = configure(c, "decode");
    for corpus in corpora {
        for enc in [Encoding::Xml, Encoding::Wbxml] {
            g.throughput(Throughput::BytesDecimal(corpus.input_bytes(enc)));
            let inputs = corpus.inputs(enc);
            g.bench_function(BenchmarkId::new(corpus.name, encoding_name(enc)), |b| {
                b.iter(|| decode_all(inputs))
            });
        }
    }
    g.finish();
}

fn bench_encode(c: &mut Criterion, corpora: &[Corpus]) {
    let mut g = configure(c, "encode");
    for corpus in corpora {
        for enc in [Encoding::Xml, Encoding::Wbxml] {
            g.throughput(Throughput::BytesDecimal(corpus.output_bytes(enc)));
            g.bench_function(BenchmarkId::new(corpus.name, encoding_name(enc)), |b| {
                b.iter(|| encode_all(&corpus.messages, enc))
            });
        }
    }
    g.finish();
}

fn bench_size(c: &mut Criterion, corpora: &[Corpus]) {
    let mut g = configure(c, "encoded_size");
    for corpus in corpora {
        for enc in [Encoding::Xml, Encoding::Wbxml] {
            g.throughput(Throughput::BytesDecimal(corpus.output_bytes(enc)));
            g.bench_function(BenchmarkId::new(corpus.name, encoding_name(enc)), |b| {
                b.iter(|| size_all(&corpus.messages, enc))
            });
        }
    }
    g.finish();
}

fn bench_raw(c: &mut Criterion, corpora: &[Corpus]) {
    let mut g = configure(c, "raw");
    for corpus in corpora {
        g.throughput(Throughput::BytesDecimal(corpus.input_bytes(Encoding::Xml)));
        g.bench_function(BenchmarkId::new(corpus.name, "quick_xml"), |b| {
            b.iter(|| raw_quick_xml(&corpus.xml))
        });
        g.throughput(Throughput::BytesDecimal(
            corpus.input_bytes(Encoding::Wbxml),
        ));
        g.bench_function(BenchmarkId::new(corpus.name, "wbxml_reader"), |b| {
            b.iter(|| raw_wbxml(&corpus.wbxml))
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// Same-run ratio summary
// ---------------------------------------------------------------------------------------------

/// Seconds per call of `f`, timed over a batch of about `batch`.
fn time_batch(f: &mut dyn FnMut(), batch: Duration) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < batch {
        f();
        n += 1;
    }
    start.elapsed().as_secs_f64() / n as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times `ours` and `raw` in alternating batches; returns (ours MB/s, raw MB/s, ours/raw),
/// each the median over the rounds.
fn interleaved(bytes: u64, ours: &mut dyn FnMut(), raw: &mut dyn FnMut()) -> (f64, f64, f64) {
    const ROUNDS: usize = 15;
    let batch = Duration::from_millis(60);
    let mb = bytes as f64 / 1e6;
    // Warm caches and the allocator.
    time_batch(ours, batch);
    time_batch(raw, batch);
    let (mut a, mut b, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t_ours = time_batch(ours, batch);
        let t_raw = time_batch(raw, batch);
        a.push(mb / t_ours);
        b.push(mb / t_raw);
        r.push(t_raw / t_ours);
    }
    (median(&mut a), median(&mut b), median(&mut r))
}

fn summary(corpora: &[Corpus]) {
    println!();
    println!("Same-run summary (median of 15 alternating 60 ms rounds; MB = 10^6 bytes)");
    println!(
        "{:<10} {:<6} {:>12} {:>12} {:>12} {:>12} {:>10} {:>10} {:>10}",
        "input",
        "enc",
        "bytes",
        "decode MB/s",
        "raw MB/s",
        "dec/raw",
        "enc MB/s",
        "size MB/s",
        "size/enc"
    );
    for corpus in corpora {
        for enc in [Encoding::Xml, Encoding::Wbxml] {
            let inputs = corpus.inputs(enc);
            let mut ours = || decode_all(inputs);
            let (dec, raw, ratio) = match enc {
                Encoding::Xml => interleaved(corpus.input_bytes(enc), &mut ours, &mut || {
                    raw_quick_xml(inputs)
                }),
                Encoding::Wbxml => interleaved(corpus.input_bytes(enc), &mut ours, &mut || {
                    raw_wbxml(inputs)
                }),
            };
            let out = corpus.output_bytes(enc);
            let (enc_rate, size_rate, _) =
                interleaved(out, &mut || encode_all(&corpus.messages, enc), &mut || {
                    size_all(&corpus.messages, enc)
                });
            println!(
                "{:<10} {:<6} {:>12} {:>12.1} {:>12.1} {:>11.0}% {:>10.1} {:>10.1} {:>9.0}%",
                corpus.name,
                encoding_name(enc),
                corpus.input_bytes(enc),
                dec,
                raw,
                ratio * 100.0,
                enc_rate,
                size_rate,
                // Cost of encoded_size relative to encode: time ratio = rate ratio inverted.
                enc_rate / size_rate * 100.0,
            );
        }
    }
    println!(
        "raw = quick-xml event loop (XML) / omnidm-wbxml token loop (WBXML) over the same bytes"
    );
}

fn main() {
    let corpora = [mix(), large()];
    for corpus in &corpora {
        let messages = corpus.messages.len();
        let (x, w) = (
            corpus.input_bytes(Encoding::Xml),
            corpus.input_bytes(Encoding::Wbxml),
        );
        println!(
            "corpus {}: {messages} messages, XML {x} B, WBXML {w} B",
            corpus.name
        );
    }
    let mut c = Criterion::default().configure_from_args();
    bench_decode(&mut c, &corpora);
    bench_encode(&mut c, &corpora);
    bench_size(&mut c, &corpora);
    bench_raw(&mut c, &corpora);
    c.final_summary();
    if wants_summary() {
        summary(&corpora);
    }
}

/// The summary runs under a plain `cargo bench`, or when the filter is `summary`; not in test
/// mode, `--list`, `--profile-time`, or when a filter selects some criterion benchmarks.
fn wants_summary() -> bool {
    // Criterion options that take a value: what follows them is not a filter.
    const VALUED: &[&str] = &[
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--profile-time",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--plotting-backend",
        "--output-format",
        "--format",
        "--color",
        "-c",
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench")
        || args
            .iter()
            .any(|a| a == "--list" || a == "--test" || a.starts_with("--profile-time"))
    {
        return false;
    }
    let mut filter = None;
    let mut previous: Option<&str> = None;
    for a in &args {
        if !a.starts_with('-') && !previous.is_some_and(|p| VALUED.contains(&p)) {
            filter = Some(a.as_str());
        }
        previous = Some(a);
    }
    filter.is_none_or(|f| f == "summary")
}
