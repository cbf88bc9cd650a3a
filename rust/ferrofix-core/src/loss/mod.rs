//! Causal-LM cross-entropy: the contract every backend (CPU here, CUDA later) implements.
//!
//! Logits are `rows × vocab` (a `(B, T, V)` tensor is `B·T` rows). With `shift`, row
//! `(b, t)` is scored against label `(b, t + 1)` and the last position of each sequence
//! contributes nothing: the shift is an index offset, the logits are never copied.
//!
//! Per contributing row, with `c = softcap(logits)` (identity without a softcap),
//! `lse = log Σ exp(c)`, smoothing `ε` and z-loss scale `z`:
//!
//! ```text
//! loss_row = lse − (1 − ε)·c[y] − (ε / V)·Σ c + z·lse²
//! ∂loss_row/∂c_j = softmax_j·(1 + 2z·lse) − ε/V − (1 − ε)·[j = y]
//! ```
//!
//! (label smoothing as Liger and torch define it). The reductions are `mean` over
//! contributing rows (or over `num_items_in_batch` when given), `sum` and `none`; a mean over
//! zero rows is exactly 0 with a zero gradient. Everything that depends on the data
//! (shapes, label range) is checked here before a single row is computed, so an in-place
//! gradient never leaves a half-written buffer behind an error.

#[cfg(target_arch = "x86_64")]
mod avx2;
pub mod cpu;

use crate::error::{Error, Result};

/// How per-row losses become the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// Mean over contributing rows (or over `num_items_in_batch`).
    Mean,
    /// Sum over contributing rows.
    Sum,
    /// One loss per row (0 for rows that contribute nothing).
    None,
}

impl Reduction {
    /// Parse the user's spelling.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] listing the allowed values.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "mean" => Ok(Self::Mean),
            "sum" => Ok(Self::Sum),
            "none" => Ok(Self::None),
            other => Err(Error::invalid(
                "reduction",
                format!("must be one of 'mean', 'sum', 'none', got {other:?}"),
            )),
        }
    }
}

/// The options of the loss, shared by every backend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossOptions {
    /// Labels equal to this contribute nothing.
    pub ignore_index: i64,
    /// How per-row losses are combined.
    pub reduction: Reduction,
    /// Scale of the `lse²` auxiliary loss (0 disables it).
    pub z_loss_scale: f64,
    /// `s` in `s·tanh(x / s)` applied to the logits first.
    pub softcap: Option<f64>,
    /// Label smoothing `ε` in [0, 1).
    pub label_smoothing: f64,
    /// Divisor of the summed loss instead of the number of contributing rows (mean only).
    pub num_items_in_batch: Option<f64>,
}

impl Default for LossOptions {
    fn default() -> Self {
        Self {
            ignore_index: -100,
            reduction: Reduction::Mean,
            z_loss_scale: 0.0,
            softcap: None,
            label_smoothing: 0.0,
            num_items_in_batch: None,
        }
    }
}

impl LossOptions {
    /// Check every option against its allowed range.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the option and its allowed values.
    pub fn validate(&self) -> Result<()> {
        if !(self.z_loss_scale.is_finite() && self.z_loss_scale >= 0.0) {
            return Err(Error::invalid(
                "z_loss_scale",
                format!("must be a finite number >= 0, got {}", self.z_loss_scale),
            ));
        }
        if let Some(cap) = self.softcap
            && !(cap.is_finite() && cap > 0.0)
        {
            return Err(Error::invalid(
                "softcap",
                format!("must be a finite number > 0 or None, got {cap}"),
            ));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(Error::invalid(
                "label_smoothing",
                format!("must be in [0, 1), got {}", self.label_smoothing),
            ));
        }
        if let Some(items) = self.num_items_in_batch {
            if !(items.is_finite() && items > 0.0) {
                return Err(Error::invalid(
                    "num_items_in_batch",
                    format!("must be a finite number > 0 or None, got {items}"),
                ));
            }
            if self.reduction != Reduction::Mean {
                return Err(Error::invalid(
                    "num_items_in_batch",
                    "only applies to reduction 'mean' (it replaces the mean's divisor)",
                ));
            }
        }
        Ok(())
    }
}

