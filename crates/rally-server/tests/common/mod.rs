//! Test helpers: a server on 127.0.0.1 port 0 and a client that speaks the protocol
//! over raw TCP (our own framing) or WebSocket (tokio-tungstenite, an independent
//! implementation of RFC 6455).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rally_server::protocol::{frame, ClientMessage, ErrorCode, ServerMessage, PROTOCOL_VERSION};
use rally_server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// How long a test waits for any one message before failing.
pub const RECV_LIMIT: Duration = Duration::from_secs(10);

// Each test binary uses its own subset of these.
#[allow(unused_imports)]
pub use rally_testkit::{eventually, games, TestServer};

pub fn config() -> Config {
    // Seats are freed as soon as a connection drops, unless a test is about resuming.
    // Tests send requests back to back, far past the default command_rate of 10 a
    // second; the rate limits have their own tests (rate_limits.rs) at their defaults.
    Config {
        reconnect_grace_ms: 0,
        command_rate: 10_000,
        ..rally_testkit::local_config()
    }
}

pub enum Client {
    Tcp { stream: TcpStream, buf: Vec<u8> },
    Ws(Box<tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>>),
}

impl Client {
    pub async fn tcp(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        Client::Tcp {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects from `source`, another address on the loopback network (127.0.0.0/8), as a
    /// player on another host would.
    pub async fn tcp_from(addr: SocketAddr, source: std::net::IpAddr) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::new(source, 0))
            .expect("bind source");
        let stream = socket.connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        Client::Tcp {
            stream,
            buf: Vec::new(),
        }
    }

    /// A WebSocket client connecting from `source` (see [`Client::tcp_from`]).
    pub async fn ws_from(addr: SocketAddr, source: std::net::IpAddr) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::new(source, 0))
            .expect("bind source");
        let stream = socket.connect(addr).await.expect("connect");
        let (ws, _) = tokio_tungstenite::client_async(
            format!("ws://{addr}/ws"),
            tokio_tungstenite::MaybeTlsStream::Plain(stream),
        )
        .await
        .expect("ws upgrade");
        Client::Ws(Box::new(ws))
    }

    pub async fn ws(addr: SocketAddr) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .expect("ws connect");
        Client::Ws(Box::new(ws))
    }

    /// Connects and completes the handshake; returns the session id.
    pub async fn tcp_hello(addr: SocketAddr) -> (Client, u64) {
        let mut c = Client::tcp(addr).await;
        let id = c.hello().await;
        (c, id)
    }

    pub async fn ws_hello(addr: SocketAddr) -> (Client, u64) {
        let mut c = Client::ws(addr).await;
        let id = c.hello().await;
        (c, id)
    }

    pub async fn send(&mut self, msg: &ClientMessage<'_>) {
        let mut body = Vec::new();
        msg.encode(&mut body);
        self.send_body(&body).await;
    }

    /// Sends one message body, framed for the transport.
    pub async fn send_body(&mut self, body: &[u8]) {
        match self {
            Client::Tcp { stream, .. } => {
                let mut out = Vec::new();
                frame::encode(body, &mut out);
                stream.write_all(&out).await.expect("write");
            }
            Client::Ws(ws) => ws
                .send(Message::Binary(body.to_vec().into()))
                .await
                .expect("ws send"),
        }
    }

    /// Writes raw bytes on a TCP client.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        match self {
            Client::Tcp { stream, .. } => stream.write_all(bytes).await.expect("write"),
            Client::Ws(_) => panic!("raw bytes on a websocket client"),
        }
    }

    /// The next server message, or None once the server has closed the connection.
    pub async fn recv(&mut self) -> Option<ServerMessage> {
        tokio::time::timeout(RECV_LIMIT, self.recv_inner())
            .await
            .expect("a message or a close in time")
    }

    async fn recv_inner(&mut self) -> Option<ServerMessage> {
        match self {
            Client::Tcp { stream, buf } => loop {
                if let Some((n, body)) = frame::decode(buf, 16 << 20).expect("valid frame") {
                    let msg = ServerMessage::decode(body).expect("valid server message");
                    buf.drain(..n);
                    return Some(msg);
                }
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            },
            Client::Ws(ws) => loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(b))) => {
                        return Some(ServerMessage::decode(&b).expect("valid server message"))
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                    Some(Ok(_)) => continue,
                }
            },
        }
    }

    /// Receives until a message matches, skipping states and chat; panics on close.
    pub async fn expect<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&ServerMessage) -> Option<T>,
    ) -> T {
        loop {
            match self.recv().await {
                Some(m) => {
                    if let Some(t) = f(&m) {
                        return t;
                    }
                }
                None => panic!("connection closed while waiting for {what}"),
            }
        }
    }

    /// Receives until an error arrives and returns its code, message and req.
    pub async fn expect_error(&mut self) -> (ErrorCode, String, u32) {
        self.expect("an error", |m| match m {
            ServerMessage::Error { code, message, req } => Some((*code, message.clone(), *req)),
            _ => None,
        })
        .await
    }

    /// Reads until the server closes; returns the last error code seen, if any.
    pub async fn expect_closed(&mut self) -> Option<ErrorCode> {
        let mut last = None;
        while let Some(m) = self.recv().await {
            if let ServerMessage::Error { code, .. } = m {
                last = Some(code);
            }
        }
        last
    }

    /// Sends `hello` (optionally with a resume token) and returns `welcome`'s session id
    /// and resume token.
    pub async fn hello_with(&mut self, resume: Option<&str>) -> (u64, String) {
        self.send(&ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            client: "test",
            resume,
            token: None,
        })
        .await;
        match self.recv().await {
            Some(ServerMessage::Welcome {
                session_id,
                resume_token,
                ..
            }) => (session_id, resume_token),
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    pub async fn hello(&mut self) -> u64 {
        self.send(&ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            client: "test",
            resume: None,
            token: None,
        })
        .await;
        match self.recv().await {
            Some(ServerMessage::Welcome { session_id, .. }) => session_id,
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    /// Joins a room of `kind`; returns (room id, player id).
    pub async fn join(&mut self, kind: &str) -> (u64, u32) {
        self.send(&ClientMessage::Join { req: 1, kind }).await;
        self.expect("joined", |m| match m {
            ServerMessage::Joined {
                room_id, player_id, ..
            } => Some((*room_id, *player_id)),
            ServerMessage::Error { code, message, .. } => panic!("join failed: {code} {message}"),
            _ => None,
        })
        .await
    }

    pub async fn input(&mut self, seq: u32, dx: f32, dy: f32) {
        let mut payload = Vec::new();
        arena::encode_input(&mut payload, dx, dy);
        self.send(&ClientMessage::Input {
            seq,
            payload: &payload,
        })
        .await;
    }

    /// Closes the client side.
    pub async fn close(self) {
        match self {
            Client::Tcp { mut stream, .. } => {
                let _ = stream.shutdown().await;
            }
            Client::Ws(mut ws) => {
                let _ = SinkExt::close(&mut ws).await;
            }
        }
    }
}

/// An HTTP answer from the admin listener.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// The head, lower-cased (status line and headers).
    pub head: String,
    pub body: String,
}

