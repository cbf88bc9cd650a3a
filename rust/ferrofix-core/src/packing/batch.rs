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
use crate::memory::huge_filled;
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

/// Pack documents given as `tokens` (all documents concatenated) and their `lengths`.
///
/// # Errors
/// [`Error::InvalidArgument`] when the lengths do not add up to the number of tokens, for
/// the length and capacity errors of [`super::items`] and
/// when the batch would hold 2**31 tokens or more (cu_seqlens are int32).
pub fn pack_sequences(
    tokens: &[i64],
    lengths: &[i64],
    capacity: u32,
    strategy: Strategy,
    overflow: Overflow,
    filler: Filler,
) -> Result<PackedBatch> {
    let items = super::items(lengths, capacity, overflow)?;
    let starts = document_starts(lengths, tokens.len())?;
    let packing = super::pack(&items.lengths, capacity, strategy)?;
    let packed: u64 = items.lengths.iter().map(|&v| u64::from(v)).sum();
    if packed > i32::MAX as u64 {
        return Err(Error::invalid(
            "sequences",
            format!("at most 2**31 - 1 tokens fit one batch (cu_seqlens are int32), got {packed}"),
        ));
    }
    parallel::install(|| fill(tokens, &starts, &items, &packing, capacity as usize, filler))
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

fn fill(
    tokens: &[i64],
    starts: &[usize],
    items: &Items,
    packing: &Packing,
    capacity: usize,
    filler: Filler,
) -> PackedBatch {
    let rows = packing.num_bins();
    let cells = rows * capacity;
    let mut input_ids = huge_filled(cells, filler.pad_token_id);
    let mut labels = huge_filled(cells, filler.ignore_index);
    let mut position_ids = huge_filled(cells, 0i64);
    let mut document_ids = huge_filled(cells, -1i64);
    let mut attention_mask = huge_filled(cells, 0i64);
    let segment = |item: usize| {
        let (source, offset) = items.source(item);
        let start = starts[source] + offset as usize;
        (source, &tokens[start..start + items.lengths[item] as usize])
    };
    input_ids
        .par_chunks_mut(capacity)
        .zip(labels.par_chunks_mut(capacity))
        .zip(position_ids.par_chunks_mut(capacity))
        .zip(document_ids.par_chunks_mut(capacity))
        .zip(attention_mask.par_chunks_mut(capacity))
        .enumerate()
        .for_each(|(row, ((((ids, labels), positions), documents), mask))| {
            let members = packing.bin_offsets[row] as usize..packing.bin_offsets[row + 1] as usize;
            for &item in &packing.items[members] {
                let (source, segment_tokens) = segment(item as usize);
                let at = packing.offset_in_bin[item as usize] as usize;
                let span = at..at + segment_tokens.len();
                ids[span.clone()].copy_from_slice(segment_tokens);
                documents[span.clone()].fill(source as i64);
                mask[span.clone()].fill(1);
                for (k, position) in positions[span.clone()].iter_mut().enumerate() {
                    *position = k as i64;
                }
                for (k, label) in labels[span].iter_mut().enumerate() {
                    *label = filler.labels.label(segment_tokens, k, filler.ignore_index);
                }
            }
        });

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
            let length = items.lengths[item as usize];
            document_starts[row * max_segments + k] =
                i64::from(packing.offset_in_bin[item as usize]);
            seq_lengths[row] += i64::from(length);
            max_seqlen = max_seqlen.max(i64::from(length));
            // pack_sequences checked that the total fits in i32.
            cu_seqlens.push(cu_seqlens[cu_seqlens.len() - 1] + length as i32);
        }
    }
    PackedBatch {
        rows,
        capacity,
        input_ids,
        labels,
        position_ids,
        document_ids,
        attention_mask,
        cu_seqlens,
        max_seqlen,
        document_starts,
        max_segments,
        seq_lengths,
    }
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
