//! Integer options of a listening socket that neither std nor socket2 sets on stable Rust:
//! `TCP_DEFER_ACCEPT` and `TCP_FASTOPEN`: two calls to `setsockopt(2)`/`getsockopt(2)` whose
//! soundness is argued at each.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Seconds the kernel may hold a handshaken connection back until its first bytes arrive
/// (`TCP_DEFER_ACCEPT`); 0 turns deferring off.
pub(crate) fn set_defer_accept(socket: BorrowedFd<'_>, seconds: u32) -> io::Result<()> {
    let value = libc::c_int::try_from(seconds).unwrap_or(libc::c_int::MAX);
    set_int(socket, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, value)
}

/// The most TCP Fast Open connections (data in the SYN) that may wait for their handshake to
/// complete (`TCP_FASTOPEN`); 0 turns Fast Open off.
pub(crate) fn set_fast_open(socket: BorrowedFd<'_>, queue: u32) -> io::Result<()> {
    let value = libc::c_int::try_from(queue).unwrap_or(libc::c_int::MAX);
    set_int(socket, libc::IPPROTO_TCP, libc::TCP_FASTOPEN, value)
}

/// The Fast Open queue length of a listening socket (0: off).
#[cfg(test)]
pub(crate) fn fast_open(socket: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    get_int(socket, libc::IPPROTO_TCP, libc::TCP_FASTOPEN)
}

/// The `TCP_DEFER_ACCEPT` value the kernel keeps: the number of SYN-ACK retransmissions the
/// requested seconds round to (0: off).
#[cfg(test)]
pub(crate) fn defer_accept(socket: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    get_int(socket, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT)
}

fn set_int(
    socket: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<libc::c_int>()).unwrap_or(4);
    // SAFETY: `socket` is a borrowed, open file descriptor, valid for the whole call. The option
    // value points at `value`, a live `c_int` on this stack frame, and `len` is exactly its
    // size, so the kernel reads `len` bytes of initialized memory and writes nothing. The call
    // has no other memory effect; a failure is reported through the return value and errno.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
fn get_int(
    socket: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = libc::socklen_t::try_from(size_of::<libc::c_int>()).unwrap_or(4);
    // SAFETY: `socket` is open for the call. The kernel writes at most `len` bytes (the size of
    // `value`, a live, initialized `c_int` this frame owns exclusively) into `value` and the
    // written length into `len`, a live `socklen_t`; nothing else is touched.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw mut value).cast(),
            &raw mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}
