//! `rally abuse garbage`: connections that send what no client should, one case per
//! connection, reconnecting after each: random bytes, length prefixes that claim up to
//! 4 GiB, empty frames, valid frames around corrupted MessagePack (before and after the
//! handshake), deep nesting; over WebSocket also garbage and oversized HTTP heads,
//! unmasked frames, reserved opcodes, 2^62-byte length claims and text frames.
//!
//! Each case is run, then the connection is read until the server closes it (or
//! `hold_limit` passes: `held`, which a case that left a frame half-sent can reach
//! honestly, by the server's handshake or idle timeout). Counted per case: how the
//! connection ended (`error:BAD_MESSAGE`, `http:400`, `ws_close:1009`, ...).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rally_bots::source::connect_from;
use rally_bots::SourceIps;
use rally_protocol::msgpack;
use rally_protocol::ws::{self, Opcode};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout, Instant};

use super::tally::Tally;
use super::wire::{
    hello_body, io_kind, push_body, upgrade_request, Conn, Rng, Said, Target, Transport, MASK,
};

/// The pause after a connection refused at the door.
const REFUSED_PAUSE: Duration = Duration::from_millis(100);
/// Bounds the connect and the handshake of the cases that need one.
const STEP_LIMIT: Duration = Duration::from_secs(5);

/// One kind of garbage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// 1 to 2,048 random bytes, straight away.
    RandomBytes,
    /// A length prefix past `max_message_bytes` (up to 4 GiB), then some body.
    HugeLength,
    /// A zero length prefix.
    ZeroLength,
    /// A `hello` frame whose body has flipped, missing or extra bytes.
    CorruptHello,
    /// Well-formed MessagePack that is no message: wrong types, short arrays, maps,
    /// unknown types, 4,000 levels of nesting.
    WrongShape,
    /// A good `hello`, then a frame of corrupted MessagePack.
    GarbageAfterHello,
    /// Random bytes where the HTTP upgrade request should be.
    HttpGarbage,
    /// An upgrade request whose head is past the server's 8 KiB.
    HttpHugeHead,
    /// A valid upgrade, then an unmasked frame.
    WsUnmasked,
    /// A valid upgrade, then a frame with a reserved opcode.
    WsReservedOpcode,
    /// A valid upgrade, then a frame claiming 2^62 bytes.
    WsHugeLength,
    /// A valid upgrade, then a text frame.
    WsText,
    /// A valid upgrade, then random bytes.
    WsRandomFrames,
}

/// The cases of each transport (the raw-frame ones are shared).
const TCP_CASES: &[Case] = &[
    Case::RandomBytes,
    Case::HugeLength,
    Case::ZeroLength,
    Case::CorruptHello,
    Case::WrongShape,
    Case::GarbageAfterHello,
];
const WS_CASES: &[Case] = &[
    Case::HttpGarbage,
    Case::HttpHugeHead,
    Case::WsUnmasked,
    Case::WsReservedOpcode,
    Case::WsHugeLength,
    Case::WsText,
    Case::WsRandomFrames,
    Case::HugeLength,
    Case::CorruptHello,
    Case::WrongShape,
    Case::GarbageAfterHello,
];

impl Case {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Case::RandomBytes => "random_bytes",
            Case::HugeLength => "huge_length",
            Case::ZeroLength => "zero_length",
            Case::CorruptHello => "corrupt_hello",
            Case::WrongShape => "wrong_shape",
            Case::GarbageAfterHello => "garbage_after_hello",
            Case::HttpGarbage => "http_garbage",
            Case::HttpHugeHead => "http_huge_head",
            Case::WsUnmasked => "ws_unmasked",
            Case::WsReservedOpcode => "ws_reserved_opcode",
            Case::WsHugeLength => "ws_huge_length",
            Case::WsText => "ws_text",
            Case::WsRandomFrames => "ws_random_frames",
        }
    }

    /// The cases of `transport`.
    pub fn of(transport: Transport) -> &'static [Case] {
        match transport {
            Transport::Tcp => TCP_CASES,
            Transport::WebSocket => WS_CASES,
        }
    }
}

