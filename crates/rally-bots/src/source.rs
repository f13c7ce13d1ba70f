//! Source addresses: a load generator's connections spread over many local addresses.
//!
//! Every load generator runs on one host, against a server on loopback. A server that
//! limits connections per address (Rally's `max_connections_per_ip`, default 64, and
//! `connection_rate_per_ip`, default 32 new connections a second) would see one host
//! open thousands, and refuse them. Players are on many hosts: Linux routes all of
//! `127.0.0.0/8` to the loopback interface, so connection `i` is made from the `i`-th
//! address of a range there, which is how many hosts would look. It also lifts the
//! ceiling of about 28,000 ephemeral ports that one source address has.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

/// The first address of honest load (`rally bots`, `rally bench`'s load workers), so
/// that it never shares an address with an attacker of `rally abuse` (127.2.0.0 up).
pub const HONEST_BASE: Ipv4Addr = Ipv4Addr::new(127, 1, 0, 1);

/// Connections one address carries at most, by default: half the server's default
/// `max_connections_per_ip` (64), so an honest load stays clear of the limit.
pub const CONNECTIONS_PER_ADDRESS: u64 = 32;
/// New connections per second one address opens at most, by default: half the server's
/// default `connection_rate_per_ip` (32 a second).
pub const NEW_PER_ADDRESS_PER_SEC: u64 = 16;

/// A range of consecutive IPv4 addresses connections are made from, round-robin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceIps {
    base: Ipv4Addr,
    count: u32,
}

impl SourceIps {
    /// `count` addresses from `base` up. Refused when the range is empty, runs past
    /// `255.255.255.255`, or starts inside `127.0.0.0/8` and leaves it (addresses past it
    /// are not local, and binding them would fail connection by connection).
    pub fn new(base: Ipv4Addr, count: u32) -> Result<SourceIps, String> {
        if count == 0 {
            return Err("no source address".to_owned());
        }
        let last = u32::from(base)
            .checked_add(count - 1)
            .map(Ipv4Addr::from)
            .ok_or_else(|| format!("{count} addresses from {base} run past 255.255.255.255"))?;
        if base.is_loopback() && !last.is_loopback() {
            return Err(format!(
                "{count} addresses from {base} leave 127.0.0.0/8 (the last would be {last})"
            ));
        }
        Ok(SourceIps { base, count })
    }

    /// The address connection `i` is made from.
    pub fn nth(&self, i: u64) -> IpAddr {
        // Cannot overflow: `new` checked that base + count - 1 fits.
        let offset = (i % u64::from(self.count)) as u32;
        IpAddr::V4(Ipv4Addr::from(u32::from(self.base) + offset))
    }

    /// How many addresses.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The first address.
    pub fn base(&self) -> Ipv4Addr {
        self.base
    }

    /// The addresses needed for `conns` connections opened `per_sec` a second, so that
    /// each address carries at most [`CONNECTIONS_PER_ADDRESS`] and opens at most
    /// [`NEW_PER_ADDRESS_PER_SEC`] a second.
    pub fn needed(conns: u64, per_sec: u64) -> u32 {
        let n = conns
            .div_ceil(CONNECTIONS_PER_ADDRESS)
            .max(per_sec.div_ceil(NEW_PER_ADDRESS_PER_SEC))
            .max(1);
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// Whether `addr` (`host:port`) names this host's IPv4 loopback: an address of
/// `127.0.0.0/8`, or `localhost`. Only then can connections come from other addresses of
/// `127.0.0.0/8` (an IPv6 target has no IPv4 address to connect to from there).
pub fn is_loopback_target(addr: &str) -> bool {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// Opens a TCP connection to `addr` from `source` (any port), or from the system's
/// choice of address when `None`.
pub async fn connect_from(addr: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(addr).await;
    };
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_go_round_robin_over_the_range() {
        let s = SourceIps::new(Ipv4Addr::new(127, 1, 0, 254), 3).expect("valid");
        let got: Vec<IpAddr> = (0..4).map(|i| s.nth(i)).collect();
        let want = [
            [127, 1, 0, 254],
            [127, 1, 0, 255],
            [127, 1, 1, 0],
            [127, 1, 0, 254],
        ];
        assert_eq!(
            got,
            want.map(|o| IpAddr::V4(Ipv4Addr::from(o))).to_vec(),
            "crosses octet boundaries"
        );
    }

    #[test]
    fn ranges_that_are_empty_or_leave_loopback_are_refused() {
        assert!(SourceIps::new(Ipv4Addr::new(127, 0, 0, 1), 0).is_err());
        assert!(SourceIps::new(Ipv4Addr::new(127, 255, 255, 250), 10).is_err());
        assert!(SourceIps::new(Ipv4Addr::new(255, 255, 255, 250), 10).is_err());
        assert!(SourceIps::new(Ipv4Addr::new(127, 255, 255, 250), 6).is_ok());
    }

    #[test]
    fn enough_addresses_for_the_count_and_the_rate() {
        // 1,000 bots at 500 a second: 32 addresses hold them (31.25 each) and open them
        // (15.6 a second each).
        assert_eq!(SourceIps::needed(1000, 500), 32);
        assert_eq!(SourceIps::needed(10, 1), 1);
        assert_eq!(SourceIps::needed(100, 1000), 63);
        assert_eq!(SourceIps::needed(0, 0), 1);
    }

    #[tokio::test]
    async fn a_connection_comes_from_its_source_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 5, 9));
        let _client = connect_from(addr, Some(source)).await.expect("connect");
        let (_, peer) = listener.accept().await.expect("accept");
        assert_eq!(peer.ip(), source);
        let _client = connect_from(addr, None).await.expect("connect");
        let (_, peer) = listener.accept().await.expect("accept");
        assert_eq!(peer.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn loopback_targets() {
        for yes in ["127.0.0.1:7000", "127.9.9.9:1", "localhost:80"] {
            assert!(is_loopback_target(yes), "{yes}");
        }
        for no in [
            "10.0.0.1:7000",
            "example.com:80",
            "[::1]:7000",
            "[2001:db8::1]:1",
        ] {
            assert!(!is_loopback_target(no), "{no}");
        }
    }
}
