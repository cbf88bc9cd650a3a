//! Bindings of the tokenizers: one pyclass wrapping the core tokenizer. Texts are borrowed
//! as UTF-8 from the Python strings (no copies); batch encoding runs with the GIL released
//! and returns numpy arrays.

use ferrofix_core::Error;
use ferrofix_core::idle_buffers::IdleBuffers;
use ferrofix_core::tokenizer::batch::{BatchOptions, Side, Width};
use ferrofix_core::tokenizer::{Config, Role, Tokenizer};
use numpy::{PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use crate::buffer_pool::{BATCHES, pooled_array};
use crate::convert::contiguous;
use crate::errors::{to_py, wrong_type};
use ferrofix_core::memory::check_outputs_fit;

/// The native tokenizer behind `ferrofix.tokenizers`.
#[pyclass(name = "Tokenizer", module = "ferrofix._core", frozen)]
struct PyTokenizer {
    inner: Tokenizer,
}

fn config(special_tokens: Vec<String>, unk_fallback: bool, add_bos: bool, add_eos: bool) -> Config {
    Config {
        specials: special_tokens,
        unk_fallback,
        add_bos,
        add_eos,
    }
}

/// The UTF-8 view of `text` (a `str`, else a `DtypeError`). A lone surrogate, which has no
/// UTF-8 form, is a `ConfigError` naming `arg` and its position, not Python's bare
/// `UnicodeEncodeError`.
fn utf8<'a>(text: &'a Bound<'_, PyAny>, arg: &'static str) -> PyResult<&'a str> {
    let string = text
        .cast::<PyString>()
        .map_err(|_| wrong_type(arg, "str", text))?;
    string.to_str().map_err(|error| {
        let at = error
            .value(text.py())
            .getattr("start")
            .and_then(|start| start.extract::<usize>())
            .unwrap_or_default();
        let shown = text.repr().map(|r| r.to_string()).unwrap_or_default();
        to_py(Error::invalid(
            arg,
            format!(
                "{shown} is not valid Unicode (a lone surrogate at position {at} has no UTF-8 form)"
            ),
        ))
    })
}

/// Idle `views` buffers of [`with_list_texts`], emptied but with their capacity kept (up to
/// two million texts). A fresh 16 bytes per text on every call came back from the
/// allocator as new pages to fault in. The `'static` is never seen by anyone: a buffer holds
/// views only while `with_list_texts` runs and is cleared before the strings it borrowed
/// from can be freed.
pub static TEXT_VIEWS: IdleBuffers<&'static str> = IdleBuffers::new(32 << 20);

/// Idle buffers of [`HeldStrings`] (object addresses), kept like [`TEXT_VIEWS`].
pub static HELD_STRINGS: IdleBuffers<usize> = IdleBuffers::new(16 << 20);

/// How many strings ahead of the one being read the loops below prefetch. Each string is
/// its own allocation, touched twice per call with the GIL held (on one core): once to take
/// a reference and read its UTF-8 view, once to drop the reference.
const PREFETCH_AHEAD: usize = 16;

/// Hint the CPU to load the cache line at `address` (a no-op where there is no hint).
#[inline(always)]
fn prefetch(address: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(address as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// A list's items, the first `held` of them held by a strong reference taken with the GIL
/// held and dropped (the GIL held again) when this goes, so no string can be freed while
/// the GIL is released, whatever another thread does to the list meanwhile.
struct HeldStrings<'py> {
    py: Python<'py>,
    /// The items' addresses, in list order.
    items: Vec<usize>,
    held: usize,
}

impl<'py> HeldStrings<'py> {
    /// The items of `list`, none held yet. Nothing here runs Python code, so the list
    /// cannot change while they are read.
    fn of(list: &Bound<'py, PyList>) -> Self {
        let mut items = HELD_STRINGS.take(list.len());
        for i in 0..list.len() {
            // SAFETY: `list` is a live list and `i` below its length; the reference is
            // borrowed and only read as an address.
            let item =
                unsafe { pyo3::ffi::PyList_GetItem(list.as_ptr(), i as pyo3::ffi::Py_ssize_t) };
            items.push(item as usize);
        }
        Self {
            py: list.py(),
            items,
            held: 0,
        }
    }

    /// The address of item `i` (0 past the end), for prefetching.
    fn address(&self, i: usize) -> usize {
        self.items.get(i).copied().unwrap_or(0)
    }
}

impl Drop for HeldStrings<'_> {
    fn drop(&mut self) {
        let _gil = self.py;
        for i in 0..self.held {
            prefetch(self.address(i + PREFETCH_AHEAD));
            // SAFETY: the first `held` items each got a reference from `with_list_texts`,
            // and `_gil` shows the GIL is held.
            unsafe { pyo3::ffi::Py_DECREF(self.items[i] as *mut pyo3::ffi::PyObject) };
        }
        HELD_STRINGS.give_back([std::mem::take(&mut self.items)]);
    }
}

