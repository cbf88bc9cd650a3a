//! Batch encoding into one padded id matrix, texts in parallel.
//!
//! Invariants:
//! - Texts are encoded in fixed blocks on the crate's pool, then written into the
//!   (rows x width) int64 outputs; results do not depend on the thread count.
//! - `fill` writes every element of both outputs, so they may come from reused memory.
//! - The blocks' id buffers come from, and on drop go back to, `id_buffers::ID_BUFFERS`.
//! - The lengths go straight into the caller's buffer (which may come from reused memory:
//!   every element is written).
//! - Truncation keeps the BOS/EOS that `add_special_tokens` adds and cuts the content.
//! - A text longer than `max_length` without `truncation` is an error naming the text
//!   (by its argument and index).
//! - The first failing text (in input order) decides the error, whatever the thread count.

use rayon::prelude::*;

use super::Tokenizer;
use super::id_buffers::ID_BUFFERS;
use crate::error::{Error, Result};
use crate::parallel;

/// Which end of a row padding or truncation applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The start of the row.
    Left,
    /// The end of the row.
    Right,
}

impl Side {
    /// Parse `"left"` or `"right"`; `arg` names the option in the error.
    pub fn parse(value: &str, arg: &'static str) -> Result<Self> {
        match value {
            "left" => Ok(Self::Left),
            "right" => Ok(Self::Right),
            other => Err(Error::invalid(
                arg,
                format!("must be one of 'left', 'right'; got '{other}'"),
            )),
        }
    }
}

/// How wide the padded rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// The longest row of the batch.
    Longest,
    /// Exactly `max_length`.
    MaxLength,
}

/// Options of [`Tokenizer::encode_texts`].
#[derive(Debug, Clone, Copy)]
pub struct BatchOptions {
    /// Add the configured BOS/EOS.
    pub add_special_tokens: bool,
    /// Longest allowed row (with BOS/EOS); `None` for no limit.
    pub max_length: Option<usize>,
    /// Cut rows longer than `max_length` instead of failing.
    pub truncation: bool,
    /// Which end truncation removes tokens from.
    pub truncation_side: Side,
    /// Row width before rounding up to `pad_to_multiple_of`.
    pub width: Width,
    /// Round the width up to a multiple of this.
    pub pad_to_multiple_of: Option<usize>,
    /// Which end padding goes to.
    pub padding_side: Side,
    /// The id written into padding.
    pub pad_id: i64,
    /// The argument the texts came in (`text`, `text_target`), for error messages.
    pub texts_arg: &'static str,
}

/// Texts per parallel task.
const BLOCK: usize = 256;
/// Rough encode cost per text byte (the word model is ~2 ns, BPE ~8-16 ns), for deciding
/// whether a batch is worth waking the pool for.
const ENCODE_NS_PER_BYTE: u64 = 8;
/// Rough cost of laying out one element of the two padded outputs.
const FILL_NS_PER_ELEMENT: u64 = 1;

/// The content ids of one block of texts, concatenated.
struct Block {
    ids: Vec<u32>,
    ends: Vec<usize>,
}

impl BatchOptions {
    fn check(&self, num_special: usize) -> Result<()> {
        if let Some(max_length) = self.max_length
            && max_length < num_special.max(1)
        {
            return Err(Error::invalid(
                "max_length",
                format!(
                    "must be at least {} (room for the {num_special} special tokens added), got {max_length}",
                    num_special.max(1)
                ),
            ));
        }
        if self.pad_to_multiple_of == Some(0) {
            return Err(Error::invalid(
                "pad_to_multiple_of",
                "must be at least 1, got 0",
            ));
        }
        if self.width == Width::MaxLength && self.max_length.is_none() {
            return Err(Error::invalid(
                "max_length",
                "padding='max_length' needs max_length",
            ));
        }
        Ok(())
    }
}

