//! Binding listening sockets: one per listener and worker, sharing the port with
//! `SO_REUSEPORT` so the kernel spreads new connections across workers without a shared accept
//! lock.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::TcpListener;

use crate::listen::sockopt;

/// How long a `defer_accept` listener lets the kernel hold a silent connection back: one
/// second, which Linux rounds to one SYN-ACK retransmission. A client that handshakes and
/// sends nothing is handed over when it acknowledges that retransmission, about a second
/// later, and only then does the header read timeout start.
const DEFER_ACCEPT_SECONDS: u32 = 1;

/// Options of a listener's sockets that its config sets, applied to each listening socket
/// when its accept loop starts (so also to sockets inherited on a binary upgrade) and again
/// after a reload changed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ListenTuning {
    /// `TCP_DEFER_ACCEPT`: wake on the first bytes, not on the end of the handshake.
    pub(crate) defer_accept: bool,
    /// `TCP_FASTOPEN` queue length (0: off).
    pub(crate) fast_open: u32,
}

impl ListenTuning {
    /// The tuning `listener` asks for.
    pub(crate) fn of(listener: &rampart_config::model::Listener) -> Self {
        Self {
            defer_accept: listener.defer_accept,
            fast_open: *listener.fast_open,
        }
    }

    /// Sets these options on `socket`. `TCP_NODELAY` is set too: accepted connections copy it
    /// from the listening socket, so no connection needs its own `setsockopt`.
    pub(crate) fn apply(self, socket: &TcpListener) -> io::Result<()> {
        SockRef::from(socket).set_tcp_nodelay(true)?;
        let defer = if self.defer_accept {
            DEFER_ACCEPT_SECONDS
        } else {
            0
        };
        let fd = std::os::fd::AsFd::as_fd(socket);
        sockopt::set_defer_accept(fd, defer)?;
        match sockopt::set_fast_open(fd, self.fast_open) {
            // A kernel without Fast Open has nothing to turn off.
            Err(e) if self.fast_open == 0 && e.raw_os_error() == Some(libc::ENOPROTOOPT) => Ok(()),
            result => result,
        }
    }
}

/// Binds `workers` sockets to `addr`. With port 0 the first socket picks the port and the others
/// join it. IPv6 sockets are IPv6-only, so `[::]` and `0.0.0.0` can be separate listeners.
pub(crate) fn bind_all(
    addr: SocketAddr,
    workers: usize,
    backlog: u32,
) -> io::Result<Vec<std::net::TcpListener>> {
    if addr.port() != 0 {
        ensure_not_listening(addr)?;
    }
    let mut sockets = Vec::with_capacity(workers);
    let mut addr = addr;
    for _ in 0..workers.max(1) {
        let socket = bind_one(addr, backlog)?;
        addr = socket.local_addr()?;
        sockets.push(socket);
    }
    Ok(sockets)
}

/// `SO_REUSEPORT` lets any process of the same user join a listening port, so a second Rampart
/// started on a port another one serves would silently split its connections. A probe bound
/// without `SO_REUSEPORT` fails while anything listens on `addr`: then refuse to start.
fn ensure_not_listening(addr: SocketAddr) -> io::Result<()> {
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        probe.set_only_v6(true)?;
    }
    // Like the real sockets: connections of a previous run in TIME_WAIT do not count.
    probe.set_reuse_address(true)?;
    probe
        .bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))
}

fn bind_one(addr: SocketAddr, backlog: u32) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    socket
        .bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_is_shared_by_every_worker() {
        let sockets = bind_all("127.0.0.1:0".parse().unwrap(), 3, 16).unwrap();
        let ports: Vec<u16> = sockets
            .iter()
            .map(|s| s.local_addr().unwrap().port())
            .collect();
        assert_ne!(ports[0], 0);
        assert!(ports.iter().all(|p| *p == ports[0]), "{ports:?}");
    }

    #[test]
    fn a_port_another_reuseport_socket_listens_on_is_refused() {
        let other = bind_all("127.0.0.1:0".parse().unwrap(), 1, 16).unwrap();
        let err = bind_all(other[0].local_addr().unwrap(), 1, 16).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    }

    #[test]
    fn accepted_connections_inherit_tcp_nodelay_from_the_listener() {
        let sockets = bind_all("127.0.0.1:0".parse().unwrap(), 1, 16).unwrap();
        let client = std::net::TcpStream::connect(sockets[0].local_addr().unwrap()).unwrap();
        sockets[0].set_nonblocking(false).unwrap();
        let (accepted, _) = sockets[0].accept().unwrap();
        assert!(
            accepted.nodelay().unwrap(),
            "TCP_NODELAY is set per connection then"
        );
        drop(client);
    }

    #[tokio::test]
    async fn tuning_turns_deferred_accept_and_fast_open_on_and_off() {
        let socket = bind_all("127.0.0.1:0".parse().unwrap(), 1, 16).unwrap();
        let socket = TcpListener::from_std(socket.into_iter().next().unwrap()).unwrap();
        let fd = || std::os::fd::AsFd::as_fd(&socket);
        assert_eq!(sockopt::defer_accept(fd()).unwrap(), 0);
        assert_eq!(sockopt::fast_open(fd()).unwrap(), 0);
        let on = ListenTuning {
            defer_accept: true,
            fast_open: 64,
        };
        on.apply(&socket).unwrap();
        assert!(sockopt::defer_accept(fd()).unwrap() > 0);
        assert_eq!(sockopt::fast_open(fd()).unwrap(), 64);
        ListenTuning::default().apply(&socket).unwrap();
        assert_eq!(sockopt::defer_accept(fd()).unwrap(), 0);
        assert_eq!(sockopt::fast_open(fd()).unwrap(), 0);
        assert!(SockRef::from(&socket).tcp_nodelay().unwrap());
    }

    #[test]
    fn a_taken_port_is_a_clear_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let err = bind_all(taken.local_addr().unwrap(), 1, 16).unwrap_err();
        assert!(err.to_string().contains("bind 127.0.0.1:"), "{err}");
    }
}
