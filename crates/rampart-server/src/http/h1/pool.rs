//! Read buffers shared by the HTTP/1.1 connections of one worker thread.
//!
//! A connection holds a read buffer only while it has bytes to parse or a body to decode: it
//! takes one when it reads and hands it back once nothing is left in it, so an idle keep-alive
//! connection holds none. Each worker runs its connections on one thread, so the pool is a
//! thread-local stack with no lock.

use std::cell::RefCell;

use bytes::BytesMut;

/// The capacity of a pooled buffer: a typical request head fits in one read.
pub(crate) const BUF_SIZE: usize = 8 * 1024;

/// Buffers kept per thread; more are freed when handed back.
const KEEP: usize = 32;

/// A buffer grown past this (a large head or body read) is freed instead of kept.
const KEEP_CAPACITY: usize = 64 * 1024;

thread_local! {
    static POOL: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with room for at least [`BUF_SIZE`] bytes.
pub(crate) fn take() -> BytesMut {
    let pooled = POOL.with(|p| p.borrow_mut().pop());
    match pooled {
        Some(mut buf) => {
            // Reclaims the whole allocation once the request heads that shared it are gone.
            buf.reserve(BUF_SIZE);
            buf
        }
        None => BytesMut::with_capacity(BUF_SIZE),
    }
}

/// Hands `buf` back; its contents are dropped.
pub(crate) fn give(mut buf: BytesMut) {
    if buf.capacity() > KEEP_CAPACITY {
        return;
    }
    buf.clear();
    POOL.with(|p| {
        let mut pool = p.borrow_mut();
        if pool.len() < KEEP {
            pool.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_buffer_is_reused_whole_once_its_bytes_are_gone() {
        let mut buf = take();
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let start = buf.as_ptr() as usize;
        let head = buf.split_to(buf.len()).freeze();
        give(buf);
        drop(head);
        let again = take();
        assert!(again.capacity() >= BUF_SIZE);
        assert!(again.is_empty());
        assert_eq!(
            again.as_ptr() as usize,
            start,
            "the allocation was not reused"
        );
        give(again);
    }

    #[test]
    fn grown_buffers_are_not_kept() {
        let before = POOL.with(|p| p.borrow().len());
        give(BytesMut::with_capacity(KEEP_CAPACITY + 1));
        assert_eq!(POOL.with(|p| p.borrow().len()), before);
    }
}
