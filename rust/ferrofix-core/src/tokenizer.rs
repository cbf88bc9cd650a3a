//! Tiny tokenizers for tests: word (space split), character, byte and byte-level BPE models
//! over one vocabulary layout: the special tokens first (ids 0..k), then the model's tokens.
//!
//! Invariants:
//! - Token strings are unique and ids dense in [0, len); every model is exportable to an HF
//!   `tokenizer.json` that gives the same ids (the strings are those HF uses: byte-level
//!   tokens in the GPT-2 printable-character form).
//! - Special tokens are recognised anywhere in a text before the model splits it.
//! - Encoding never panics: unknown words or characters are an [`Error::UnknownToken`]
//!   unless the tokenizer falls back to its unknown token.

pub mod batch;
pub mod bpe_train;
pub mod byte_classes;
pub mod byte_level;
pub mod id_buffers;
pub mod pretokenize;
pub mod word_table;

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use byte_level::{MergeTable, byte_chars, char_byte};
use pretokenize::{Segment, SpecialMatcher, byte_level_pieces, whitespace_words};
use word_table::{Scan, WordTable};

/// The default special tokens, in id order.
pub const DEFAULT_SPECIALS: [&str; 7] = [
    "[PAD]", "[CLS]", "[MASK]", "[EOS]", "[BOS]", "[SEP]", "[UNK]",
];

/// Which model a tokenizer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Whitespace-separated words looked up in a vocabulary.
    Word,
    /// One token per character of an alphabet.
    Char,
    /// One token per UTF-8 byte.
    Byte,
    /// Byte-level BPE with ranked merges.
    Bpe,
}

impl Kind {
    /// The name used in Python and in saved configs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Word => "simple",
            Self::Char => "char",
            Self::Byte => "byte",
            Self::Bpe => "bpe",
        }
    }
}

/// The role of a special token, recognised from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Padding.
    Pad,
    /// Classification / start of a pair.
    Cls,
    /// The mask token of masked (diffusion) LMs.
    Mask,
    /// End of sequence.
    Eos,
    /// Beginning of sequence.
    Bos,
    /// Separator.
    Sep,
    /// Unknown token.
    Unk,
}

impl Role {
    /// Every role, in the order of [`DEFAULT_SPECIALS`].
    pub const ALL: [Role; 7] = [
        Role::Pad,
        Role::Cls,
        Role::Mask,
        Role::Eos,
        Role::Bos,
        Role::Sep,
        Role::Unk,
    ];

    /// The role's name in attribute names (`pad` -> `pad_token_id`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Pad => "pad",
            Self::Cls => "cls",
            Self::Mask => "mask",
            Self::Eos => "eos",
            Self::Bos => "bos",
            Self::Sep => "sep",
            Self::Unk => "unk",
        }
    }

    /// The role a special token's spelling stands for (`[PAD]`, `<pad>`, `<s>`, `<|endoftext|>`...).
    pub fn of(token: &str) -> Option<Role> {
        let bare = token
            .trim_start_matches(['[', '<', '|'])
            .trim_end_matches([']', '>', '|'])
            .to_ascii_lowercase();
        Some(match bare.as_str() {
            "pad" => Self::Pad,
            "cls" => Self::Cls,
            "mask" => Self::Mask,
            "eos" | "/s" | "endoftext" => Self::Eos,
            "bos" | "s" | "startoftext" => Self::Bos,
            "sep" => Self::Sep,
            "unk" => Self::Unk,
            _ => return None,
        })
    }
}

/// Options every model shares.
#[derive(Debug, Clone)]
pub struct Config {
    /// Special tokens, ids 0..k in this order.
    pub specials: Vec<String>,
    /// Map unknown words or characters to the unknown token instead of failing.
    pub unk_fallback: bool,
    /// `add_special_tokens=True` prepends the BOS token.
    pub add_bos: bool,
    /// `add_special_tokens=True` appends the EOS token.
    pub add_eos: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            specials: DEFAULT_SPECIALS.iter().map(|s| s.to_string()).collect(),
            unk_fallback: false,
            add_bos: false,
            add_eos: false,
        }
    }
}