impl HttpResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("a JSON body ({e}), got {:?}", self.body))
    }
}

/// One HTTP/1.1 request (`Connection: close`) to the admin listener, bounded in time.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> HttpResponse {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let raw = tokio::time::timeout(RECV_LIMIT, async {
        let mut s = TcpStream::connect(addr).await.expect("connect to admin");
        s.write_all(req.as_bytes()).await.expect("write request");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.expect("read response");
        raw
    })
    .await
    .expect("an admin response in time");
    let text = String::from_utf8(raw).expect("a UTF-8 response");
    let (head, rest) = text.split_once("\r\n\r\n").expect("a response head");
    let head = head.to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    HttpResponse { status, head, body }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("a hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

/// An operator closes room `room` over the admin API, with [`ADMIN_TOKEN`].
pub async fn close_room(admin: SocketAddr, room: u64) -> HttpResponse {
    let path = format!("/admin/rooms/{room}/close");
    http(admin, "POST", &path, Some(ADMIN_TOKEN), None).await
}

/// A config with the admin API on, with [`ADMIN_TOKEN`].
pub fn admin_config() -> Config {
    Config {
        admin_token: Some(rally_server::config::Secret::new(ADMIN_TOKEN)),
        ..config()
    }
}

/// The admin token of [`admin_config`].
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// One sample line: name, sorted labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// Parsed Prometheus text.
pub struct Scrape {
    pub text: String,
    samples: Vec<Sample>,
}

impl Scrape {
    pub fn parse(text: String) -> Scrape {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("name and value");
            let value: f64 = value.parse().expect("a number");
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => {
                    let l = l.trim_end_matches('}');
                    let mut labels: Vec<(String, String)> = l
                        .split(',')
                        .filter(|kv| !kv.is_empty())
                        .map(|kv| {
                            let (k, v) = kv.split_once('=').expect("label=value");
                            (k.to_owned(), v.trim_matches('"').to_owned())
                        })
                        .collect();
                    labels.sort();
                    (n.to_owned(), labels)
                }
                None => (series.to_owned(), Vec::new()),
            };
            samples.push((name, labels, value));
        }
        Scrape { text, samples }
    }

    /// The value of the sample named `name` whose labels include `labels`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(n, ls, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| *v)
    }

    /// Like [`Scrape::get`], 0 when absent.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }
}

/// Scrapes `/metrics`.
pub async fn scrape(admin: SocketAddr) -> Scrape {
    let r = http(admin, "GET", "/metrics", None, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.head.contains("content-type: text/plain"), "{}", r.head);
    Scrape::parse(r.body)
}

