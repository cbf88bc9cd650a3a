//! The packed-batch checker: finds every kind of packing bug and reports it, never raises.
//!
//! Segments are maximal runs of one `document_ids` value (not -1) inside a row; everything the
//! checker expects follows the conventions in `batch.rs`. Per-position kinds (labels, masks,
//! pad ids) count every bad position; per-segment kinds (position ids, tokens) count each
//! segment once. At most [`MAX_REPORTED`](crate::packing::check::MAX_REPORTED) violations
//! are kept in detail, in row order; the count covers all of them.

use rayon::prelude::*;

use super::batch::LabelConvention;
use crate::error::{Error, Result};
use crate::parallel;

mod clean_row;

/// Rows per parallel task (tens of microseconds of checking at 2048 tokens per row).
const ROWS_PER_TASK: usize = 8;
/// Rough cost of checking one cell of the batch, for deciding whether a batch is worth
/// waking the pool for.
const NS_PER_CELL: u64 = 8;

/// Violations kept in detail (all are counted).
pub const MAX_REPORTED: usize = 1000;

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A row holds more tokens than the capacity.
    OverCapacity,
    /// A source document is missing, or some of its tokens are.
    TokenLost,
    /// A source document's tokens appear more often than in the source.
    TokenDuplicated,
    /// A document's tokens are all there but not in the source's order (or not its values).
    TokenReordered,
    /// Position ids not 0 at a segment start or not +1 inside.
    PositionIds,
    /// Document ids out of range or a document split within a row.
    DocumentIds,
    /// cu_seqlens (or max_seqlen, or their Hugging Face names) not monotone or not the
    /// segment boundaries.
    CuSeqlens,
    /// A sequence index (Hugging Face's `seq_idx`) that is not its segment's ordinal.
    SeqIdx,
    /// document_starts not the segment starts.
    DocumentStarts,
    /// seq_lengths not the tokens per row.
    SeqLengths,
    /// A label at a segment boundary that is not ignore_index (it would cross the boundary).
    LabelCrossesBoundary,
    /// A label inside a segment that is not the token the convention expects.
    LabelMismatch,
    /// A label on padding that is not ignore_index.
    LabelNotIgnoredOnPadding,
    /// The attention mask is not 1 exactly on the tokens.
    AttentionMask,
    /// Padding that is not pad_token_id.
    PadToken,
}

impl Kind {
    /// The name reports use.
    pub fn name(self) -> &'static str {
        match self {
            Self::OverCapacity => "over_capacity",
            Self::TokenLost => "token_lost",
            Self::TokenDuplicated => "token_duplicated",
            Self::TokenReordered => "token_reordered",
            Self::PositionIds => "position_ids",
            Self::DocumentIds => "document_ids",
            Self::CuSeqlens => "cu_seqlens",
            Self::SeqIdx => "seq_idx",
            Self::DocumentStarts => "document_starts",
            Self::SeqLengths => "seq_lengths",
            Self::LabelCrossesBoundary => "label_crosses_boundary",
            Self::LabelMismatch => "label_mismatch",
            Self::LabelNotIgnoredOnPadding => "label_not_ignored_on_padding",
            Self::AttentionMask => "attention_mask",
            Self::PadToken => "pad_token",
        }
    }
}

/// One violation: where (row and position, -1 when not tied to one) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The kind.
    pub kind: Kind,
    /// The row, or -1.
    pub row: i64,
    /// The position in the row (or index in a 1-D array), or -1.
    pub position: i64,
    /// What was found and what was expected.
    pub detail: String,
}

/// The outcome of a check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The first [`MAX_REPORTED`] violations in row order.
    pub violations: Vec<Violation>,
    /// How many there are in all.
    pub num_violations: u64,
}