#[derive(Debug, Clone)]
enum Model {
    Word(WordTable),
    Char(FxHashMap<char, u32>),
    /// Byte and BPE; `pieces` runs the byte-level pre-tokenizer (BPE only).
    ByteLevel {
        table: MergeTable,
        pieces: bool,
    },
}

/// A tokenizer: vocabulary, model and special-token behaviour.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    kind: Kind,
    config: Config,
    tokens: Vec<String>,
    ids: FxHashMap<String, u32>,
    specials: SpecialMatcher,
    model: Model,
    /// Merges as (left id, right id), in rank order (BPE only).
    merges: Vec<(u32, u32)>,
    /// Bytes each id decodes to (byte-level models only).
    token_bytes: Vec<Vec<u8>>,
    roles: [Option<u32>; 7],
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
}

fn role_index(role: Role) -> usize {
    Role::ALL.iter().position(|&r| r == role).unwrap_or(0)
}

impl Tokenizer {
    /// Register `tokens` after the specials, checking uniqueness; `what` names the argument.
    fn build(
        kind: Kind,
        config: Config,
        model_tokens: Vec<String>,
        what: &'static str,
        model: Model,
    ) -> Result<Self> {
        // Ids are u32 (numpy gets them as int64).
        if config.specials.len() + model_tokens.len() > u32::MAX as usize {
            return Err(Error::invalid(
                what,
                format!(
                    "at most {} tokens with the special tokens, got {}",
                    u32::MAX,
                    config.specials.len() + model_tokens.len()
                ),
            ));
        }
        let mut ids = FxHashMap::default();
        let mut roles = [None; 7];
        for (id, special) in config.specials.iter().enumerate() {
            if special.is_empty() {
                return Err(Error::invalid(
                    "special_tokens",
                    format!("entry {id} is an empty string"),
                ));
            }
            if ids.insert(special.clone(), id as u32).is_some() {
                return Err(Error::invalid(
                    "special_tokens",
                    format!("duplicate entry '{special}' at index {id}"),
                ));
            }
            if let Some(role) = Role::of(special) {
                roles[role_index(role)].get_or_insert(id as u32);
            }
        }
        let num_special = config.specials.len();
        for (index, token) in model_tokens.iter().enumerate() {
            if ids.contains_key(token) {
                let why = if config.specials.contains(token) {
                    "is a special token"
                } else {
                    "is a duplicate"
                };
                return Err(Error::invalid(
                    what,
                    format!("entry '{token}' at index {index} {why}"),
                ));
            }
            ids.insert(token.clone(), (num_special + index) as u32);
        }
        let role = |r: Role| roles[role_index(r)];
        let (bos, eos, unk) = (role(Role::Bos), role(Role::Eos), role(Role::Unk));
        let needs = [
            (
                config.add_bos,
                bos,
                "add_bos",
                "a BOS special token such as [BOS]",
            ),
            (
                config.add_eos,
                eos,
                "add_eos",
                "an EOS special token such as [EOS]",
            ),
            (
                config.unk_fallback,
                unk,
                "unk_fallback",
                "an UNK special token such as [UNK]",
            ),
        ];
        for (wanted, id, arg, what) in needs {
            if wanted && id.is_none() {
                return Err(Error::invalid(
                    arg,
                    format!("needs {what}; special_tokens are {:?}", config.specials),
                ));
            }
        }
        let mut tokens = config.specials.clone();
        tokens.extend(model_tokens);
        Ok(Self {
            kind,
            specials: SpecialMatcher::new(&config.specials),
            config,
            tokens,
            ids,
            model,
            merges: Vec::new(),
            token_bytes: Vec::new(),
            roles,
            bos,
            eos,
            unk,
        })
    }