/// Texts encoded and measured but not yet laid out: [`EncodedBatch::fill`] writes them into
/// (rows x width) outputs, which the caller may take from anywhere (fresh or reused memory).
pub struct EncodedBatch<'a> {
    blocks: Vec<Block>,
    /// Tokens per row, in the caller's buffer.
    lengths: &'a [i64],
    width: usize,
    bos: Option<u32>,
    eos: Option<u32>,
    options: BatchOptions,
}

impl EncodedBatch<'_> {
    /// Number of texts.
    pub fn rows(&self) -> usize {
        self.lengths.len()
    }

    /// Padded row length.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Tokens per row (after truncation).
    pub fn lengths(&self) -> &[i64] {
        self.lengths
    }

    /// The content ids of text `row`.
    fn content(&self, row: usize) -> &[u32] {
        let block = &self.blocks[row / BLOCK];
        let i = row % BLOCK;
        let start = if i == 0 { 0 } else { block.ends[i - 1] };
        &block.ids[start..block.ends[i]]
    }

    /// Write the padded ids and the attention mask, every element of both (their previous
    /// contents do not matter), rows in parallel.
    pub fn fill(&self, input_ids: &mut [i64], attention_mask: &mut [i64]) -> Result<()> {
        let (rows, width) = (self.rows(), self.width);
        for (name, len) in [
            ("input_ids", input_ids.len()),
            ("attention_mask", attention_mask.len()),
        ] {
            if len != rows * width {
                return Err(Error::invalid(
                    name,
                    format!("must hold {rows} x {width} elements, got {len}"),
                ));
            }
        }
        if width == 0 {
            return Ok(());
        }
        let options = &self.options;
        let num_special = self.bos.is_some() as usize + self.eos.is_some() as usize;
        parallel::install_sized(rows * width, FILL_NS_PER_ELEMENT, || {
            input_ids
                .par_chunks_mut(width)
                .zip(attention_mask.par_chunks_mut(width))
                .enumerate()
                .for_each(|(row, (ids, mask))| {
                    let len = self.lengths[row] as usize;
                    let start = match options.padding_side {
                        Side::Right => 0,
                        Side::Left => width - len,
                    };
                    let keep = len - num_special;
                    let ids_of_row = self.content(row);
                    let kept = match options.truncation_side {
                        Side::Right => &ids_of_row[..keep],
                        Side::Left => &ids_of_row[ids_of_row.len() - keep..],
                    };
                    let out = &mut ids[start..start + len];
                    let mut at = 0;
                    if let Some(bos) = self.bos {
                        out[0] = bos as i64;
                        at = 1;
                    }
                    for (slot, &id) in out[at..at + keep].iter_mut().zip(kept) {
                        *slot = id as i64;
                    }
                    if let Some(eos) = self.eos {
                        out[len - 1] = eos as i64;
                    }
                    ids[..start].fill(options.pad_id);
                    ids[start + len..].fill(options.pad_id);
                    mask[..start].fill(0);
                    mask[start..start + len].fill(1);
                    mask[start + len..].fill(0);
                })
        })
    }
}

/// The work of encoding `texts` in bytes (each text's own overhead counted as 16), summed
/// only until the batch is clearly worth the pool: 100k texts need not be counted for that.
fn encode_work(texts: &[&str]) -> usize {
    const ENOUGH: usize = 1 << 20;
    let mut total = 0;
    for text in texts {
        total += text.len() + 16;
        if total >= ENOUGH {
            break;
        }
    }
    total
}

impl Drop for EncodedBatch<'_> {
    fn drop(&mut self) {
        ID_BUFFERS.give_back(self.blocks.drain(..).map(|block| block.ids));
    }
}

