//! Packed token batches: documents placed by a packing into rows of `capacity` tokens, with
//! the per-token metadata varlen attention and losses need.
//!
//! Conventions (shared with the checker in `check.rs`):
//! - a segment is one packed item: a whole document, or one chunk of it under `split`;
//!   `position_ids` count 0, 1, ... inside each segment; `document_ids` hold the source
//!   document's index (-1 on padding); padding fills each row after its last segment with
//!   `pad_token_id`, label `ignore_index`, position 0 and attention mask 0;
//! - labels `aligned` copy the tokens with `ignore_index` at each segment's first token (for
//!   losses that shift internally); `shifted` hold the next token of the same segment with
//!   `ignore_index` at each segment's last token; either way no label crosses a boundary;
//! - `cu_seqlens` are the segment boundaries over the flattened batch, padding excluded.

use rayon::prelude::*;

use super::{Items, Overflow, Packing, Strategy};
use crate::error::{Error, Result};
use crate::memory::{allocation_refused, try_zeroed_vec};
use crate::parallel;

/// Where the labels of a packed batch point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelConvention {
    /// Label = the token itself; `ignore_index` at each segment's first token.
    Aligned,
    /// Label = the next token in the segment; `ignore_index` at each segment's last token.
    Shifted,
}

impl LabelConvention {
    /// Parse `"aligned"` or `"shifted"`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `labels` and the allowed values.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "aligned" => Ok(Self::Aligned),
            "shifted" => Ok(Self::Shifted),
            _ => Err(Error::invalid(
                "labels",
                format!("must be one of 'aligned', 'shifted', got {name:?}"),
            )),
        }
    }

    /// The label at `k` of a segment of `tokens`.
    pub fn label(self, tokens: &[i64], k: usize, ignore_index: i64) -> i64 {
        match self {
            Self::Aligned if k == 0 => ignore_index,
            Self::Aligned => tokens[k],
            Self::Shifted => tokens.get(k + 1).copied().unwrap_or(ignore_index),
        }
    }
}

/// Token values written where there is no token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filler {
    /// `input_ids` on padding.
    pub pad_token_id: i64,
    /// `labels` on padding and wherever no label exists.
    pub ignore_index: i64,
    /// How labels relate to tokens.
    pub labels: LabelConvention,
}

/// A packed batch: (rows, capacity) arrays in row-major order, plus segment metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedBatch {
    /// Number of rows (bins).
    pub rows: usize,
    /// Tokens per row.
    pub capacity: usize,
    /// Token ids.
    pub input_ids: Vec<i64>,
    /// Labels in the chosen convention.
    pub labels: Vec<i64>,
    /// 0 at every segment start, +1 inside, 0 on padding.
    pub position_ids: Vec<i64>,
    /// Source document index, -1 on padding.
    pub document_ids: Vec<i64>,
    /// 1 on tokens, 0 on padding.
    pub attention_mask: Vec<i64>,
    /// Segment boundaries over the flattened batch, padding excluded.
    pub cu_seqlens: Vec<i32>,
    /// The longest segment.
    pub max_seqlen: i64,
    /// (rows, max_segments): each row's segment starts, padded with -1.
    pub document_starts: Vec<i64>,
    /// The most segments in one row.
    pub max_segments: usize,
    /// Tokens in each row.
    pub seq_lengths: Vec<i64>,
}

/// Pack documents given as `tokens` (all documents concatenated) and their `lengths` into a
/// batch in new memory. [`PackedLayout`] does the same into memory the caller provides.
///
/// # Errors
/// As [`PackedLayout::new`], and [`Error::InvalidArgument`] naming `capacity` when the
/// batch's memory cannot be allocated.
pub fn pack_sequences(
    tokens: &[i64],
    lengths: &[i64],
    capacity: u32,
    strategy: Strategy,
    overflow: Overflow,
    filler: Filler,
) -> Result<PackedBatch> {
    let layout = PackedLayout::new(tokens, lengths, capacity, strategy, overflow, filler)?;
    let cells = layout.rows() * layout.capacity();
    let mut grids: [Vec<i64>; 5] = Default::default();
    for grid in &mut grids {
        *grid = try_zeroed_vec(cells).ok_or_else(|| {
            let what = format!("a ({}, {capacity}) int64 batch", layout.rows());
            allocation_refused("capacity", what, "lower capacity")
        })?;
    }
    layout.fill(grids.each_mut().map(Vec::as_mut_slice))?;
    let tables = layout.segment_tables();
    let [
        input_ids,
        labels,
        position_ids,
        document_ids,
        attention_mask,
    ] = grids;
    Ok(PackedBatch {
        rows: layout.rows(),
        capacity: layout.capacity(),
        input_ids,
        labels,
        position_ids,
        document_ids,
        attention_mask,
        cu_seqlens: tables.cu_seqlens,
        max_seqlen: tables.max_seqlen,
        document_starts: tables.document_starts,
        max_segments: tables.max_segments,
        seq_lengths: tables.seq_lengths,
    })
}