/// Scrapes until `f` holds (every 20 ms, up to 10 s); returns that scrape.
pub async fn scrape_until(admin: SocketAddr, what: &str, f: impl Fn(&Scrape) -> bool) -> Scrape {
    let mut last = None;
    for _ in 0..500 {
        let s = scrape(admin).await;
        if f(&s) {
            return s;
        }
        last = Some(s);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "timed out waiting until {what}; last scrape:\n{}",
        last.map(|s| s.text).unwrap_or_default()
    );
}

/// A reply to a request: the success message, or the error's code and message.
pub type Reply = Result<ServerMessage, (ErrorCode, String)>;

/// The request id of a request message (0 for the others).
fn req_of(msg: &ClientMessage<'_>) -> u32 {
    msg.req().unwrap_or(0)
}

/// The request id a reply carries, if it is a reply.
fn reply_req(msg: &ServerMessage) -> Option<u32> {
    match msg {
        ServerMessage::Joined { req, .. }
        | ServerMessage::Left { req, .. }
        | ServerMessage::Ok { req }
        | ServerMessage::Session { req, .. }
        | ServerMessage::Data { req, .. }
        | ServerMessage::Written { req, .. }
        | ServerMessage::Profile { req, .. }
        | ServerMessage::Rooms { req, .. } => Some(*req),
        ServerMessage::Redirect { req, .. } => Some(*req),
        ServerMessage::Error { req, .. } if *req != 0 => Some(*req),
        ServerMessage::Conflict { req, .. } => Some(*req),
        _ => None,
    }
}

impl Client {
    /// Sends a request and waits for its reply, skipping everything else.
    pub async fn call(&mut self, msg: ClientMessage<'_>) -> Reply {
        let req = req_of(&msg);
        assert_ne!(req, 0, "{msg:?} is not a request");
        self.send(&msg).await;
        let reply = self
            .expect("a reply", |m| {
                (reply_req(m) == Some(req)).then(|| m.clone())
            })
            .await;
        match reply {
            ServerMessage::Error { code, message, .. } => Err((code, message)),
            ServerMessage::Conflict { message, .. } => Err((ErrorCode::Conflict, message)),
            other => Ok(other),
        }
    }

    /// `hello` with a session token; returns welcome's session id and account id.
    pub async fn hello_token(&mut self, token: &str) -> (u64, u64) {
        self.send(&ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            client: "test",
            resume: None,
            token: Some(token),
        })
        .await;
        match self.recv().await {
            Some(ServerMessage::Welcome {
                session_id,
                account_id,
                ..
            }) => (session_id, account_id),
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    /// Device login; returns the account id and the session token.
    pub async fn login(&mut self, device_id: &str) -> (u64, String) {
        match self
            .call(ClientMessage::Login {
                req: 70,
                provider: "device",
                credential: device_id,
            })
            .await
        {
            Ok(ServerMessage::Session {
                account_id, token, ..
            }) => (account_id, token),
            other => panic!("login failed: {other:?}"),
        }
    }

    /// `put_data`; the new version, or the error.
    pub async fn put(
        &mut self,
        key: &str,
        value: &str,
        expected_version: u64,
        public: bool,
    ) -> Result<u64, (ErrorCode, String)> {
        match self
            .call(ClientMessage::PutData {
                req: 71,
                key,
                value,
                expected_version,
                public,
            })
            .await?
        {
            ServerMessage::Written { version, .. } => Ok(version),
            other => panic!("expected written, got {other:?}"),
        }
    }

    /// `get_data`; `(value, version, public)`, or the error.
    pub async fn get(
        &mut self,
        owner: u64,
        key: &str,
    ) -> Result<(Option<String>, u64, bool), (ErrorCode, String)> {
        match self
            .call(ClientMessage::GetData {
                req: 72,
                owner,
                key,
            })
            .await?
        {
            ServerMessage::Data {
                value,
                version,
                public,
                ..
            } => Ok((value, version, public)),
            other => panic!("expected data, got {other:?}"),
        }
    }

    /// `get_profile`; `(display_name, sessions, play_ms, games_played)`, or the error.
    pub async fn profile(
        &mut self,
        account_id: u64,
    ) -> Result<(String, u64, u64, u64), (ErrorCode, String)> {
        match self
            .call(ClientMessage::GetProfile {
                req: 73,
                account_id,
            })
            .await?
        {
            ServerMessage::Profile {
                display_name,
                sessions,
                play_ms,
                games_played,
                ..
            } => Ok((display_name, sessions, play_ms, games_played)),
            other => panic!("expected profile, got {other:?}"),
        }
    }
}

/// A config requiring logins, on `db`.
pub fn accounts_config(db: &rally_testkit::TestDb) -> Config {
    db.config(Config {
        auth_required: true,
        ..config()
    })
}

/// A server requiring logins with its own store on `db`.
pub async fn start_with_db(config: Config, db: &rally_testkit::TestDb) -> TestServer {
    let store = db.open(&config).await;
    TestServer::start_with(rally_server::Server::builder(config, games()).store(store)).await
}

/// A device id no other test uses.
pub fn device_id() -> String {
    rally_testkit::unique_name("device")
}
