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
    Config {
        reconnect_grace_ms: 0,
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