impl Tokenizer {
    /// Encode `texts` and measure the batch they make, writing each row's token count into
    /// `lengths` (one per text); [`EncodedBatch::fill`] lays it out.
    pub fn encode_texts<'a>(
        &self,
        texts: &[&str],
        options: &BatchOptions,
        lengths: &'a mut [i64],
    ) -> Result<EncodedBatch<'a>> {
        if lengths.len() != texts.len() {
            return Err(Error::invalid(
                "lengths",
                format!("must hold {} elements, got {}", texts.len(), lengths.len()),
            ));
        }
        let (bos, eos) = if options.add_special_tokens {
            self.added_specials()
        } else {
            (None, None)
        };
        let num_special = bos.is_some() as usize + eos.is_some() as usize;
        options.check(num_special)?;
        // Every block's result is kept, in order, so the first failing text decides the error
        // whichever worker finishes first (rayon's own `Result` collect keeps any one).
        let encoded: Vec<Result<Block>> =
            parallel::install_sized(encode_work(texts), ENCODE_NS_PER_BYTE, || {
                texts
                    .par_chunks(BLOCK)
                    .map(|block| {
                        let mut ids = ID_BUFFERS.take(block.len() * 24);
                        let mut ends = Vec::with_capacity(block.len());
                        for text in block {
                            self.encode_content(text, &mut ids)?;
                            ends.push(ids.len());
                        }
                        Ok(Block { ids, ends })
                    })
                    .collect()
            })?;
        let blocks = encoded.into_iter().collect::<Result<Vec<Block>>>()?;
        let mut row = 0;
        for block in &blocks {
            let mut start = 0;
            for &end in &block.ends {
                let full = end - start + num_special;
                start = end;
                let kept = match options.max_length {
                    Some(max) if full > max => {
                        if !options.truncation {
                            return Err(Error::invalid(
                                "truncation",
                                format!(
                                    "{}[{row}] has {full} tokens, more than max_length={max}; pass truncation=True or a larger max_length",
                                    options.texts_arg
                                ),
                            ));
                        }
                        max
                    }
                    _ => full,
                };
                lengths[row] = kept as i64;
                row += 1;
            }
        }
        let mut width = match options.width {
            Width::Longest => lengths.iter().copied().max().unwrap_or(0) as usize,
            Width::MaxLength => options.max_length.unwrap_or(0),
        };
        if let Some(multiple) = options.pad_to_multiple_of {
            width = width.div_ceil(multiple) * multiple;
        }
        Ok(EncodedBatch {
            blocks,
            lengths: &*lengths,
            width,
            bos,
            eos,
            options: *options,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    #[test]
    fn fill_overwrites_whatever_the_outputs_held() {
        let vocab = ["a", "b", "c"].map(String::from).to_vec();
        let config = Config {
            add_bos: true,
            ..Config::default()
        };
        let tokenizer = Tokenizer::word(vocab, config).unwrap_or_else(|e| panic!("{e}"));
        let texts = ["a b c", "", "c c", "b"];
        for padding_side in [Side::Left, Side::Right] {
            let options = BatchOptions {
                add_special_tokens: true,
                max_length: None,
                truncation: false,
                truncation_side: Side::Right,
                width: Width::Longest,
                pad_to_multiple_of: Some(3),
                padding_side,
                pad_id: 5,
                texts_arg: "text",
            };
            let mut lengths = [-9; 4];
            let encoded = tokenizer
                .encode_texts(&texts, &options, &mut lengths)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(encoded.lengths(), [4, 1, 3, 2]); // BOS + words
            assert_eq!((encoded.rows(), encoded.width()), (4, 6));
            // The same batch into zeroed and into junk-filled outputs.
            let mut zeroed = (vec![0; 24], vec![0; 24]);
            let mut junk = (vec![-77; 24], vec![-77; 24]);
            for (ids, mask) in [&mut zeroed, &mut junk] {
                encoded.fill(ids, mask).unwrap_or_else(|e| panic!("{e}"));
            }
            assert_eq!(zeroed, junk);
            let (ids, mask) = junk;
            let (expected_row_2, expected_mask_2) = match padding_side {
                Side::Right => ([4, 9, 9, 5, 5, 5], [1, 1, 1, 0, 0, 0]),
                Side::Left => ([5, 5, 5, 4, 9, 9], [0, 0, 0, 1, 1, 1]),
            };
            assert_eq!(ids[12..18], expected_row_2);
            assert_eq!(mask[12..18], expected_mask_2);
            assert!(encoded.fill(&mut [0; 3], &mut [0; 24]).is_err());
        }
    }
}