    /// A word tokenizer: texts split on whitespace, each word looked up in `vocab`.
    pub fn word(vocab: Vec<String>, config: Config) -> Result<Self> {
        if let Some((index, word)) = vocab
            .iter()
            .enumerate()
            .find(|(_, w)| w.is_empty() || w.chars().any(char::is_whitespace))
        {
            return Err(Error::invalid(
                "vocab",
                format!(
                    "entry {word:?} at index {index} is empty or contains whitespace, so no text can produce it"
                ),
            ));
        }
        let mut tokenizer = Self::build(
            Kind::Word,
            config,
            vocab,
            "vocab",
            Model::Word(WordTable::new([].into_iter(), &[false; 256])),
        )?;
        let words = tokenizer
            .tokens
            .iter()
            .enumerate()
            .map(|(id, token)| (token.as_str(), id as u32));
        tokenizer.model = Model::Word(WordTable::new(words, tokenizer.specials.first_bytes()));
        Ok(tokenizer)
    }

    /// A character tokenizer over `alphabet` (one token per character).
    pub fn char(alphabet: Vec<char>, config: Config) -> Result<Self> {
        let num_special = config.specials.len() as u32;
        let chars = alphabet
            .iter()
            .enumerate()
            .map(|(index, &c)| (c, num_special + index as u32))
            .collect();
        let tokens = alphabet.iter().map(|c| c.to_string()).collect();
        Self::build(Kind::Char, config, tokens, "alphabet", Model::Char(chars))
    }

    /// A byte tokenizer: one token per UTF-8 byte.
    pub fn byte(config: Config) -> Result<Self> {
        Self::byte_level(Kind::Byte, config, &[])
    }

    /// A byte-level BPE tokenizer from merges given as token strings in the GPT-2
    /// byte-character form (`("Ġ", "t")`), lowest rank first.
    pub fn bpe(merges: &[(String, String)], config: Config) -> Result<Self> {
        let to_bytes = |index: usize, token: &str| -> Result<Vec<u8>> {
            token
                .chars()
                .map(|c| {
                    char_byte(c).ok_or_else(|| {
                        Error::invalid(
                            "merges",
                            format!("merge {index}: {token:?} has {c:?}, which is not a byte-level character"),
                        )
                    })
                })
                .collect()
        };
        let merges = merges
            .iter()
            .enumerate()
            .map(|(i, (left, right))| Ok((to_bytes(i, left)?, to_bytes(i, right)?)))
            .collect::<Result<Vec<_>>>()?;
        Self::byte_level(Kind::Bpe, config, &merges)
    }

    /// Train a byte-level BPE tokenizer on `texts` up to `vocab_size` ids in all.
    pub fn train_bpe(
        texts: &[&str],
        vocab_size: usize,
        min_frequency: u64,
        config: Config,
    ) -> Result<Self> {
        let base = config.specials.len() + 256;
        if vocab_size < base {
            return Err(Error::invalid(
                "vocab_size",
                format!(
                    "must be at least {base} (the {} special tokens and 256 bytes), got {vocab_size}",
                    config.specials.len()
                ),
            ));
        }
        if min_frequency < 1 {
            return Err(Error::invalid("min_frequency", "must be at least 1, got 0"));
        }
        let specials = SpecialMatcher::new(&config.specials);
        let merges = bpe_train::train(texts, &specials, vocab_size - base, min_frequency)?;
        Self::byte_level(Kind::Bpe, config, &merges)
    }