/// Run `f` on every text of the list `arg` borrowed as `&str`; anything but a list of `str`
/// is a `DtypeError`, a text with a lone surrogate a `ConfigError`, both naming `arg`.
///
/// Each string is held ([`HeldStrings`]) and its cached UTF-8 view borrowed, with the
/// strings ahead prefetched: 100k scattered strings otherwise cost a cache miss each, with
/// the GIL held (this took a fifth of a 100k-text batch encode before the prefetching).
fn with_list_texts<'py, R>(
    texts: &Bound<'py, PyAny>,
    arg: &'static str,
    f: impl FnOnce(&[&str]) -> R,
) -> PyResult<R> {
    let list = texts
        .cast::<PyList>()
        .map_err(|_| wrong_type(arg, "a list of str", texts))?;
    let mut strings = HeldStrings::of(list);
    let mut views = TEXT_VIEWS.take(strings.items.len());
    for i in 0..strings.items.len() {
        prefetch(strings.address(i + PREFETCH_AHEAD));
        let item = strings.items[i] as *mut pyo3::ffi::PyObject;
        // SAFETY: `item` is the list's live item (the list has not changed since it was
        // read); the check only reads its type.
        if item.is_null() || unsafe { pyo3::ffi::PyUnicode_Check(item) } == 0 {
            let item = list.get_item(i)?;
            return Err(wrong_type(&format!("{arg}[{i}]"), "str", &item));
        }
        // SAFETY: as above; `strings` drops the reference taken here.
        unsafe { pyo3::ffi::Py_INCREF(item) };
        strings.held = i + 1;
        let mut size: pyo3::ffi::Py_ssize_t = 0;
        // SAFETY: `item` is a live `str`; the call returns its UTF-8 view cached on the
        // object, or NULL with an exception set when it holds a lone surrogate.
        let data = unsafe { pyo3::ffi::PyUnicode_AsUTF8AndSize(item, &mut size) };
        if data.is_null() {
            // The Unicode error Python raised says less than this.
            drop(PyErr::take(texts.py()));
            return Err(to_py(Error::invalid(
                arg,
                format!("text {i} is not valid Unicode (a lone surrogate has no UTF-8 form)"),
            )));
        }
        // SAFETY: the view is `size` bytes of valid UTF-8 owned by the immutable string,
        // which `strings` keeps alive until after `views` is cleared below; `f` only borrows
        // the views (its signature cannot keep them), so the `'static` never escapes.
        views.push(unsafe {
            std::str::from_utf8_unchecked(std::slice::from_raw_parts(
                data.cast::<u8>(),
                size as usize,
            ))
        });
    }
    let result = f(&views);
    views.clear();
    TEXT_VIEWS.give_back([views]);
    drop(strings);
    Ok(result)
}

/// The arguments batch texts come in, which their errors name.
const TEXTS_ARGS: [&str; 5] = [
    "text",
    "texts",
    "text_pair",
    "text_target",
    "text_pair_target",
];

#[pymethods]
impl PyTokenizer {
    /// A word tokenizer over `vocab`.
    #[staticmethod]
    fn simple(
        vocab: Vec<String>,
        special_tokens: Vec<String>,
        unk_fallback: bool,
        add_bos: bool,
        add_eos: bool,
    ) -> PyResult<Self> {
        let config = config(special_tokens, unk_fallback, add_bos, add_eos);
        let inner = Tokenizer::word(vocab, config).map_err(to_py)?;
        Ok(Self { inner })
    }

    /// A character tokenizer over `alphabet` (a list of one-character strings).
    #[staticmethod]
    fn char(
        alphabet: Vec<char>,
        special_tokens: Vec<String>,
        unk_fallback: bool,
        add_bos: bool,
        add_eos: bool,
    ) -> PyResult<Self> {
        let config = config(special_tokens, unk_fallback, add_bos, add_eos);
        let inner = Tokenizer::char(alphabet, config).map_err(to_py)?;
        Ok(Self { inner })
    }

