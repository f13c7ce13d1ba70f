//! A server given its listeners (`ServerBuilder::on_listeners`) instead of binding the
//! configured addresses: players are served on them exactly as on bound ones (same
//! sessions, same framing per transport), and there is no admin port.

mod common;

use common::{config, games, Client};
use rally_server::{Server, Transport};
use tokio::net::TcpListener;

#[tokio::test]
async fn a_server_serves_players_on_listeners_it_is_given() {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::builder(config(), games())
        .without_store()
        .on_listeners([(tcp, Transport::Tcp), (ws, Transport::WebSocket)])
        .await
        .expect("no store to open");
    let (tcp, ws) = (server.tcp_addr(), server.ws_addr());
    assert_eq!(server.listener_addr(Transport::Tcp), Some(tcp));
    assert_eq!(
        server.admin_addr().port(),
        0,
        "no admin listener: {:?}",
        server.admin_addr()
    );
    let handle = server.handle();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    let (mut a, _) = Client::tcp_hello(tcp).await;
    let (mut b, _) = Client::ws_hello(ws).await;
    let (room, _) = a.join("arena").await;
    assert_eq!(b.join("arena").await.0, room, "both transports, one room");
    assert_eq!(handle.sessions(), 2);
    assert_eq!(handle.seats().await.len(), 2);

    a.close().await;
    b.close().await;
    let _ = stop.send(());
    let report = run.await.expect("the server task does not panic");
    assert!(report.drained, "{report:?}");
}
