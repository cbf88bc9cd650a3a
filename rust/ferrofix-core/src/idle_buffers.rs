//! Vectors kept between calls, emptied, so their memory stays mapped.
//!
//! A batch call that allocates megabytes of scratch vectors and frees them at the end gets
//! that memory back from the allocator as fresh pages on the next call (large freed blocks
//! go back to the kernel), and pays a page fault per 4 KiB again. Keeping the emptied
//! vectors avoids that.
//!
//! Invariants:
//! - A vector is handed out empty; only its capacity carries over.
//! - At most `max_idle_bytes` of capacity waits idle; `release` frees all of it.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Idle vectors of `T`, most recently returned last.
pub struct IdleBuffers<T> {
    idle: Mutex<Idle<T>>,
    max_idle_bytes: usize,
}

struct Idle<T> {
    buffers: Vec<Vec<T>>,
    bytes: usize,
}

fn capacity_bytes<T>(buffer: &Vec<T>) -> usize {
    buffer.capacity() * size_of::<T>()
}

impl<T> IdleBuffers<T> {
    /// A pool keeping at most `max_idle_bytes` of idle capacity.
    pub const fn new(max_idle_bytes: usize) -> Self {
        Self {
            idle: Mutex::new(Idle {
                buffers: Vec::new(),
                bytes: 0,
            }),
            max_idle_bytes,
        }
    }

    fn idle(&self) -> MutexGuard<'_, Idle<T>> {
        // A panic elsewhere cannot leave a list of plain vectors inconsistent.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An empty vector with room for at least `capacity` elements.
    pub fn take(&self, capacity: usize) -> Vec<T> {
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

    /// Keep `buffers` (emptied) for later calls as far as the bound allows; the rest are
    /// freed.
    pub fn give_back(&self, buffers: impl IntoIterator<Item = Vec<T>>) {
        let mut idle = self.idle();
        for mut buffer in buffers {
            let bytes = capacity_bytes(&buffer);
            if bytes == 0 || idle.bytes + bytes > self.max_idle_bytes {
                continue;
            }
            buffer.clear();
            idle.bytes += bytes;
            idle.buffers.push(buffer);
        }
    }

    /// Free every idle vector; returns the bytes that released.
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
        let pool = IdleBuffers::<u32>::new(10_000 * size_of::<u32>());
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