/// One garbage attack.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to.
    pub target: Target,
    /// Connections at once.
    pub conns: u32,
    /// How long the attack lasts.
    pub duration: Duration,
    /// Connection task `i` connects from the `i`-th address (round-robin).
    pub sources: Option<SourceIps>,
    /// Seeds the cases and their bytes (task `i` uses `seed + i`).
    pub seed: u64,
    /// How long to wait for the server to close after a case.
    pub hold_limit: Duration,
}

/// Runs the attack and returns what it saw, as JSON.
pub async fn run(opts: Options) -> Value {
    let opts = Arc::new(opts);
    let tally = Arc::new(Tally::default());
    let begin = Instant::now();
    let deadline = begin + opts.duration;
    let mut tasks = JoinSet::new();
    for i in 0..opts.conns {
        let (opts, tally) = (opts.clone(), tally.clone());
        tasks.spawn(async move { cases(i, &opts, &tally, deadline).await });
    }
    while tasks.join_next().await.is_some() {}
    let secs = begin.elapsed().as_secs_f64();
    let mut by_case: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (k, n) in tally.with_prefix("case:") {
        if let Some((case, ending)) = k.split_once(':') {
            by_case
                .entry(case.to_owned())
                .or_default()
                .insert(ending.to_owned(), n);
        }
    }
    json!({
        "attack": "garbage",
        "transports": opts.target.transports().iter().map(|t| t.name()).collect::<Vec<_>>(),
        "conns": opts.conns,
        "source_ips": opts.sources.map_or(0, |s| s.count()),
        "seed": opts.seed,
        "duration_secs": secs,
        "attempts": tally.get("attempts"),
        "attempts_per_sec": tally.get("attempts") as f64 / secs.max(1e-9),
        "endings": tally.with_prefix("ending:"),
        "by_case": by_case,
        "received": tally.with_prefix("received:"),
        "tally": tally.to_json(),
    })
}

