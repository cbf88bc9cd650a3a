//! Splitting text before the models see it: special tokens, whitespace words, and the
//! byte-level (GPT-2) pattern.
//!
//! Invariants:
//! - Special tokens are matched anywhere in the text, leftmost first and longest at a
//!   position, exactly like Hugging Face `tokenizers` added tokens (`normalized: false`).
//! - [`whitespace_words`] splits on Unicode `White_Space` and never yields empty words.
//! - [`byte_level_pieces`] reproduces the regex
//!   `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
//!   (the one HF's `ByteLevel` pre-tokenizer uses) without a regex engine: the pieces are
//!   byte ranges that tile the input.

use unicode_general_category::{GeneralCategory, get_general_category};

/// One segment of a text: plain text or a special token's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    /// Text between special tokens (never empty).
    Text(&'a str),
    /// A special token, by id.
    Special(u32),
}

/// Finds special tokens in text: leftmost match, longest special at that position.
#[derive(Debug, Clone)]
pub struct SpecialMatcher {
    /// (token, id), longest token first.
    tokens: Vec<(String, u32)>,
    /// `first_byte[b]`: some special starts with byte `b`.
    first_byte: [bool; 256],
}

impl SpecialMatcher {
    /// A matcher over `specials[id]` (empty strings are never matched).
    pub fn new(specials: &[String]) -> Self {
        let mut tokens: Vec<(String, u32)> = specials
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.is_empty())
            .map(|(id, s)| (s.clone(), id as u32))
            .collect();
        tokens.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let mut first_byte = [false; 256];
        for (token, _) in &tokens {
            first_byte[token.as_bytes()[0] as usize] = true;
        }
        Self { tokens, first_byte }
    }

    /// `first_bytes()[b]`: some special token starts with byte `b`.
    pub fn first_bytes(&self) -> &[bool; 256] {
        &self.first_byte
    }

    /// Call `emit` with each segment of `text` in order.
    pub fn split<'a>(&self, text: &'a str, mut emit: impl FnMut(Segment<'a>)) {
        let bytes = text.as_bytes();
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            if self.first_byte[bytes[i] as usize]
                && let Some((token, id)) = self
                    .tokens
                    .iter()
                    .find(|(token, _)| bytes[i..].starts_with(token.as_bytes()))
            {
                if start < i {
                    emit(Segment::Text(&text[start..i]));
                }
                emit(Segment::Special(*id));
                i += token.len();
                start = i;
                continue;
            }
            i += 1;
        }
        if start < bytes.len() {
            emit(Segment::Text(&text[start..]));
        }
    }
}

/// The words of `text` split on Unicode whitespace; runs of whitespace give no empty words.
pub fn whitespace_words(text: &str) -> impl Iterator<Item = &str> {
    text.split(char::is_whitespace).filter(|w| !w.is_empty())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Number,
    Space,
    Other,
}

fn class(c: char) -> Class {
    if c.is_ascii() {
        return match c {
            'a'..='z' | 'A'..='Z' => Class::Letter,
            '0'..='9' => Class::Number,
            ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r' => Class::Space,
            _ => Class::Other,
        };
    }
    if c.is_whitespace() {
        return Class::Space;
    }
    use GeneralCategory as G;
    match get_general_category(c) {
        G::UppercaseLetter
        | G::LowercaseLetter
        | G::TitlecaseLetter
        | G::ModifierLetter
        | G::OtherLetter => Class::Letter,
        G::DecimalNumber | G::LetterNumber | G::OtherNumber => Class::Number,
        _ => Class::Other,
    }
}

/// The end of the run of `class` characters that starts at byte `from`.
fn run_end(text: &str, from: usize, of: Class) -> usize {
    text[from..]
        .char_indices()
        .find(|&(_, c)| class(c) != of)
        .map_or(text.len(), |(offset, _)| from + offset)
}

/// Length of a contraction (`'s 't 're 've 'm 'll 'd`) at the start of `rest`, or 0.
fn contraction(rest: &[u8]) -> usize {
    match rest {
        [b'\'', b'r', b'e', ..] | [b'\'', b'v', b'e', ..] | [b'\'', b'l', b'l', ..] => 3,
        [b'\'', b's' | b't' | b'm' | b'd', ..] => 2,
        _ => 0,
    }
}

/// Call `emit` with each byte-level piece of `text`, in order.
pub fn byte_level_pieces<'a>(text: &'a str, mut emit: impl FnMut(&'a str)) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let end = piece_end(text, i);
        emit(&text[i..end]);
        i = end;
    }
}

/// The end of the byte-level piece that starts at byte `i` (< `text.len()`).
fn piece_end(text: &str, i: usize) -> usize {
    let bytes = text.as_bytes();
    let n = contraction(&bytes[i..]);
    if n > 0 {
        return i + n;
    }
    let mut chars = text[i..].chars();
    let Some(c) = chars.next() else {
        return text.len();
    };
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional space, then one class.
    if c == ' '
        && let Some(next) = chars.next()
    {
        let next_class = class(next);
        if next_class != Class::Space {
            return run_end(text, i + 1, next_class);
        }
    }
    let c_class = class(c);
    if c_class != Class::Space {
        return run_end(text, i, c_class);
    }
    // `\s+(?!\S)` leaves the last space of a run to the word after it; `\s+` otherwise.
    let end = run_end(text, i, Class::Space);
    if end == text.len() {
        return end;
    }
    let last = text[..end]
        .char_indices()
        .next_back()
        .map_or(i, |(offset, _)| offset);
    if last > i { last } else { end }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        byte_level_pieces(text, |p| out.push(p));
        out
    }

    #[test]
    fn byte_level_pieces_follow_the_gpt2_pattern() {
        assert_eq!(pieces("Hello world"), ["Hello", " world"]);
        assert_eq!(pieces("it's  ok\n"), ["it", "'s", " ", " ok", "\n"]);
        assert_eq!(pieces("a   b"), ["a", "  ", " b"]);
        assert_eq!(pieces("x\n y"), ["x", "\n", " y"]);
        assert_eq!(pieces("price: 42€!"), ["price", ":", " 42", "€!"]);
        assert_eq!(pieces(" 's"), [" '", "s"]);
        assert_eq!(pieces("héllo wörld"), ["héllo", " wörld"]);
        assert_eq!(pieces("   "), ["   "]);
        assert!(pieces("").is_empty());
    }

    #[test]
    fn specials_are_found_anywhere_longest_first() {
        let specials: Vec<String> = ["[PAD]", "[P", "<s>"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let matcher = SpecialMatcher::new(&specials);
        let mut out = Vec::new();
        matcher.split("a[PAD]b<s>[P", |s| out.push(s));
        assert_eq!(
            out,
            [
                Segment::Text("a"),
                Segment::Special(0),
                Segment::Text("b"),
                Segment::Special(2),
                Segment::Special(1)
            ]
        );
    }

    #[test]
    fn whitespace_words_drop_empty_words() {
        let words: Vec<&str> = whitespace_words("  a \t b\n\nc  ").collect();
        assert_eq!(words, ["a", "b", "c"]);
    }
}