    fn byte_level(kind: Kind, config: Config, merges: &[bpe_train::MergeBytes]) -> Result<Self> {
        let chars = byte_chars();
        let as_token = |bytes: &[u8]| bytes.iter().map(|&b| chars[b as usize]).collect::<String>();
        let num_special = config.specials.len() as u32;
        let mut byte_ids = [0u32; 256];
        let mut token_bytes: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        let mut id_of_bytes: FxHashMap<Vec<u8>, u32> = FxHashMap::default();
        for b in 0..=255u8 {
            byte_ids[b as usize] = num_special + b as u32;
            id_of_bytes.insert(vec![b], num_special + b as u32);
        }
        let mut table = Vec::with_capacity(merges.len());
        for (index, (left, right)) in merges.iter().enumerate() {
            let id = |bytes: &Vec<u8>| {
                id_of_bytes.get(bytes).copied().ok_or_else(|| {
                    Error::invalid(
                        "merges",
                        format!(
                            "merge {index}: {:?} is neither a byte nor made by an earlier merge",
                            as_token(bytes)
                        ),
                    )
                })
            };
            let (left_id, right_id) = (id(left)?, id(right)?);
            let mut joined = left.clone();
            joined.extend_from_slice(right);
            let next = num_special + token_bytes.len() as u32;
            let merged = *id_of_bytes.entry(joined.clone()).or_insert_with(|| {
                token_bytes.push(joined);
                next
            });
            table.push((left_id, right_id, merged));
        }
        let model_tokens: Vec<String> = token_bytes.iter().map(|b| as_token(b)).collect();
        for (index, special) in config.specials.iter().enumerate() {
            if let Some(position) = model_tokens.iter().position(|t| t == special) {
                let owner = if position < 256 {
                    format!("the byte-level token of byte {position:#04x}")
                } else {
                    format!("the token of merge {}", position - 256)
                };
                return Err(Error::invalid(
                    "special_tokens",
                    format!("entry '{special}' at index {index} is also {owner}"),
                ));
            }
        }
        let model = Model::ByteLevel {
            table: MergeTable::new(byte_ids, &table),
            pieces: kind == Kind::Bpe,
        };
        let mut tokenizer = Self::build(kind, config, model_tokens, "special_tokens", model)?;
        tokenizer.merges = table.iter().map(|&(l, r, _)| (l, r)).collect();
        let mut all_bytes: Vec<Vec<u8>> = tokenizer
            .config
            .specials
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        all_bytes.extend(token_bytes);
        tokenizer.token_bytes = all_bytes;
        Ok(tokenizer)
    }

    /// The model kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The shared options.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every token string, by id.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// The bytes each id stands for: the raw bytes of byte-level tokens (not their
    /// printable form), the UTF-8 text of every other token.
    pub fn token_bytes(&self) -> Vec<&[u8]> {
        if self.token_bytes.is_empty() {
            self.tokens.iter().map(|t| t.as_bytes()).collect()
        } else {
            self.token_bytes.iter().map(Vec::as_slice).collect()
        }
    }

    /// The number of ids.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there are no ids at all (never: the byte models have 256).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The id of the special token playing `role`, if any.
    pub fn role_id(&self, role: Role) -> Option<u32> {
        self.roles[role_index(role)]
    }

    /// Merges as (left token, right token) strings in rank order (BPE only).
    pub fn merges(&self) -> Vec<(String, String)> {
        self.merges
            .iter()
            .map(|&(l, r)| {
                (
                    self.tokens[l as usize].clone(),
                    self.tokens[r as usize].clone(),
                )
            })
            .collect()
    }

    /// The id of a token string.
    pub fn token_id(&self, token: &str) -> Result<u32> {
        match self.ids.get(token) {
            Some(&id) => Ok(id),
            None => self.unknown(token),
        }
    }

    fn unknown(&self, token: &str) -> Result<u32> {
        match (self.config.unk_fallback, self.unk) {
            (true, Some(unk)) => Ok(unk),
            _ => Err(Error::UnknownToken {
                token: token.to_string(),
            }),
        }
    }

    /// Append the ids of `text` (no BOS/EOS) to `out`.
    pub fn encode_content(&self, text: &str, out: &mut Vec<u32>) -> Result<()> {
        if let Model::Word(table) = &self.model {
            let start = out.len();
            let unk = self.unk.filter(|_| self.config.unk_fallback);
            match table.scan(text, unk, out) {
                Scan::Done => return Ok(()),
                Scan::Unknown(word) => {
                    return Err(Error::UnknownToken {
                        token: word.to_string(),
                    });
                }
                Scan::Fallback => out.truncate(start),
            }
        }
        let mut failure = None;
        self.specials.split(text, |segment| match segment {
            Segment::Special(id) => out.push(id),
            Segment::Text(text) if failure.is_none() => {
                if let Err(error) = self.encode_text(text, out) {
                    failure = Some(error);
                }
            }
            Segment::Text(_) => {}
        });
        failure.map_or(Ok(()), Err)
    }