impl Report {
    fn add(&mut self, kind: Kind, row: i64, position: i64, detail: impl FnOnce() -> String) {
        self.num_violations += 1;
        if self.violations.len() < MAX_REPORTED {
            self.violations.push(Violation {
                kind,
                row,
                position,
                detail: detail(),
            });
        }
    }

    fn merge(&mut self, other: Report) {
        self.num_violations += other.num_violations;
        let room = MAX_REPORTED - self.violations.len();
        self.violations
            .extend(other.violations.into_iter().take(room));
    }
}

/// A batch as the checker reads it: (rows, width) arrays in row-major order; everything but
/// `input_ids` and `document_ids` is optional and checked only when present.
#[derive(Debug, Clone, Copy)]
pub struct BatchView<'a> {
    /// Rows.
    pub rows: usize,
    /// Positions per row.
    pub width: usize,
    /// Token ids.
    pub input_ids: &'a [i64],
    /// Segment identity, -1 on padding.
    pub document_ids: &'a [i64],
    /// Labels.
    pub labels: Option<&'a [i64]>,
    /// Position ids.
    pub position_ids: Option<&'a [i64]>,
    /// 2-D attention mask.
    pub attention_mask: Option<&'a [i64]>,
    /// Segment boundaries over the flattened batch, under each name the batch gives them
    /// (`cu_seqlens`, and Hugging Face's `cu_seq_lens_q` and `cu_seq_lens_k`).
    pub cu_seqlens: &'a [(&'a str, &'a [i64])],
    /// The longest segment, under each name the batch gives it (`max_seqlen`,
    /// `max_length_q`, `max_length_k`).
    pub max_seqlen: &'a [(&'a str, i64)],
    /// Each token's segment ordinal over the flattened batch (Hugging Face's `seq_idx`);
    /// padding is not checked.
    pub seq_idx: Option<&'a [i64]>,
    /// (rows, columns) segment starts padded with -1, and the number of columns.
    pub document_starts: Option<(&'a [i64], usize)>,
    /// Tokens per row.
    pub seq_lengths: Option<&'a [i64]>,
}

/// The source documents: all tokens concatenated, and each document's length.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    /// Concatenated tokens.
    pub tokens: &'a [i64],
    /// Length of each document.
    pub lengths: &'a [i64],
}

/// What the batch should look like.
#[derive(Debug, Clone, Copy)]
pub struct Expectations {
    /// Most tokens a row may hold.
    pub capacity: Option<u32>,
    /// Token id on padding.
    pub pad_token_id: i64,
    /// Label on padding and at boundaries.
    pub ignore_index: i64,
    /// Label convention.
    pub labels: LabelConvention,
}

/// A segment: `length` tokens of `document` at (`row`, `start`).
#[derive(Debug, Clone, Copy)]
struct Segment {
    row: usize,
    start: usize,
    length: usize,
    document: i64,
    /// The segment is its whole source document, token for token (checked while the row is
    /// in cache, so the common case never reads the batch twice).
    whole_source: bool,
}

/// Check a packed batch.
///
/// # Errors
/// [`Error::ShapeMismatch`] naming the array whose size does not match (rows, width), and
/// [`Error::InvalidArgument`] for source lengths that do not add up to the source tokens.
pub fn check_packing(
    batch: BatchView<'_>,
    sources: Option<Sources<'_>>,
    expect: Expectations,
) -> Result<Report> {
    check_shapes(&batch)?;
    let source_starts = match sources {
        Some(sources) => Some(source_starts(sources)?),
        None => None,
    };
    let documents = sources.map(|s| s.lengths.len());
    let cells = batch.rows.saturating_mul(batch.width);
    parallel::install_sized(cells, NS_PER_CELL, || {
        let tasks: Vec<Checked> = (0..batch.rows)
            .into_par_iter()
            // Small tasks: a worker that wakes late (milliseconds on a busy VM) can still
            // take half of what is left; with a few big ones the caller has begun them all.
            .fold_chunks(ROWS_PER_TASK, Checked::default, |mut checked, row| {
                let sources = sources.zip(source_starts.as_deref());
                check_row(&batch, row, documents, sources, expect, &mut checked);
                checked
            })
            .collect();
        let mut report = Report::default();
        let mut segments = Vec::with_capacity(tasks.iter().map(|t| t.segments.len()).sum());
        for task in tasks {
            report.merge(task.report);
            segments.extend(task.segments);
        }
        check_boundaries(&batch, &segments, &mut report);
        check_sequence_index(&batch, &segments, &mut report);
        if let (Some(sources), Some(starts)) = (sources, source_starts) {
            report.merge(check_tokens(&batch, &segments, sources, &starts));
        }
        report
    })
}