/// Shapes of one loss call, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Problem {
    /// Number of logit rows `N` (`B·T` for a 3-D input).
    pub rows: usize,
    /// Vocabulary size `V`.
    pub vocab: usize,
    /// Sequence length `T`; a 2-D input is one sequence of `N` rows.
    pub seq_len: usize,
    /// Whether row `(b, t)` is scored against label `(b, t + 1)`.
    pub shift: bool,
    /// Whether the logits were `(B, T, V)` (positions in messages are then `(b, t)`).
    batched: bool,
}

/// Row targets after validation: `NO_TARGET` marks rows that contribute nothing.
pub const NO_TARGET: u32 = u32::MAX;

fn shape_text(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        dims => {
            let parts: Vec<String> = dims.iter().map(usize::to_string).collect();
            format!("({})", parts.join(", "))
        }
    }
}

impl Problem {
    /// Validate `logits` `(B, T, V)` or `(N, V)` against `labels` `(B, T)` or `(N,)`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for inconsistent shapes, [`Error::InvalidArgument`] for
    /// `V = 0` or a vocabulary too large for 32-bit label indices.
    pub fn new(logits_shape: &[usize], labels_shape: &[usize], shift: bool) -> Result<Self> {
        let (rows, seq_len, vocab, expected_labels) = match *logits_shape {
            [b, t, v] => (b * t, t, v, vec![b, t]),
            [n, v] => (n, n, v, vec![n]),
            _ => {
                return Err(Error::ShapeMismatch {
                    arg: "logits",
                    expected: "(B, T, V) or (N, V)".into(),
                    got: shape_text(logits_shape),
                });
            }
        };
        if vocab == 0 {
            return Err(Error::invalid(
                "logits",
                "the vocabulary dimension V must be >= 1, got 0",
            ));
        }
        if vocab >= NO_TARGET as usize {
            return Err(Error::invalid(
                "logits",
                format!("the vocabulary dimension V must be < 2**32 - 1, got {vocab}"),
            ));
        }
        if labels_shape != expected_labels.as_slice() {
            return Err(Error::ShapeMismatch {
                arg: "labels",
                expected: format!(
                    "{} (the logits' leading dimensions)",
                    shape_text(&expected_labels)
                ),
                got: shape_text(labels_shape),
            });
        }
        Ok(Self {
            rows,
            vocab,
            seq_len,
            shift,
            batched: logits_shape.len() == 3,
        })
    }

    /// Number of logit elements, `N·V`.
    pub fn elements(&self) -> usize {
        self.rows * self.vocab
    }

    fn position(&self, index: usize) -> String {
        if self.batched {
            format!("({}, {})", index / self.seq_len, index % self.seq_len)
        } else {
            format!("({index},)")
        }
    }

    /// The label index each row is scored against, validated: one entry per row, with
    /// [`NO_TARGET`] for ignored rows and the last position of each sequence when shifting.
    /// Returns the targets and the number of contributing rows.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the first label outside `[0, V)` that is not
    /// `ignore_index` (in the labels' own coordinates), or [`Error::ShapeMismatch`] when
    /// `labels` does not have one entry per row.
    pub fn targets<L: Copy + Into<i64>>(
        &self,
        labels: &[L],
        ignore_index: i64,
    ) -> Result<(Vec<u32>, usize)> {
        if labels.len() != self.rows {
            return Err(Error::ShapeMismatch {
                arg: "labels",
                expected: format!("{} elements", self.rows),
                got: format!("{} elements", labels.len()),
            });
        }
        let vocab = self.vocab as i64;
        for (index, &label) in labels.iter().enumerate() {
            let label: i64 = label.into();
            if label != ignore_index && !(0..vocab).contains(&label) {
                return Err(Error::invalid(
                    "labels",
                    format!(
                        "value {label} at position {} is outside [0, {vocab}) and is not \
                         ignore_index ({ignore_index})",
                        self.position(index)
                    ),
                ));
            }
        }
        let shift = usize::from(self.shift);
        let mut valid = 0;
        let targets = (0..self.rows)
            .map(|row| {
                let within = row % self.seq_len.max(1);
                if within + shift >= self.seq_len {
                    return NO_TARGET;
                }
                let label: i64 = labels[row + shift].into();
                if label == ignore_index {
                    NO_TARGET
                } else {
                    valid += 1;
                    label as u32
                }
            })
            .collect();
        Ok((targets, valid))
    }
}