/// Rough cost of writing one cell of the five grids, for deciding whether a batch is worth
/// waking the pool for.
const NS_PER_CELL: u64 = 4;

/// The five (rows, capacity) arrays of a packed batch, in the order [`PackedLayout::fill`]
/// takes them.
pub const GRID_NAMES: [&str; 5] = [
    "input_ids",
    "labels",
    "position_ids",
    "document_ids",
    "attention_mask",
];

/// The per-segment and per-row metadata of a packed batch (see [`PackedBatch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentTables {
    /// Segment boundaries over the flattened batch, padding excluded.
    pub cu_seqlens: Vec<i32>,
    /// The longest segment.
    pub max_seqlen: i64,
    /// (rows, max_segments): each row's segment starts, padded with -1.
    pub document_starts: Vec<i64>,
    /// The most segments in one row.
    pub max_segments: usize,
    /// Tokens in each row.
    pub seq_lengths: Vec<i64>,
}

/// Documents placed by a packing but not yet written out: [`PackedLayout::fill`] lays the
/// batch into (rows, capacity) arrays the caller takes from anywhere (fresh or reused
/// memory), [`PackedLayout::segment_tables`] gives the rest.
pub struct PackedLayout<'a> {
    tokens: &'a [i64],
    starts: Vec<usize>,
    items: Items,
    packing: Packing,
    capacity: usize,
    filler: Filler,
}

impl<'a> PackedLayout<'a> {
    /// Pack documents given as `tokens` (all documents concatenated) and their `lengths`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the lengths do not add up to the number of tokens,
    /// for the length and capacity errors of [`super::items`] and when the batch would hold
    /// 2**31 tokens or more (cu_seqlens are int32).
    pub fn new(
        tokens: &'a [i64],
        lengths: &[i64],
        capacity: u32,
        strategy: Strategy,
        overflow: Overflow,
        filler: Filler,
    ) -> Result<Self> {
        let items = super::items(lengths, capacity, overflow)?;
        let starts = document_starts(lengths, tokens.len())?;
        let packing = super::pack(&items.lengths, capacity, strategy)?;
        let packed: u64 = items.lengths.iter().map(|&v| u64::from(v)).sum();
        if packed > i32::MAX as u64 {
            return Err(Error::invalid(
                "sequences",
                format!(
                    "at most 2**31 - 1 tokens fit one batch (cu_seqlens are int32), got {packed}"
                ),
            ));
        }
        Ok(Self {
            tokens,
            starts,
            items,
            packing,
            capacity: capacity as usize,
            filler,
        })
    }

    /// Number of rows (bins).
    pub fn rows(&self) -> usize {
        self.packing.num_bins()
    }

    /// Tokens per row.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The source document and the tokens of `item`.
    fn segment(&self, item: usize) -> (usize, &'a [i64]) {
        let (source, offset) = self.items.source(item);
        let start = self.starts[source] + offset as usize;
        (
            source,
            &self.tokens[start..start + self.items.lengths[item] as usize],
        )
    }