/// Connection task `i`: a random case per connection until the deadline.
async fn cases(i: u32, opts: &Options, tally: &Tally, deadline: Instant) {
    let Some((transport, addr)) = opts.target.pick(u64::from(i)) else {
        return;
    };
    let source = opts.sources.map(|s| s.nth(u64::from(i)));
    let mut rng = Rng::new(opts.seed.wrapping_add(u64::from(i)));
    let all = Case::of(transport);
    let mut round = 0u64;
    while Instant::now() < deadline {
        // Every case in turn from a random start, so a short run still covers them all.
        let case = all[((u64::from(i) + round) % all.len() as u64) as usize];
        round += 1;
        tally.one("attempts");
        let left = deadline.saturating_duration_since(Instant::now());
        let stream = match timeout(STEP_LIMIT.min(left), connect_from(addr, source)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tally.one(format!("ending:connect:{}", io_kind(&e)));
                sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(_) => {
                tally.one("ending:connect:timeout");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let mut conn = Conn::new(stream, transport);
        // Past the deadline, a case that has not ended is cut short, not held.
        let left = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(1);
        let hold = opts.hold_limit.min(left);
        let ending = match run_case(&mut conn, case, addr, &mut rng, hold).await {
            Ok(Some(ending)) => ending,
            Ok(None) if hold < opts.hold_limit => "unfinished".to_owned(),
            Ok(None) => "held".to_owned(),
            Err(e) => format!("write:{}", io_kind(&e)),
        };
        for (k, n) in std::mem::take(&mut conn.heard) {
            tally.add(format!("received:{k}"), n);
        }
        tally.one(format!("case:{}:{ending}", case.name()));
        tally.one(format!("ending:{ending}"));
        if ending == "error:RATE_LIMITED" {
            // Refused at the door: a moment before the next, so this stays a garbage
            // attack rather than becoming a connection flood.
            sleep(REFUSED_PAUSE).await;
        }
    }
}

/// Sends `case` on `conn` and reads until the server closes; returns how it ended, or
/// `None` if the server held the connection open for `hold_limit`.
async fn run_case(
    conn: &mut Conn,
    case: Case,
    addr: std::net::SocketAddr,
    rng: &mut Rng,
    hold_limit: Duration,
) -> std::io::Result<Option<String>> {
    let t = conn.transport;
    let mut out = Vec::new();
    let upgraded = t == Transport::WebSocket
        && !matches!(
            case,
            Case::HttpGarbage | Case::HttpHugeHead | Case::RandomBytes
        );
    if upgraded {
        out.extend_from_slice(&upgrade_request(addr));
    }
    match case {
        Case::RandomBytes | Case::WsRandomFrames => {
            let len = 1 + rng.below(2048) as usize;
            rng.fill(&mut out, len);
        }
        Case::HugeLength => {
            let claims = [1u64 << 30, u64::from(u32::MAX), 4097 + rng.below(1 << 20)];
            let claim = claims[rng.below(claims.len() as u64) as usize];
            match t {
                Transport::Tcp => out.extend_from_slice(&(claim as u32).to_be_bytes()),
                Transport::WebSocket => {
                    out.extend_from_slice(&[0x82, 0x80 | 127]);
                    out.extend_from_slice(&claim.to_be_bytes());
                    out.extend_from_slice(&MASK);
                }
            }
            rng.fill(&mut out, 1024);
        }
        Case::ZeroLength => out.extend_from_slice(&[0, 0, 0, 0]),
        Case::CorruptHello => push_body(t, &corrupt(&hello_body("garbage"), rng), &mut out),
        Case::WrongShape => push_body(t, &wrong_shape(rng), &mut out),
        Case::GarbageAfterHello => {
            conn.stream.write_all(&out).await?;
            out.clear();
            match conn.handshake("garbage", STEP_LIMIT).await {
                Ok(true) => {}
                // Refused before the garbage (RATE_LIMITED at the door, say): counted
                // as any refusal is.
                Ok(false) => return Ok(Some(conn.verdict.ending(&Ok(0)))),
                Err(e) => return Ok(Some(format!("handshake:{}", io_kind(&e)))),
            }
            // An input whose payload is no MessagePack at all (0xc1 is never used).
            let mut body = vec![0x93, 0x04, 0x01];
            body.push(0xc1);
            let junk = rng.below(64) as usize;
            rng.fill(&mut body, junk);
            push_body(t, &body, &mut out);
        }
        Case::HttpGarbage => {
            let len = 16 + rng.below(1024) as usize;
            rng.fill(&mut out, len);
            out.extend_from_slice(b"\r\n\r\n");
        }
        Case::HttpHugeHead => {
            out.extend_from_slice(b"GET /ws HTTP/1.1\r\nHost: x\r\nX-Pad: ");
            out.resize(out.len() + 9000, b'a');
            out.extend_from_slice(b"\r\n\r\n");
        }
        Case::WsUnmasked => ws::write_frame(&mut out, Opcode::Binary, &hello_body("garbage")),
        Case::WsReservedOpcode => {
            // FIN + opcode 0x3 (reserved), masked, 4 bytes.
            out.extend_from_slice(&[0x83, 0x84]);
            out.extend_from_slice(&MASK);
            out.extend_from_slice(&[1, 2, 3, 4]);
        }
        Case::WsHugeLength => {
            out.extend_from_slice(&[0x82, 0x80 | 127]);
            out.extend_from_slice(&(1u64 << 62).to_be_bytes());
            out.extend_from_slice(&MASK);
            rng.fill(&mut out, 512);
        }
        Case::WsText => ws::write_masked_frame(&mut out, Opcode::Text, b"[1,1,\"text\"]", MASK),
    }
    if let Err(e) = conn.stream.write_all(&out).await {
        // The server may have cut the connection mid-write: its last words still count.
        let verdict = read_to_close(conn, Duration::from_secs(1)).await;
        return Ok(Some(
            verdict.unwrap_or_else(|| format!("write:{}", io_kind(&e))),
        ));
    }
    Ok(read_to_close(conn, hold_limit).await)
}

/// Reads until the server closes: how it ended, or `None` if it did not within `limit`.
async fn read_to_close(conn: &mut Conn, limit: Duration) -> Option<String> {
    match conn.read_until(limit, |_: &Said| None::<()>).await {
        Ok(_) => Some(conn.verdict.ending(&Ok(0))),
        Err(Some(e)) => Some(conn.verdict.ending(&Err(e))),
        Err(None) => None,
    }
}

/// `body` with one to three bytes flipped, cut short, or with junk after it.
fn corrupt(body: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = body.to_vec();
    match rng.below(3) {
        0 => {
            // Consecutive bytes from a random one, so no flip undoes another.
            let start = rng.below(b.len() as u64) as usize;
            for k in 0..=rng.below(3) as usize {
                let at = (start + k) % b.len();
                b[at] ^= 1 << rng.below(8);
            }
        }
        1 => b.truncate(1 + rng.below(b.len() as u64 - 1) as usize),
        _ => {
            let junk = 1 + rng.below(16) as usize;
            rng.fill(&mut b, junk);
        }
    }
    b
}

/// Well-formed MessagePack that is no valid first message.
fn wrong_shape(rng: &mut Rng) -> Vec<u8> {
    let mut b = Vec::new();
    match rng.below(6) {
        // hello with a string version.
        0 => {
            msgpack::write_array_len(&mut b, 3);
            msgpack::write_uint(&mut b, 1);
            msgpack::write_str(&mut b, "1");
            msgpack::write_str(&mut b, "x");
        }
        // A type and nothing else.
        1 => {
            msgpack::write_array_len(&mut b, 1);
            msgpack::write_uint(&mut b, 1);
        }
        // An unknown type.
        2 => {
            msgpack::write_array_len(&mut b, 2);
            msgpack::write_uint(&mut b, 200);
            msgpack::write_uint(&mut b, 1);
        }
        // A map, not an array.
        3 => b.extend_from_slice(&[0x81, 0x01, 0x02]),
        // A join before hello (a message at the wrong time).
        4 => {
            msgpack::write_array_len(&mut b, 3);
            msgpack::write_uint(&mut b, 2);
            msgpack::write_uint(&mut b, 1);
            msgpack::write_str(&mut b, "arena");
        }
        // 4,000 nested one-element arrays around nil: a recursive decoder's stack test.
        _ => {
            b.resize(4000, 0x91);
            b.push(0xc0);
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use rally_protocol::ClientMessage;

    #[test]
    fn corrupted_and_misshapen_bodies_are_refused_by_the_decoder() {
        let mut rng = Rng::new(1);
        for _ in 0..200 {
            let shape = wrong_shape(&mut rng);
            assert!(shape.len() <= 4096);
            // Either undecodable, or decodable to something that is not a valid hello.
            if let Ok(m) = ClientMessage::decode(&shape) {
                assert!(!matches!(m, ClientMessage::Hello { .. }), "{m:?}");
            }
        }
        let hello = hello_body("garbage");
        let mut changed = 0;
        for _ in 0..200 {
            let c = corrupt(&hello, &mut rng);
            changed += usize::from(c != hello);
        }
        assert_eq!(changed, 200, "every corruption changes the body");
    }

    #[test]
    fn every_case_has_a_distinct_name() {
        let mut names: Vec<&str> = TCP_CASES.iter().chain(WS_CASES).map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 13);
    }
}