    /// A byte tokenizer.
    #[staticmethod]
    fn byte(special_tokens: Vec<String>, add_bos: bool, add_eos: bool) -> PyResult<Self> {
        let config = config(special_tokens, false, add_bos, add_eos);
        let inner = Tokenizer::byte(config).map_err(to_py)?;
        Ok(Self { inner })
    }

    /// A byte-level BPE tokenizer from (left, right) merges in rank order.
    #[staticmethod]
    fn bpe(
        merges: Vec<(String, String)>,
        special_tokens: Vec<String>,
        add_bos: bool,
        add_eos: bool,
    ) -> PyResult<Self> {
        let config = config(special_tokens, false, add_bos, add_eos);
        let inner = Tokenizer::bpe(&merges, config).map_err(to_py)?;
        Ok(Self { inner })
    }

    /// Train a byte-level BPE tokenizer on a list of texts (GIL released).
    #[staticmethod]
    fn train_bpe(
        py: Python<'_>,
        corpus: &Bound<'_, PyAny>,
        vocab_size: usize,
        min_frequency: u64,
        special_tokens: Vec<String>,
        add_bos: bool,
        add_eos: bool,
    ) -> PyResult<Self> {
        let config = config(special_tokens, false, add_bos, add_eos);
        let inner = with_list_texts(corpus, "corpus", |texts| {
            py.detach(|| Tokenizer::train_bpe(texts, vocab_size, min_frequency, config))
        })?
        .map_err(to_py)?;
        Ok(Self { inner })
    }