fn check_shapes(batch: &BatchView<'_>) -> Result<()> {
    let cells = batch.rows * batch.width;
    let expected = format!("({}, {})", batch.rows, batch.width);
    let arrays = [
        ("input_ids", Some(batch.input_ids)),
        ("document_ids", Some(batch.document_ids)),
        ("labels", batch.labels),
        ("position_ids", batch.position_ids),
        ("attention_mask", batch.attention_mask),
        ("seq_idx", batch.seq_idx),
    ];
    for (arg, array) in arrays {
        if let Some(array) = array
            && array.len() != cells
        {
            return Err(Error::ShapeMismatch {
                arg,
                expected: expected.clone(),
                got: format!("{} elements", array.len()),
            });
        }
    }
    if let Some(lengths) = batch.seq_lengths
        && lengths.len() != batch.rows
    {
        return Err(Error::ShapeMismatch {
            arg: "seq_lengths",
            expected: format!("({},)", batch.rows),
            got: format!("({},)", lengths.len()),
        });
    }
    if let Some((starts, columns)) = batch.document_starts
        && starts.len() != batch.rows * columns
    {
        return Err(Error::ShapeMismatch {
            arg: "document_starts",
            expected: format!("({}, {columns})", batch.rows),
            got: format!("{} elements", starts.len()),
        });
    }
    Ok(())
}

fn source_starts(sources: Sources<'_>) -> Result<Vec<usize>> {
    let mut starts = Vec::with_capacity(sources.lengths.len());
    let mut total = 0u64;
    for (index, &length) in sources.lengths.iter().enumerate() {
        if length < 0 {
            return Err(Error::invalid(
                "sequences",
                format!("lengths must be >= 0, got {length} at index {index}"),
            ));
        }
        starts.push(total as usize);
        total += length as u64;
    }
    if total != sources.tokens.len() as u64 {
        return Err(Error::invalid(
            "sequences",
            format!(
                "lengths must sum to the number of tokens ({}), got a sum of {total}",
                sources.tokens.len()
            ),
        ));
    }
    Ok(starts)
}

/// What checking a run of rows found, appended row by row: one allocation per task of rows
/// instead of several per row, which the serial merge afterwards had to free.
#[derive(Default)]
struct Checked {
    /// Violations, in row order.
    report: Report,
    /// The rows' segments, in row-major order.
    segments: Vec<Segment>,
    /// Scratch: one row's (document, start) pairs.
    by_document: Vec<(i64, usize)>,
}

