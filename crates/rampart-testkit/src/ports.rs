//! Port helpers.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};

/// Returns an address on 127.0.0.1 where nothing listens (bound on port 0, then released).
pub fn free_port_closed() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let addr = listener.local_addr()?;
    drop(listener);
    Ok(addr)
}
