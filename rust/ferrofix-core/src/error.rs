//! The one error type of the core.
//!
//! Variants are structured so the binding can map each to exactly one Python exception class
//! (see `ferrofix-py/src/errors.rs`); the `Display` text is the user-facing message and is
//! asserted verbatim by the tests, so treat it as API.

/// Everything that can go wrong in the core. Checkers never use this: a failed check is a
/// report, not an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An array argument has the wrong shape or length.
    #[error("{arg}: expected shape {expected}, got {got}")]
    ShapeMismatch {
        /// The argument's name as the user spells it.
        arg: &'static str,
        /// The allowed shape, e.g. `(N, V)`.
        expected: String,
        /// The shape that was passed.
        got: String,
    },
    /// An argument's value is outside what the operation allows.
    #[error("{arg}: {reason}")]
    InvalidArgument {
        /// The argument's name as the user spells it.
        arg: &'static str,
        /// What is wrong, including the allowed values.
        reason: String,
    },
    /// The operation does not support this element type.
    #[error("{op} does not support dtype {dtype}; supported: {supported}")]
    UnsupportedDtype {
        /// The dtype that was passed, numpy/torch spelling.
        dtype: String,
        /// The operation's public name.
        op: &'static str,
        /// The dtypes it does support, comma separated.
        supported: String,
    },
    /// A tokenizer met a word or character that is not in its vocabulary.
    #[error("Token '{token}' not in vocab")]
    UnknownToken {
        /// The word or character as it appeared in the text.
        token: String,
    },
    /// No usable CUDA driver or device.
    #[error("CUDA is not available: {reason}")]
    CudaUnavailable {
        /// Why, e.g. "libcuda.so not found".
        reason: String,
    },
    /// A CUDA driver, NVRTC or kernel call failed.
    #[error("CUDA error in {op}: {message}")]
    Cuda {
        /// The operation or kernel that failed.
        op: String,
        /// The driver's or compiler's message.
        message: String,
    },
}

/// The core's result alias.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(arg: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            arg,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_argument_and_the_allowed_values() {
        let cases = [
            (
                Error::ShapeMismatch {
                    arg: "logits",
                    expected: "(N, V)".into(),
                    got: "(3,)".into(),
                },
                "logits: expected shape (N, V), got (3,)",
            ),
            (
                Error::invalid("high", "must be greater than low (5), got 5"),
                "high: must be greater than low (5), got 5",
            ),
            (
                Error::UnsupportedDtype {
                    dtype: "int8".into(),
                    op: "uniform",
                    supported: "float32, float64".into(),
                },
                "uniform does not support dtype int8; supported: float32, float64",
            ),
            (
                Error::CudaUnavailable {
                    reason: "libcuda.so not found".into(),
                },
                "CUDA is not available: libcuda.so not found",
            ),
            (
                Error::Cuda {
                    op: "cross_entropy_fwd".into(),
                    message: "out of memory".into(),
                },
                "CUDA error in cross_entropy_fwd: out of memory",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }
}
