//! The content-id buffers batch encoding fills before it lays out the padded batch, kept
//! between calls.
//!
//! A batch of 100k texts writes ~8 MB of ids into a few hundred block buffers and frees
//! them all once the batch is laid out; the allocator then hands that memory back to the
//! kernel, and the next batch pays a page fault per 4 KiB to get it again (a quarter of the
//! encoding time). Reusing the buffers keeps the memory mapped.
//!
//! Invariants:
//! - A buffer is handed out empty; only its capacity carries over.
//! - At most `max_idle_bytes` of capacity waits idle; `release` frees all of it.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// The pool batch encoding uses: idle capacity up to a batch of ~20M tokens.
pub static ID_BUFFERS: IdBuffers = IdBuffers::new(80 << 20);

/// Idle id buffers, most recently returned last.
pub struct IdBuffers {
    idle: Mutex<Idle>,
    max_idle_bytes: usize,
}

struct Idle {
    buffers: Vec<Vec<u32>>,
    bytes: usize,
}

fn capacity_bytes(buffer: &Vec<u32>) -> usize {
    buffer.capacity() * size_of::<u32>()
}

impl IdBuffers {
    const fn new(max_idle_bytes: usize) -> Self {
        Self {
            idle: Mutex::new(Idle {
                buffers: Vec::new(),
                bytes: 0,
            }),
            max_idle_bytes,
        }
    }

    fn idle(&self) -> MutexGuard<'_, Idle> {
        // A panic elsewhere cannot leave a list of plain vectors inconsistent.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An empty buffer with room for at least `capacity` ids.
    pub fn take(&self, capacity: usize) -> Vec<u32> {
        let reused = {
            let mut idle = self.idle();
            let buffer = idle.buffers.pop();
            if let Some(buffer) = &buffer {
                idle.bytes -= capacity_bytes(buffer);
            }
            buffer
        };
        let mut buffer = reused.unwrap_or_default();
        buffer.clear();
        buffer.reserve(capacity);
        buffer
    }

    /// Keep `buffers` for later batches as far as the bound allows; the rest are freed.
    pub fn give_back(&self, buffers: impl IntoIterator<Item = Vec<u32>>) {
        let mut idle = self.idle();
        for buffer in buffers {
            let bytes = capacity_bytes(&buffer);
            if bytes == 0 || idle.bytes + bytes > self.max_idle_bytes {
                continue;
            }
            idle.bytes += bytes;
            idle.buffers.push(buffer);
        }
    }

    /// Free every idle buffer; returns the bytes that released.
    pub fn release(&self) -> usize {
        let freed = {
            let mut idle = self.idle();
            idle.bytes = 0;
            std::mem::take(&mut idle.buffers)
        };
        freed.iter().map(capacity_bytes).sum()
    }

    /// Bytes of capacity waiting idle.
    pub fn idle_bytes(&self) -> usize {
        self.idle().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_empty_within_the_bound() {
        let pool = IdBuffers::new(10_000 * size_of::<u32>());
        let mut buffer = pool.take(1000);
        assert!(buffer.is_empty() && buffer.capacity() >= 1000);
        buffer.extend(0..1000);
        let capacity = buffer.capacity();
        pool.give_back([buffer]);
        assert_eq!(pool.idle_bytes(), capacity * 4);
        let again = pool.take(10);
        assert!(again.is_empty(), "the old ids are gone");
        assert_eq!(
            again.capacity(),
            capacity,
            "the memory is the one given back"
        );
        assert_eq!(pool.idle_bytes(), 0);
        // Over the bound: kept up to it, the rest freed; empty buffers are not kept.
        pool.give_back([again, Vec::with_capacity(9001), Vec::new()]);
        assert_eq!(pool.idle_bytes(), capacity * 4);
        assert_eq!(pool.release(), capacity * 4);
        assert_eq!(pool.idle_bytes(), 0);
        assert_eq!(pool.take(0).capacity(), 0, "nothing idle after release");
    }
}