    fn encode_text(&self, text: &str, out: &mut Vec<u32>) -> Result<()> {
        match &self.model {
            Model::Word(table) => {
                for word in whitespace_words(text) {
                    match table.get(word) {
                        Some(id) => out.push(id),
                        None => out.push(self.unknown(word)?),
                    }
                }
            }
            Model::Char(chars) => {
                for c in text.chars() {
                    match chars.get(&c) {
                        Some(&id) => out.push(id),
                        None => out.push(self.unknown(c.encode_utf8(&mut [0; 4]))?),
                    }
                }
            }
            Model::ByteLevel {
                table,
                pieces: false,
            } => out.extend(text.bytes().map(|b| table.byte_id(b))),
            Model::ByteLevel {
                table,
                pieces: true,
            } => byte_level_pieces(text, |piece| table.encode_piece(piece.as_bytes(), out)),
        }
        Ok(())
    }

    /// The BOS/EOS ids `add_special_tokens=True` adds before and after the content.
    pub fn added_specials(&self) -> (Option<u32>, Option<u32>) {
        (
            self.bos.filter(|_| self.config.add_bos),
            self.eos.filter(|_| self.config.add_eos),
        )
    }

    /// The ids of `text`, with BOS/EOS when `add_special_tokens` and configured.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(text.len() / 2 + 2);
        let (bos, eos) = if add_special_tokens {
            self.added_specials()
        } else {
            (None, None)
        };
        out.extend(bos);
        self.encode_content(text, &mut out)?;
        out.extend(eos);
        Ok(out)
    }

    /// `arg` names the ids in the error: the caller's parameter (`ids`, `token_ids`, ...).
    fn check_ids(&self, ids: &[i64], arg: &'static str) -> Result<()> {
        match self.first_id_out_of_range(ids) {
            None => Ok(()),
            Some(at) => Err(Error::invalid(
                arg,
                format!(
                    "id {} at position {at} is outside [0, {})",
                    ids[at],
                    self.tokens.len()
                ),
            )),
        }
    }

    /// The position of the first id that names no token.
    fn first_id_out_of_range(&self, ids: &[i64]) -> Option<usize> {
        let n = self.tokens.len() as i64;
        ids.iter().position(|&id| !(0..n).contains(&id))
    }

    /// The token strings of `ids`.
    pub fn id_tokens(&self, ids: &[i64]) -> Result<Vec<&str>> {
        self.check_ids(ids, "ids")?;
        Ok(ids
            .iter()
            .map(|&id| self.tokens[id as usize].as_str())
            .collect())
    }

    /// The text of `ids`: words joined by spaces, characters and bytes concatenated (invalid
    /// UTF-8 becomes U+FFFD, as in HF's byte-level decoder). `arg` names `ids` in errors.
    pub fn decode(
        &self,
        ids: &[i64],
        skip_special_tokens: bool,
        arg: &'static str,
    ) -> Result<String> {
        self.check_ids(ids, arg)?;
        Ok(self.decode_checked(ids, skip_special_tokens))
    }

    /// The texts of consecutive rows of `ids`, `lengths[r]` ids in row `r`, as [`decode`]
    /// gives each. Errors name `arg` and, for an id out of range, its row and position.
    ///
    /// [`decode`]: Self::decode
    pub fn decode_rows(
        &self,
        ids: &[i64],
        lengths: &[usize],
        skip_special_tokens: bool,
        arg: &'static str,
    ) -> Result<Vec<String>> {
        let total = lengths
            .iter()
            .try_fold(0usize, |sum, &length| sum.checked_add(length));
        if total != Some(ids.len()) {
            return Err(Error::invalid(
                arg,
                format!("row lengths must add up to the {} ids given", ids.len()),
            ));
        }
        let mut rows = Vec::with_capacity(lengths.len());
        let mut start = 0;
        for (row, &length) in lengths.iter().enumerate() {
            let ids = &ids[start..start + length];
            if let Some(at) = self.first_id_out_of_range(ids) {
                return Err(Error::invalid(
                    arg,
                    format!(
                        "id {} at row {row}, position {at} is outside [0, {})",
                        ids[at],
                        self.tokens.len()
                    ),
                ));
            }
            rows.push(self.decode_checked(ids, skip_special_tokens));
            start += length;
        }
        Ok(rows)
    }

    /// [`decode`](Self::decode) of ids known to be in range.
    fn decode_checked(&self, ids: &[i64], skip_special_tokens: bool) -> String {
        let num_special = self.config.specials.len() as i64;
        let kept = ids
            .iter()
            .filter(|&&id| !(skip_special_tokens && id < num_special))
            .map(|&id| id as usize);
        match self.kind {
            Kind::Word => kept
                .map(|id| self.tokens[id].as_str())
                .collect::<Vec<_>>()
                .join(" "),
            Kind::Char => kept.map(|id| self.tokens[id].as_str()).collect(),
            Kind::Byte | Kind::Bpe => {
                let bytes: Vec<u8> = kept
                    .flat_map(|id| self.token_bytes[id].iter().copied())
                    .collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn word_ids_follow_the_specials() {
        let t = Tokenizer::word(words(&["a", "b"]), Config::default()).unwrap_or_else(|e| {
            unreachable!("{e}");
        });
        assert_eq!(t.len(), 9);
        assert_eq!(t.encode("  b a  [MASK] ", false), Ok(vec![8, 7, 2]));
        assert_eq!(
            t.encode("a c", false),
            Err(Error::UnknownToken { token: "c".into() })
        );
        assert_eq!(t.decode(&[1, 7, 8], true, "ids").as_deref(), Ok("a b"));
    }

    #[test]
    fn rows_decode_as_each_row_alone_and_errors_name_the_row() {
        let t = Tokenizer::word(words(&["a", "b"]), Config::default()).unwrap_or_else(|e| {
            unreachable!("{e}");
        });
        let ids = [1, 7, 8, 8, 0];
        assert_eq!(
            t.decode_rows(&ids, &[3, 0, 2], true, "sequences"),
            Ok(vec!["a b".to_string(), String::new(), "b".to_string()])
        );
        let error = |ids: &[i64], lengths: &[usize]| {
            t.decode_rows(ids, lengths, false, "sequences")
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(
            error(&[7, 8, 9], &[2, 1]).as_deref(),
            Some("sequences: id 9 at row 1, position 0 is outside [0, 9)")
        );
        assert_eq!(
            error(&[7, 8], &[1, usize::MAX]).as_deref(),
            Some("sequences: row lengths must add up to the 2 ids given")
        );
        assert!(error(&[7, 8], &[1]).is_some());
    }

    #[test]
    fn bad_vocabularies_are_config_errors() {
        let dup = Tokenizer::word(words(&["a", "a"]), Config::default());
        assert_eq!(
            dup.err().map(|e| e.to_string()).as_deref(),
            Some("vocab: entry 'a' at index 1 is a duplicate")
        );
        let special = Tokenizer::word(words(&["[PAD]"]), Config::default());
        assert_eq!(
            special.err().map(|e| e.to_string()).as_deref(),
            Some("vocab: entry '[PAD]' at index 0 is a special token")
        );
    }

    #[test]
    fn byte_decode_replaces_invalid_utf8() {
        let t = Tokenizer::byte(Config::default()).unwrap_or_else(|e| unreachable!("{e}"));
        let ids = t.encode("é", false).unwrap_or_default();
        assert_eq!(ids, [7 + 0xc3, 7 + 0xa9]);
        assert_eq!(
            t.decode(&[7 + 0xc3], false, "ids").as_deref(),
            Ok("\u{fffd}")
        );
    }
}
