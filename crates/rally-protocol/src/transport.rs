//! [`Transport`]: the two ways the protocol travels, named once for the server's
//! listeners, the client SDK, the bots and the load tools.

use std::fmt;

/// Which transport carries the protocol. Both carry exactly the same messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    /// Raw TCP with 4-byte length-prefixed frames ([`frame`](crate::frame)), the server's
    /// `tcp` listener.
    #[default]
    Tcp,
    /// WebSocket binary messages ([`ws`](crate::ws)) on the path `/ws` of the server's
    /// `http` listener.
    WebSocket,
}

impl Transport {
    /// The short lower-case name used in logs, metrics labels, reports and on the command
    /// line (`tcp`, `ws`).
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::WebSocket => "ws",
        }
    }

    /// The transport named `name` (see [`Transport::name`]).
    pub fn from_name(name: &str) -> Option<Transport> {
        [Transport::Tcp, Transport::WebSocket]
            .into_iter()
            .find(|t| t.name() == name)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::Transport;

    #[test]
    fn names_round_trip() {
        for t in [Transport::Tcp, Transport::WebSocket] {
            assert_eq!(Transport::from_name(t.name()), Some(t));
            assert_eq!(t.to_string(), t.name());
        }
        assert_eq!(Transport::from_name("udp"), None);
    }
}