    /// "simple", "char", "byte" or "bpe".
    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.kind().name()
    }

    /// The number of ids.
    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Every token string, by id.
    fn tokens(&self) -> Vec<String> {
        self.inner.tokens().to_vec()
    }

    /// The bytes each id stands for (raw bytes for byte-level tokens).
    fn token_bytes<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        self.inner
            .token_bytes()
            .into_iter()
            .map(|b| PyBytes::new(py, b))
            .collect()
    }

    /// The special tokens (ids 0..k).
    fn special_tokens(&self) -> Vec<String> {
        self.inner.config().specials.clone()
    }

    /// (unk_fallback, add_bos, add_eos).
    fn flags(&self) -> (bool, bool, bool) {
        let c = self.inner.config();
        (c.unk_fallback, c.add_bos, c.add_eos)
    }

    /// {role: id} for the special tokens whose names give them a role.
    fn role_ids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for role in Role::ALL {
            if let Some(id) = self.inner.role_id(role) {
                out.set_item(role.name(), id)?;
            }
        }
        Ok(out)
    }

    /// Merges as (left, right) token strings in rank order.
    fn merges(&self) -> Vec<(String, String)> {
        self.inner.merges()
    }

    /// The id of a token string.
    fn token_id(&self, token: &Bound<'_, PyAny>) -> PyResult<u32> {
        self.inner.token_id(utf8(token, "token")?).map_err(to_py)
    }

    /// The token strings of int64 ids.
    fn id_tokens(&self, ids: PyReadonlyArray1<'_, i64>) -> PyResult<Vec<String>> {
        let ids = contiguous(&ids, "ids")?;
        let tokens = self.inner.id_tokens(ids).map_err(to_py)?;
        Ok(tokens.into_iter().map(str::to_string).collect())
    }

    /// The ids of one text as a list.
    fn encode(&self, text: &Bound<'_, PyAny>, add_special_tokens: bool) -> PyResult<Vec<u32>> {
        self.inner
            .encode(utf8(text, "text")?, add_special_tokens)
            .map_err(to_py)
    }

    /// The ids of one text as a 1-D int64 array.
    fn encode_array<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        add_special_tokens: bool,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let ids = self
            .inner
            .encode(utf8(text, "text")?, add_special_tokens)
            .map_err(to_py)?;
        Ok(PyArray1::from_iter(py, ids.into_iter().map(i64::from)))
    }

    /// The text of int64 ids.
    fn decode(
        &self,
        ids: PyReadonlyArray1<'_, i64>,
        skip_special_tokens: bool,
    ) -> PyResult<String> {
        let ids = contiguous(&ids, "token_ids")?;
        self.inner
            .decode(ids, skip_special_tokens, "token_ids")
            .map_err(to_py)
    }

    /// The texts of consecutive rows of int64 `ids`, `lengths[r]` ids in row `r`.
    fn decode_rows(
        &self,
        py: Python<'_>,
        ids: PyReadonlyArray1<'_, i64>,
        lengths: PyReadonlyArray1<'_, i64>,
        skip_special_tokens: bool,
    ) -> PyResult<Vec<String>> {
        let ids = contiguous(&ids, "sequences")?;
        let lengths = contiguous(&lengths, "lengths")?
            .iter()
            .map(|&length| usize::try_from(length))
            .collect::<Result<Vec<usize>, _>>()
            .map_err(|_| to_py(Error::invalid("lengths", "must be >= 0")))?;
        py.detach(|| {
            self.inner
                .decode_rows(ids, &lengths, skip_special_tokens, "sequences")
        })
        .map_err(to_py)
    }

    /// Encode a list of texts into (input_ids, attention_mask, lengths), int64.
    #[pyo3(signature = (
        texts, *, add_special_tokens, max_length, truncation, truncation_side, width,
        pad_to_multiple_of, padding_side, pad_id, texts_arg="text"
    ))]
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn encode_batch<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        add_special_tokens: bool,
        max_length: Option<usize>,
        truncation: bool,
        truncation_side: &str,
        width: &str,
        pad_to_multiple_of: Option<usize>,
        padding_side: &str,
        pad_id: i64,
        texts_arg: &str,
    ) -> PyResult<(
        Bound<'py, PyArrayDyn<i64>>,
        Bound<'py, PyArrayDyn<i64>>,
        Bound<'py, PyArrayDyn<i64>>,
    )> {
        let width = match width {
            "longest" => Width::Longest,
            "max_length" => Width::MaxLength,
            other => {
                return Err(to_py(Error::invalid(
                    "padding",
                    format!("must be one of 'longest', 'max_length'; got '{other}'"),
                )));
            }
        };
        let options = BatchOptions {
            add_special_tokens,
            max_length,
            truncation,
            truncation_side: Side::parse(truncation_side, "truncation_side").map_err(to_py)?,
            width,
            pad_to_multiple_of,
            padding_side: Side::parse(padding_side, "padding_side").map_err(to_py)?,
            pad_id,
            texts_arg: TEXTS_ARGS
                .into_iter()
                .find(|&name| name == texts_arg)
                .ok_or_else(|| {
                    to_py(Error::invalid(
                        "texts_arg",
                        format!("must be one of {TEXTS_ARGS:?}; got '{texts_arg}'"),
                    ))
                })?,
        };
        // The outputs come from the batch pool: in a loop that drops each batch before
        // encoding the next, they reuse its memory instead of faulting in fresh pages. The
        // lengths are written straight into theirs (a non-list is refused just below).
        let rows = texts.cast::<PyList>().map_or(0, |list| list.len());
        let lengths = pooled_array::<i64>(py, &[rows], &BATCHES)?;
        // SAFETY: a fresh C-contiguous array nothing else refers to until it is returned, so
        // this is its only view.
        let lengths_out = unsafe { lengths.as_slice_mut() }
            .map_err(|e| to_py(Error::invalid("batch", e.to_string())))?;
        let encoded = with_list_texts(texts, options.texts_arg, |texts| {
            py.detach(|| self.inner.encode_texts(texts, &options, lengths_out))
        })?
        .map_err(to_py)?;
        let shape = [encoded.rows(), encoded.width()];
        check_outputs_fit(
            "padding",
            2,
            &shape,
            size_of::<i64>(),
            "lower max_length or pad_to_multiple_of",
        )
        .map_err(to_py)?;
        let input_ids = pooled_array::<i64>(py, &shape, &BATCHES)?;
        let attention_mask = pooled_array::<i64>(py, &shape, &BATCHES)?;
        {
            // SAFETY: both arrays were created above, are C-contiguous, and nothing else
            // refers to them until they are returned, so these are the only views.
            let (ids, mask) = unsafe { (input_ids.as_slice_mut(), attention_mask.as_slice_mut()) };
            let (ids, mask) = ids
                .and_then(|ids| Ok((ids, mask?)))
                .map_err(|e| to_py(Error::invalid("batch", e.to_string())))?;
            py.detach(|| encoded.fill(ids, mask)).map_err(to_py)?;
        }
        drop(encoded);
        Ok((input_ids, attention_mask, lengths))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTokenizer>()
}