/// The gradient factor of the reduction: what `∂loss/∂loss_row` is for a contributing row.
pub fn gradient_scale(options: &LossOptions, valid_rows: usize) -> f64 {
    match options.reduction {
        Reduction::Mean => match options.num_items_in_batch {
            Some(items) => 1.0 / items,
            None if valid_rows == 0 => 0.0,
            None => 1.0 / valid_rows as f64,
        },
        Reduction::Sum | Reduction::None => 1.0,
    }
}

/// What a loss call returns besides the gradient.
#[derive(Debug, Clone, PartialEq)]
pub struct LossOutput {
    /// The reduced loss (for [`Reduction::None`], the sum of the per-row losses).
    pub loss: f64,
    /// Per-row losses as accumulated, in f64 (0 for rows that contribute nothing); empty
    /// unless the reduction is [`Reduction::None`]. Callers hand them out as f32 for 16-
    /// and 32-bit logits and as f64 for f64 logits.
    pub per_row: Vec<f64>,
    /// Per-row log-sum-exp of the (softcapped) logits, NaN for rows that contribute
    /// nothing (they are skipped); empty unless requested.
    pub lse: Vec<f32>,
    /// Number of rows that contribute.
    pub valid_rows: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_targets_the_next_label_and_drops_each_last_position() {
        let problem = Problem::new(&[2, 3, 5], &[2, 3], true).unwrap();
        let (targets, valid) = problem.targets(&[0i64, 1, 2, 3, -100, 4], -100).unwrap();
        assert_eq!(targets, vec![1, 2, NO_TARGET, NO_TARGET, 4, NO_TARGET]);
        assert_eq!(valid, 3);
        let unshifted = Problem::new(&[3, 5], &[3], false).unwrap();
        let (targets, valid) = unshifted.targets(&[4i32, -100, 0], -100).unwrap();
        assert_eq!(targets, vec![4, NO_TARGET, 0]);
        assert_eq!(valid, 2);
    }

    #[test]
    fn bad_labels_and_shapes_name_the_argument_and_position() {
        let problem = Problem::new(&[2, 3, 5], &[2, 3], true).unwrap();
        let err = problem.targets(&[0i64, 1, 2, 3, 5, 4], -100).unwrap_err();
        assert_eq!(
            err.to_string(),
            "labels: value 5 at position (1, 1) is outside [0, 5) and is not ignore_index (-100)"
        );
        let err = Problem::new(&[2, 3, 5], &[2, 4], true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "labels: expected shape (2, 3) (the logits' leading dimensions), got (2, 4)"
        );
        let err = Problem::new(&[4, 0], &[4], true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "logits: the vocabulary dimension V must be >= 1, got 0"
        );
        assert!(Reduction::parse("avg").is_err());
    }

    #[test]
    fn options_outside_their_ranges_are_rejected() {
        let bad = [
            LossOptions {
                softcap: Some(0.0),
                ..LossOptions::default()
            },
            LossOptions {
                label_smoothing: 1.0,
                ..LossOptions::default()
            },
            LossOptions {
                z_loss_scale: f64::NAN,
                ..LossOptions::default()
            },
            LossOptions {
                num_items_in_batch: Some(4.0),
                reduction: Reduction::Sum,
                ..LossOptions::default()
            },
        ];
        for options in bad {
            assert!(options.validate().is_err(), "{options:?}");
        }
        assert!(LossOptions::default().validate().is_ok());
    }
}
