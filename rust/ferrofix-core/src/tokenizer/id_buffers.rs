//! The content-id buffers batch encoding fills before it lays out the padded batch, kept
//! between calls.
//!
//! A batch of 100k texts writes ~8 MB of ids into a few hundred block buffers and frees
//! them all once the batch is laid out; without the pool the next batch paid a page fault
//! per 4 KiB to get that memory back (a quarter of the encoding time).

use crate::idle_buffers::IdleBuffers;

/// The pool batch encoding uses: idle capacity up to a batch of ~20M tokens.
pub static ID_BUFFERS: IdleBuffers<u32> = IdleBuffers::new(80 << 20);
