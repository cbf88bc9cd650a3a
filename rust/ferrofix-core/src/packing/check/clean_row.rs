//! The checker's fast path: whether a row is exactly what the conventions (and the sources)
//! say, in one pass that reads every array of the row side by side.
//!
//! Most rows of a batch under test are clean and the check is bound by memory. Reading a
//! row's arrays one after another starts a new short stream per array and row, and the
//! hardware prefetcher ramps up again on each; walking the row in strips, every array
//! advancing together, keeps all of them streaming (rows are contiguous, so the streams run
//! on across rows too). A row that fails goes down the reporting path in `check.rs`, which
//! finds out where and why.

use std::ops::Range;

use super::super::batch::LabelConvention;
use super::{BatchView, Expectations, Segment, Sources};

/// Elements per strip: a strip of every array (6 × 2 KiB) stays in L1.
const STRIP: usize = 256;

/// One row's arrays.
struct Row<'a> {
    ids: &'a [i64],
    docs: &'a [i64],
    labels: Option<&'a [i64]>,
    positions: Option<&'a [i64]>,
    mask: Option<&'a [i64]>,
}

/// Whether every per-position check of the row passes and, with sources, every segment is
/// its whole source document token for token. The row's segments are appended to
/// `segments` as they are found (the caller drops them when the row is not clean).
pub(super) fn clean_row_segments(
    batch: &BatchView<'_>,
    row: usize,
    sources: Option<(Sources<'_>, &[usize])>,
    expect: Expectations,
    segments: &mut Vec<Segment>,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the running CPU supports AVX2, checked just above.
        return unsafe { clean_row_segments_avx2(batch, row, sources, expect, segments) };
    }
    clean_row_segments_portable(batch, row, sources, expect, segments)
}

/// [`clean_row_segments_portable`] compiled with AVX2, whose 64-bit compares the baseline
/// lacks.
///
/// # Safety
/// Only call on a CPU that supports AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn clean_row_segments_avx2(
    batch: &BatchView<'_>,
    row: usize,
    sources: Option<(Sources<'_>, &[usize])>,
    expect: Expectations,
    segments: &mut Vec<Segment>,
) -> bool {
    clean_row_segments_portable(batch, row, sources, expect, segments)
}

#[inline(always)]
fn clean_row_segments_portable(
    batch: &BatchView<'_>,
    row: usize,
    sources: Option<(Sources<'_>, &[usize])>,
    expect: Expectations,
    segments: &mut Vec<Segment>,
) -> bool {
    let span = row * batch.width..(row + 1) * batch.width;
    let arrays = Row {
        ids: &batch.input_ids[span.clone()],
        docs: &batch.document_ids[span.clone()],
        labels: batch.labels.map(|a| &a[span.clone()]),
        positions: batch.position_ids.map(|a| &a[span.clone()]),
        mask: batch.attention_mask.map(|a| &a[span.clone()]),
    };
    let mut p = 0;
    while p < batch.width {
        let document = arrays.docs[p];
        let end = run_end(arrays.docs, p);
        if document == -1 {
            if !padding_clean(&arrays, p..end, expect) {
                return false;
            }
        } else {
            let source = match sources {
                None if document >= 0 => None,
                None => return false,
                Some((sources, starts)) => {
                    let length = usize::try_from(document)
                        .ok()
                        .and_then(|d| sources.lengths.get(d));
                    match length {
                        Some(&length) if length as usize == end - p => {
                            let start = starts[document as usize];
                            Some(&sources.tokens[start..start + end - p])
                        }
                        _ => return false,
                    }
                }
            };
            if !segment_clean(&arrays, p..end, source, expect) {
                return false;
            }
            segments.push(Segment {
                row,
                start: p,
                length: end - p,
                document,
                whole_source: source.is_some(),
            });
        }
        p = end;
    }
    true
}

/// The end of the run of equal values that starts at `start`.
#[inline(always)]
fn run_end(values: &[i64], start: usize) -> usize {
    let value = values[start];
    let mut end = start;
    for strip in values[start..].chunks(16) {
        if any(strip.iter().map(|&v| v != value)) {
            return end + strip.iter().position(|&v| v != value).unwrap_or(0);
        }
        end += strip.len();
    }
    values.len()
}

/// Tokens, positions, labels and mask of one segment, strip by strip.
#[inline(always)]
fn segment_clean(
    row: &Row<'_>,
    range: Range<usize>,
    source: Option<&[i64]>,
    expect: Expectations,
) -> bool {
    let ignore = expect.ignore_index;
    // The label that would cross the boundary must be ignored; the others are tokens, in
    // `label_slices` below.
    let boundary = match expect.labels {
        LabelConvention::Aligned => range.start,
        LabelConvention::Shifted => range.end - 1,
    };
    if row.labels.is_some_and(|labels| labels[boundary] != ignore) {
        return false;
    }
    let mut k = 0;
    while k < range.len() {
        let strip = k..(k + STRIP).min(range.len());
        let at = range.start + strip.start..range.start + strip.end;
        let ids = &row.ids[at.clone()];
        let mut bad = source.is_some_and(|source| ids != &source[strip.clone()]);
        if let Some(positions) = row.positions {
            let positions = &positions[at.clone()];
            bad |= any((strip.start as i64..).zip(positions).map(|(k, &p)| p != k));
        }
        if let Some(mask) = row.mask {
            bad |= any(mask[at.clone()].iter().map(|&m| m != 1));
        }
        if let Some(labels) = row.labels {
            let (labels, tokens) = label_slices(labels, row.ids, at, &range, expect.labels);
            bad |= labels != tokens;
        }
        if bad {
            return false;
        }
        k = strip.end;
    }
    true
}

/// The labels of `at` that must equal tokens, and those tokens: under `Aligned` each label
/// is its own token (but the segment's first); under `Shifted` the next one (but the last's).
#[inline(always)]
fn label_slices<'a>(
    labels: &'a [i64],
    ids: &'a [i64],
    at: Range<usize>,
    segment: &Range<usize>,
    convention: LabelConvention,
) -> (&'a [i64], &'a [i64]) {
    match convention {
        LabelConvention::Aligned => {
            let from = at.start.max(segment.start + 1).min(at.end);
            (&labels[from..at.end], &ids[from..at.end])
        }
        LabelConvention::Shifted => {
            let to = at.end.min(segment.end - 1).max(at.start);
            (&labels[at.start..to], &ids[at.start + 1..to + 1])
        }
    }
}

/// Padding: pad ids, ignored labels, mask 0.
#[inline(always)]
fn padding_clean(row: &Row<'_>, range: Range<usize>, expect: Expectations) -> bool {
    let mut k = range.start;
    while k < range.end {
        let at = k..(k + STRIP).min(range.end);
        let mut bad = any(row.ids[at.clone()]
            .iter()
            .map(|&id| id != expect.pad_token_id));
        if let Some(labels) = row.labels {
            bad |= any(labels[at.clone()].iter().map(|&l| l != expect.ignore_index));
        }
        if let Some(mask) = row.mask {
            bad |= any(mask[at.clone()].iter().map(|&m| m != 0));
        }
        if bad {
            return false;
        }
        k = at.end;
    }
    true
}

/// Whether any flag is set, as an OR of 0/1 (a reduction LLVM vectorises, unlike a
/// short-circuiting `any`).
#[inline(always)]
fn any(flags: impl Iterator<Item = bool>) -> bool {
    flags.fold(0u8, |seen, flag| seen | u8::from(flag)) != 0
}