    /// Write every element of the five arrays of [`GRID_NAMES`] (row-major; their previous
    /// contents do not matter), rows in parallel on the crate's pool (so fresh pages also
    /// fault in on all workers).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming an array that does not hold rows x capacity
    /// elements.
    pub fn fill(&self, grids: [&mut [i64]; 5]) -> Result<()> {
        let (capacity, filler) = (self.capacity, self.filler);
        let cells = self.rows() * capacity;
        for (name, grid) in GRID_NAMES.iter().zip(&grids) {
            if grid.len() != cells {
                return Err(Error::invalid(
                    name,
                    format!(
                        "must hold {} x {capacity} elements, got {}",
                        self.rows(),
                        grid.len()
                    ),
                ));
            }
        }
        if cells == 0 {
            return Ok(());
        }
        let [ids, labels, positions, documents, mask] = grids;
        let packing = &self.packing;
        parallel::install_sized(cells, NS_PER_CELL, || {
            ids.par_chunks_mut(capacity)
                .zip(labels.par_chunks_mut(capacity))
                .zip(positions.par_chunks_mut(capacity))
                .zip(documents.par_chunks_mut(capacity))
                .zip(mask.par_chunks_mut(capacity))
                .enumerate()
                .for_each(|(row, ((((ids, labels), positions), documents), mask))| {
                    let mut out = RowGrids {
                        ids,
                        labels,
                        positions,
                        documents,
                        mask,
                    };
                    // Segments lie back to back from 0 (an item's offset is its bin's load
                    // when it arrived), but any gap is written as padding all the same, and
                    // an overlap could not turn into a backwards range.
                    let mut written = 0;
                    let members =
                        packing.bin_offsets[row] as usize..packing.bin_offsets[row + 1] as usize;
                    for &item in &packing.items[members] {
                        let (source, tokens) = self.segment(item as usize);
                        let at = packing.offset_in_bin[item as usize] as usize;
                        out.pad(written..at.max(written), filler);
                        out.segment(at, source, tokens, filler);
                        written = written.max(at + tokens.len());
                    }
                    out.pad(written..capacity, filler);
                });
        })
    }

    /// cu_seqlens, max_seqlen, document_starts and seq_lengths.
    pub fn segment_tables(&self) -> SegmentTables {
        let packing = &self.packing;
        let rows = self.rows();
        let max_segments = packing
            .bin_offsets
            .windows(2)
            .map(|w| (w[1] - w[0]) as usize)
            .max()
            .unwrap_or(0);
        let mut document_starts = vec![-1i64; rows * max_segments];
        let mut seq_lengths = vec![0i64; rows];
        let mut cu_seqlens = Vec::with_capacity(packing.items.len() + 1);
        cu_seqlens.push(0i32);
        let mut max_seqlen = 0i64;
        for row in 0..rows {
            let members = packing.bin_offsets[row] as usize..packing.bin_offsets[row + 1] as usize;
            for (k, &item) in packing.items[members].iter().enumerate() {
                let length = self.items.lengths[item as usize];
                document_starts[row * max_segments + k] =
                    i64::from(packing.offset_in_bin[item as usize]);
                seq_lengths[row] += i64::from(length);
                max_seqlen = max_seqlen.max(i64::from(length));
                // `new` checked that the total fits in i32.
                cu_seqlens.push(cu_seqlens[cu_seqlens.len() - 1] + length as i32);
            }
        }
        SegmentTables {
            cu_seqlens,
            max_seqlen,
            document_starts,
            max_segments,
            seq_lengths,
        }
    }
}

/// One row of each of the five arrays.
struct RowGrids<'r> {
    ids: &'r mut [i64],
    labels: &'r mut [i64],
    positions: &'r mut [i64],
    documents: &'r mut [i64],
    mask: &'r mut [i64],
}

impl RowGrids<'_> {
    fn pad(&mut self, range: std::ops::Range<usize>, filler: Filler) {
        self.ids[range.clone()].fill(filler.pad_token_id);
        self.labels[range.clone()].fill(filler.ignore_index);
        self.positions[range.clone()].fill(0);
        self.documents[range.clone()].fill(-1);
        self.mask[range].fill(0);
    }

    fn segment(&mut self, at: usize, source: usize, tokens: &[i64], filler: Filler) {
        let span = at..at + tokens.len();
        self.ids[span.clone()].copy_from_slice(tokens);
        self.documents[span.clone()].fill(source as i64);
        self.mask[span.clone()].fill(1);
        for (k, position) in self.positions[span.clone()].iter_mut().enumerate() {
            *position = k as i64;
        }
        for (k, label) in self.labels[span].iter_mut().enumerate() {
            *label = filler.labels.label(tokens, k, filler.ignore_index);
        }
    }
}