fn check_row(
    batch: &BatchView<'_>,
    row: usize,
    documents: Option<usize>,
    sources: Option<(Sources<'_>, &[usize])>,
    expect: Expectations,
    checked: &mut Checked,
) {
    let Checked {
        report,
        segments: all_segments,
        by_document,
    } = checked;
    let span = row * batch.width..(row + 1) * batch.width;
    let ids = &batch.input_ids[span.clone()];
    let docs = &batch.document_ids[span.clone()];
    let (r, w) = (row as i64, batch.width);

    let first = all_segments.len();
    let is_clean = clean_row::clean_row_segments(batch, row, sources, expect, all_segments);
    if !is_clean {
        all_segments.truncate(first);
        find_segments(batch, row, documents, sources, report, all_segments);
    }
    let segments = &all_segments[first..];
    by_document.clear();
    by_document.extend(segments.iter().map(|s| (s.document, s.start)));
    by_document.sort_unstable();
    for pair in by_document.windows(2) {
        if pair[0].0 == pair[1].0 {
            report.add(Kind::DocumentIds, r, pair[1].1 as i64, || {
                format!(
                    "document {} appears again at position {} of the row (first at {}); a \
                     document's tokens must be contiguous within a row",
                    pair[0].0, pair[1].1, pair[0].1
                )
            });
        }
    }

    let tokens: usize = segments.iter().map(|s| s.length).sum();
    if let Some(capacity) = expect.capacity
        && tokens > capacity as usize
    {
        let overflow_at = segments
            .iter()
            .scan(0, |seen, s| {
                *seen += s.length;
                Some((*seen, s))
            })
            .find(|(seen, _)| *seen > capacity as usize)
            .map_or(0, |(seen, s)| {
                s.start + s.length - (seen - capacity as usize)
            });
        report.add(Kind::OverCapacity, r, overflow_at as i64, || {
            format!("row holds {tokens} tokens, capacity is {capacity}")
        });
    }
    if let Some(lengths) = batch.seq_lengths
        && lengths[row] != tokens as i64
    {
        report.add(Kind::SeqLengths, r, -1, || {
            format!(
                "seq_lengths is {}, the row holds {tokens} tokens",
                lengths[row]
            )
        });
    }
    if let Some((starts, columns)) = batch.document_starts {
        let given = &starts[row * columns..(row + 1) * columns];
        let expected = segments
            .iter()
            .map(|s| s.start as i64)
            .chain(std::iter::repeat(-1));
        if let Some((column, (&got, want))) = given
            .iter()
            .zip(expected)
            .enumerate()
            .find(|(_, (got, want))| **got != *want)
        {
            report.add(Kind::DocumentStarts, r, column as i64, || {
                format!("document_starts[{row}, {column}] is {got}, expected {want}")
            });
        } else if segments.len() > columns {
            report.add(Kind::DocumentStarts, r, columns as i64, || {
                format!(
                    "row has {} segments, document_starts has {columns} columns",
                    segments.len()
                )
            });
        }
    }

    if is_clean {
        return;
    }
    for s in segments {
        let range = s.start..s.start + s.length;
        if let Some(positions) = batch.position_ids {
            let positions = &positions[span.start + range.start..span.start + range.end];
            if let Some(k) = (0..s.length).find(|&k| positions[k] != k as i64) {
                report.add(Kind::PositionIds, r, (s.start + k) as i64, || {
                    let what = if k == 0 { "at the start of" } else { "inside" };
                    format!(
                        "position id {} {what} document {}, expected {k}",
                        positions[k], s.document
                    )
                });
            }
        }
        if let Some(labels) = batch.labels {
            let labels = &labels[span.start + range.start..span.start + range.end];
            let segment_ids = &ids[range.clone()];
            for (k, &label) in labels.iter().enumerate() {
                let want = expect.labels.label(segment_ids, k, expect.ignore_index);
                if label == want {
                    continue;
                }
                let at = (s.start + k) as i64;
                if want == expect.ignore_index {
                    report.add(Kind::LabelCrossesBoundary, r, at, || {
                        format!(
                            "label {label} at the {} token of document {} crosses the \
                             boundary; expected ignore_index {}",
                            if k == 0 { "first" } else { "last" },
                            s.document,
                            expect.ignore_index
                        )
                    });
                } else {
                    report.add(Kind::LabelMismatch, r, at, || {
                        format!("label {label} in document {}, expected {want}", s.document)
                    });
                }
            }
        }
    }

    let mask = batch.attention_mask.map(|m| &m[span.clone()]);
    let labels = batch.labels.map(|l| &l[span.clone()]);
    for p in 0..w {
        let padding = docs[p] == -1;
        if let Some(mask) = mask
            && mask[p] != i64::from(!padding)
        {
            report.add(Kind::AttentionMask, r, p as i64, || {
                let what = if padding { "padding" } else { "a token" };
                format!(
                    "attention mask {} on {what}, expected {}",
                    mask[p],
                    i64::from(!padding)
                )
            });
        }
        if !padding {
            continue;
        }
        if ids[p] != expect.pad_token_id {
            report.add(Kind::PadToken, r, p as i64, || {
                format!(
                    "input id {} on padding, expected pad_token_id {}",
                    ids[p], expect.pad_token_id
                )
            });
        }
        if let Some(labels) = labels
            && labels[p] != expect.ignore_index
        {
            report.add(Kind::LabelNotIgnoredOnPadding, r, p as i64, || {
                format!(
                    "label {} on padding, expected ignore_index {}",
                    labels[p], expect.ignore_index
                )
            });
        }
    }
}

/// Append the row's segments (maximal runs of one document id) to `segments`, reporting ids
/// out of range.
fn find_segments(
    batch: &BatchView<'_>,
    row: usize,
    documents: Option<usize>,
    sources: Option<(Sources<'_>, &[usize])>,
    report: &mut Report,
    segments: &mut Vec<Segment>,
) {
    let span = row * batch.width..(row + 1) * batch.width;
    let ids = &batch.input_ids[span.clone()];
    let docs = &batch.document_ids[span];
    let (r, w) = (row as i64, batch.width);
    let mut p = 0;
    while p < w {
        let document = docs[p];
        let in_range = document >= -1 && documents.is_none_or(|n| document < n as i64);
        if !in_range {
            report.add(Kind::DocumentIds, r, p as i64, || {
                let bound = documents.map_or(String::new(), |n| format!(" or [0, {n})"));
                format!("document id {document} is not -1{bound}")
            });
        }
        let end = p + docs[p..].iter().take_while(|&&d| d == document).count();
        if document != -1 && in_range {
            let whole_source = sources.is_some_and(|(sources, starts)| {
                let d = document as usize;
                let length = sources.lengths[d] as usize;
                let source = &sources.tokens[starts[d]..starts[d] + length];
                length == end - p && ids[p..end] == *source
            });
            segments.push(Segment {
                row,
                start: p,
                length: end - p,
                document,
                whole_source,
            });
        }
        p = end;
    }
}

/// cu_seqlens and max_seqlen (under each of their names) against the segments, in
/// row-major order.
fn check_boundaries(batch: &BatchView<'_>, segments: &[Segment], report: &mut Report) {
    if !batch.cu_seqlens.is_empty() {
        let mut expected = Vec::with_capacity(segments.len() + 1);
        expected.push(0i64);
        for s in segments {
            expected.push(expected[expected.len() - 1] + s.length as i64);
        }
        for &(name, cu) in batch.cu_seqlens {
            check_cu_seqlens(name, cu, &expected, report);
        }
    }
    let longest = segments.iter().map(|s| s.length as i64).max().unwrap_or(0);
    for &(name, max_seqlen) in batch.max_seqlen {
        if max_seqlen != longest {
            report.add(Kind::CuSeqlens, -1, -1, || {
                format!("{name} is {max_seqlen}, the longest segment has {longest} tokens")
            });
        }
    }
}

/// One cu_seqlens array (called `name` in the batch) against the `expected` boundaries.
fn check_cu_seqlens(name: &str, cu: &[i64], expected: &[i64], report: &mut Report) {
    if let Some(&first) = cu.first()
        && first != 0
    {
        report.add(Kind::CuSeqlens, -1, 0, || {
            format!("{name}[0] is {first}, expected 0")
        });
    } else if let Some(i) = cu.windows(2).position(|w| w[1] <= w[0]) {
        report.add(Kind::CuSeqlens, -1, i as i64 + 1, || {
            format!(
                "{name} not increasing: {} then {} at index {}",
                cu[i],
                cu[i + 1],
                i + 1
            )
        });
    } else if let Some(i) =
        (0..cu.len().max(expected.len())).find(|&i| cu.get(i) != expected.get(i))
    {
        let show = |v: Option<&i64>| v.map_or("nothing".to_string(), i64::to_string);
        report.add(Kind::CuSeqlens, -1, i as i64, || {
            format!(
                "{name}[{i}] is {}, the segment boundaries give {} ({} segments)",
                show(cu.get(i)),
                show(expected.get(i)),
                expected.len() - 1
            )
        });
    }
}

/// seq_idx against each segment's ordinal in row-major order: one violation per segment,
/// at its first wrong position.
fn check_sequence_index(batch: &BatchView<'_>, segments: &[Segment], report: &mut Report) {
    let Some(seq_idx) = batch.seq_idx else {
        return;
    };
    for (ordinal, segment) in segments.iter().enumerate() {
        let start = segment.row * batch.width + segment.start;
        let values = &seq_idx[start..start + segment.length];
        if let Some(offset) = values.iter().position(|&v| v != ordinal as i64) {
            report.add(
                Kind::SeqIdx,
                segment.row as i64,
                (segment.start + offset) as i64,
                || {
                    format!(
                        "seq_idx is {}, expected {ordinal} (the segment's ordinal in the \
                         flattened batch)",
                        values[offset]
                    )
                },
            );
        }
    }
}

/// Each source document's tokens against the segments that carry its id.
fn check_tokens(
    batch: &BatchView<'_>,
    segments: &[Segment],
    sources: Sources<'_>,
    starts: &[usize],
) -> Report {
    let documents = sources.lengths.len();
    // Where each document's segments start in `grouped`.
    let mut offsets = vec![0usize; documents + 1];
    for s in segments {
        offsets[s.document as usize + 1] += 1;
    }
    // The common case: every document is one segment that the row pass already found equal
    // to its source, and there is nothing more to read.
    if offsets[1..].iter().all(|&count| count == 1) && segments.iter().all(|s| s.whole_source) {
        return Report::default();
    }
    for d in 0..documents {
        offsets[d + 1] += offsets[d];
    }
    // Stable: a document's segments stay in row-major order.
    let mut grouped = segments.to_vec();
    grouped.sort_by_key(|s| s.document);
    let reports: Vec<Report> = (0..documents)
        .into_par_iter()
        .map(|document| {
            let pieces = &grouped[offsets[document]..offsets[document + 1]];
            let length = sources.lengths[document] as usize;
            let source = &sources.tokens[starts[document]..starts[document] + length];
            let mut report = Report::default();
            if !matches!(pieces[..], [only] if only.whole_source) {
                check_document(batch, document, source, pieces, &mut report);
            }
            report
        })
        .collect();
    let mut report = Report::default();
    reports.into_iter().for_each(|r| report.merge(r));
    report
}

fn check_document(
    batch: &BatchView<'_>,
    document: usize,
    source: &[i64],
    pieces: &[Segment],
    report: &mut Report,
) {
    let tokens_of = |s: &Segment| {
        let at = s.row * batch.width + s.start;
        &batch.input_ids[at..at + s.length]
    };
    let packed: usize = pieces.iter().map(|s| s.length).sum();
    let length = source.len();
    let (row, start) = pieces
        .first()
        .map_or((-1, -1), |s| (s.row as i64, s.start as i64));
    if packed < length {
        report.add(Kind::TokenLost, row, start, || {
            if pieces.is_empty() {
                format!("document {document} ({length} tokens) is missing")
            } else {
                format!("document {document} has {packed} of its {length} tokens in the batch")
            }
        });
        return;
    }
    if packed > length {
        report.add(Kind::TokenDuplicated, row, start, || {
            format!("document {document} has {packed} tokens in the batch, the source has {length}")
        });
        return;
    }
    if let [only] = pieces {
        let got = tokens_of(only);
        if got == source {
            return;
        }
        if let Some(k) = (0..length).find(|&k| got[k] != source[k]) {
            report.add(
                Kind::TokenReordered,
                only.row as i64,
                (only.start + k) as i64,
                || {
                    format!(
                        "token {} of document {document} is {}, the source has {}",
                        k, got[k], source[k]
                    )
                },
            );
        }
        return;
    }
    // A document cut into several segments: tile the source with them, longest match first
    // (exact for consecutive chunks of equal size with a shorter last one, as `split` makes).
    let mut used = vec![false; pieces.len()];
    let mut offset = 0;
    while offset < length {
        let next = (0..pieces.len())
            .filter(|&i| !used[i] && offset + pieces[i].length <= length)
            .filter(|&i| tokens_of(&pieces[i]) == &source[offset..offset + pieces[i].length])
            .max_by_key(|&i| (pieces[i].length, std::cmp::Reverse(i)));
        match next {
            Some(i) => {
                used[i] = true;
                offset += pieces[i].length;
            }
            None => {
                let s = pieces[used.iter().position(|u| !u).unwrap_or(0)];
                report.add(Kind::TokenReordered, s.row as i64, s.start as i64, || {
                    format!(
                        "document {document} is split into {} segments that do not rebuild \
                         it in order: nothing matches its tokens from offset {offset}",
                        pieces.len()
                    )
                });
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::batch::{Filler, pack_sequences};
    use super::super::{Overflow, Strategy};
    use super::*;

    fn check(
        tokens: &[i64],
        lengths: &[i64],
        capacity: u32,
        mutate: impl Fn(&mut Vec<i64>),
    ) -> Report {
        let filler = Filler {
            pad_token_id: 0,
            ignore_index: -100,
            labels: LabelConvention::Aligned,
        };
        let batch = pack_sequences(
            tokens,
            lengths,
            capacity,
            Strategy::BestFitDecreasing,
            Overflow::Split,
            filler,
        )
        .unwrap();
        let mut input_ids = batch.input_ids.clone();
        mutate(&mut input_ids);
        let cu: Vec<i64> = batch.cu_seqlens.iter().map(|&c| i64::from(c)).collect();
        let view = BatchView {
            rows: batch.rows,
            width: batch.capacity,
            input_ids: &input_ids,
            document_ids: &batch.document_ids,
            labels: Some(&batch.labels),
            position_ids: Some(&batch.position_ids),
            attention_mask: Some(&batch.attention_mask),
            cu_seqlens: &[("cu_seqlens", &cu)],
            max_seqlen: &[("max_seqlen", batch.max_seqlen)],
            seq_idx: None,
            document_starts: Some((&batch.document_starts, batch.max_segments)),
            seq_lengths: Some(&batch.seq_lengths),
        };
        let expect = Expectations {
            capacity: Some(capacity),
            pad_token_id: 0,
            ignore_index: -100,
            labels: LabelConvention::Aligned,
        };
        check_packing(view, Some(Sources { tokens, lengths }), expect).unwrap()
    }

    #[test]
    fn split_documents_pass_and_a_swapped_token_is_found() {
        let tokens: Vec<i64> = (1..=23).collect();
        assert_eq!(check(&tokens, &[9, 3, 11], 4, |_| {}), Report::default());
        // Swap two tokens of the first row: the labels follow the old tokens, so only the
        // token order and the labels complain.
        let report = check(&tokens, &[9, 3, 11], 4, |ids| ids.swap(1, 2));
        let kinds: Vec<&str> = report.violations.iter().map(|v| v.kind.name()).collect();
        assert!(kinds.contains(&"token_reordered"), "{kinds:?}");
    }
}
