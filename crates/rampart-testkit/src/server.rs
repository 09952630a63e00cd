//! Shared accept loop: binds loopback port 0 and aborts everything on drop.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Binds a listener on `127.0.0.1:0`.
pub(crate) async fn bind_loopback() -> io::Result<TcpListener> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await
}

/// A running accept loop; dropping it aborts the loop and, with it, every connection task.
#[derive(Debug)]
pub(crate) struct ServerTask(JoinHandle<()>);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Spawns an accept loop on the current runtime calling `on_conn` for each accepted connection.
///
/// Connection tasks live in a `JoinSet` owned by the loop, so aborting the loop aborts them.
pub(crate) fn spawn_accept_loop<F, Fut>(listener: TcpListener, mut on_conn: F) -> ServerTask
where
    F: FnMut(TcpStream, SocketAddr) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    ServerTask(tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        conns.spawn(on_conn(stream, peer));
                    }
                    // e.g. EMFILE: back off briefly instead of spinning.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    }))
}