/// Where each document starts in the concatenated tokens.
fn document_starts(lengths: &[i64], tokens: usize) -> Result<Vec<usize>> {
    let mut starts = Vec::with_capacity(lengths.len());
    let mut total: u64 = 0;
    for &length in lengths {
        starts.push(total as usize);
        total += length.max(0) as u64;
    }
    if total != tokens as u64 {
        return Err(Error::invalid(
            "lengths",
            format!("must sum to the number of tokens ({tokens}), got a sum of {total}"),
        ));
    }
    Ok(starts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILLER: Filler = Filler {
        pad_token_id: 0,
        ignore_index: -100,
        labels: LabelConvention::Aligned,
    };

    /// Documents [11 12 13], [21 22], [31 32 33] packed by bfd into one row of 10.
    fn three_documents(filler: Filler) -> PackedBatch {
        let tokens = [11, 12, 13, 21, 22, 31, 32, 33];
        let bfd = Strategy::BestFitDecreasing;
        pack_sequences(&tokens, &[3, 2, 3], 10, bfd, Overflow::Error, filler).unwrap()
    }

    #[test]
    fn three_documents_in_one_row() {
        let batch = three_documents(FILLER);
        assert_eq!(batch.rows, 1);
        assert_eq!(batch.input_ids, [11, 12, 13, 31, 32, 33, 21, 22, 0, 0]);
        assert_eq!(
            batch.labels,
            [-100, 12, 13, -100, 32, 33, -100, 22, -100, -100]
        );
        assert_eq!(batch.position_ids, [0, 1, 2, 0, 1, 2, 0, 1, 0, 0]);
        assert_eq!(batch.document_ids, [0, 0, 0, 2, 2, 2, 1, 1, -1, -1]);
        assert_eq!(batch.attention_mask, [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
        assert_eq!(batch.cu_seqlens, [0, 3, 6, 8]);
        assert_eq!(batch.document_starts, [0, 3, 6]);
        assert_eq!((batch.max_seqlen, batch.seq_lengths.clone()), (3, vec![8]));

        let shifted = Filler {
            labels: LabelConvention::Shifted,
            ..FILLER
        };
        let batch = three_documents(shifted);
        assert_eq!(
            batch.labels,
            [12, 13, -100, 32, 33, -100, 22, -100, -100, -100]
        );
    }

    #[test]
    fn fill_overwrites_whatever_the_outputs_held() {
        // next_fit over lengths 3, 2, 1 at capacity 4: rows [1 2 3 pad] and [4 5 6 pad].
        let tokens = [1, 2, 3, 4, 5, 6];
        let layout = PackedLayout::new(
            &tokens,
            &[3, 2, 1],
            4,
            Strategy::NextFit,
            Overflow::Error,
            FILLER,
        )
        .unwrap();
        assert_eq!((layout.rows(), layout.capacity()), (2, 4));
        let fill_from = |junk: i64| {
            let mut grids: [Vec<i64>; 5] = std::array::from_fn(|_| vec![junk; 8]);
            layout
                .fill(grids.each_mut().map(Vec::as_mut_slice))
                .unwrap();
            grids
        };
        let grids = fill_from(-77);
        assert_eq!(grids, fill_from(0));
        assert_eq!(
            grids,
            [
                vec![1, 2, 3, 0, 4, 5, 6, 0],
                vec![-100, 2, 3, -100, -100, 5, -100, -100],
                vec![0, 1, 2, 0, 0, 1, 0, 0],
                vec![0, 0, 0, -1, 1, 1, 2, -1],
                vec![1, 1, 1, 0, 1, 1, 1, 0],
            ]
        );
        let mut grids: [Vec<i64>; 5] = std::array::from_fn(|k| vec![0; 8 - k / 4]);
        let err = layout
            .fill(grids.each_mut().map(Vec::as_mut_slice))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "attention_mask: must hold 2 x 4 elements, got 7"
        );
    }

    #[test]
    fn lengths_must_cover_the_tokens() {
        let err = pack_sequences(
            &[1, 2, 3],
            &[2],
            4,
            Strategy::NextFit,
            Overflow::Error,
            FILLER,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "lengths: must sum to the number of tokens (3), got a sum of 2"
        );
    }
}
