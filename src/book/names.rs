//! The address book's search index: one row per (contact, number) in the order the PBX shows
//! them, and the folded words of every contact's name, company and groups, sorted by their
//! letters once for both searches (text: a query word is a prefix of a word; keypad: the
//! letters each digit stands for narrow the words). Built with the caller-ID index and
//! swapped with it, so a search reads the same snapshot a lookup does, without locks, the
//! store or the network.

use std::cmp::Ordering;
use std::ops::Range;

use super::fold;

/// One row of the address book: a number of a contact, with what the phone shows. The same
/// 16-byte shape as the caller-ID slot; `text` points at the contact's entry in the
/// account's text arena (see `numbers`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Row {
    pub e164: u64,
    pub text: u32,
    pub name_len: u8,
    pub company_len: u8,
    pub label: u16,
}

/// The book's distinct words in order, and which contacts have each: what text and keypad
/// searches read.
#[derive(Default, Debug, PartialEq, Eq)]
struct SortedWords {
    /// Every distinct folded word once, in order, each followed by a NUL.
    text: Box<[u8]>,
    /// Where each word starts in `text`.
    at: Box<[u32]>,
    /// Word `w`'s contacts are `contacts[contacts_from[w]..contacts_from[w + 1]]`: their
    /// ranks, ascending, with `GROUP_WORD` set where the contact has the word only in a
    /// group's name. So the contacts of a run of words are one run too.
    contacts_from: Box<[u32]>,
    contacts: Box<[u32]>,
}

/// The top bit of a word's contact: the contact has the word only in the name of one of its
/// groups, searched by text, not dialled. (In `Words`, the top bit of a contact's word id.)
const GROUP_WORD: u32 = 1 << 31;

impl SortedWords {
    fn count(&self) -> usize {
        self.at.len()
    }

    /// The contacts of words `words`.
    fn contacts_of(&self, words: Range<usize>) -> &[u32] {
        let from = self.contacts_from[words.start] as usize;
        let to = self.contacts_from[words.end] as usize;
        &self.contacts[from..to]
    }

    /// The part of `words` whose words start with `prefix`. A word's bytes are compared as
    /// long as the prefix, its NUL included when it is shorter: the NUL sorts before every
    /// letter, so this orders the words as their text does without looking for where each
    /// one ends.
    fn narrow(&self, words: Range<usize>, prefix: &[u8]) -> Range<usize> {
        let head = |&at: &u32| {
            let start = at as usize;
            &self.text[start..(start + prefix.len()).min(self.text.len())]
        };
        let starts = &self.at[words.clone()];
        let from = starts.partition_point(|w| head(w) < prefix);
        let to = from + starts[from..].partition_point(|w| head(w) == prefix);
        words.start + from..words.start + to
    }

    fn heap_bytes(&self) -> usize {
        self.text.len() + (self.at.len() + self.contacts_from.len() + self.contacts.len()) * 4
    }
}

/// What a contact brings to the index.
#[derive(Clone)]
pub struct Entry<'a> {
    pub name: &'a str,
    pub company: &'a str,
    /// Group names, as shown.
    pub groups: &'a [String],
    /// The contact's rows (one per number, in any order): where they are among the rows
    /// (`NameIndex::build`, `Layout::index`) and their numbers (`FoldedBook::lay_out`) handed
    /// beside the entries.
    pub rows: Range<u32>,
}

#[derive(Default, Debug, PartialEq, Eq)]
pub struct NameIndex {
    /// Every row, as the caller-ID part made them (kept, not copied into the book's order:
    /// the copy, made after both threads of a build were done, took 0.1 ms of 3).
    rows: Box<[Row]>,
    /// The address book's order: name, then company (case and accents ignored), then the
    /// number as text; the row at each place, an index into `rows`.
    order: Box<[u32]>,
    /// The rows of contact `c` are `contact_rows[contact_start[c]..contact_start[c + 1]]`,
    /// their places in the book's order (`order`), ascending.
    contact_start: Box<[u32]>,
    contact_rows: Box<[u32]>,
    /// The distinct words, sorted by their letters, with their contacts. Keypad search
    /// walks them too: the letters a digit stands for narrow the range one digit at a time,
    /// so no second copy sorted by keypad spelling is kept.
    words: SortedWords,
}

/// A parsed search query.
#[derive(Debug, PartialEq, Eq)]
pub enum Query {
    /// Every row.
    All,
    /// Every word must match: `words` as prefixes of a contact's words, `digits` as a part of
    /// a row's E.164 number.
    Text {
        words: Vec<String>,
        digits: Vec<String>,
    },
    /// Keypad digits 2-9 spelling the start of a word of the name or company.
    Keypad(String),
}

/// The longest query searched, in bytes (white space around it aside). Each word costs a
/// pass over the contacts it starts, and each digit word a look at every candidate row: a
/// query of a megabyte held the caller's thread (and `gi_close`, which waits for it) for
/// seconds to minutes. A search box needs far less; the words it matches are cut at 127 bytes.
pub const MAX_QUERY_BYTES: usize = 256;

impl Query {
    /// Reads a query as `gi_search_contacts` gets it. Keypad mode takes digits 2-9 only.
    pub fn parse(text: &str, keypad: bool) -> Result<Query, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Query::All);
        }
        if text.len() > MAX_QUERY_BYTES {
            return Err(format!(
                "the query is {} bytes long; a search takes at most {MAX_QUERY_BYTES} (a few words of a name, a company, a group or a number)",
                text.len()
            ));
        }
        if keypad {
            if let Some(bad) = text.chars().find(|c| !matches!(c, '2'..='9')) {
                return Err(format!(
                    "keypad search takes the digits 2-9 as typed on a phone keypad; {bad:?} is not one of them"
                ));
            }
            return Ok(Query::Keypad(text.to_owned()));
        }
        let mut words = Vec::new();
        let mut digits = Vec::new();
        for word in text.split_whitespace() {
            if let Some(number) = digit_word(word) {
                digits.push(number);
            } else {
                fold::words(word, |w| words.push(w.to_owned()));
            }
        }
        if words.is_empty() && digits.is_empty() {
            return Ok(Query::All); // punctuation only
        }
        // A word given twice matches what it matches once, and is searched once.
        words.sort_unstable();
        words.dedup();
        digits.sort_unstable();
        digits.dedup();
        Ok(Query::Text { words, digits })
    }
}

/// A word of 3 or more digits, with `+ - ( ) .` allowed among them: its digits.
fn digit_word(word: &str) -> Option<String> {
    if !word
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '(' | ')' | '.'))
    {
        return None;
    }
    let digits: String = word.chars().filter(char::is_ascii_digit).collect();
    (digits.len() >= 3).then_some(digits)
}

/// What a query matches in one index: how many rows in all, and the first of them in order
/// (positions in the index's rows), as many as were asked for.
pub struct Matches {
    pub total: usize,
    pub first: Vec<u32>,
}

/// Base contacts a patch has replaced or deleted: their places in the address book (ranks)
/// and their rows, each sorted, so that a search of the base can leave them out in time
/// proportional to how many there are.
#[derive(Clone, Debug, Default)]
pub struct Hidden {
    pub ranks: Vec<u32>,
    pub rows: Vec<u32>,
}

impl Hidden {
    fn hides_row(&self, row: u32) -> bool {
        self.rows.binary_search(&row).is_ok()
    }
}

/// A set of contacts, one bit each: contacts are numbered in the address book's order (by
/// their first row), so walking the set walks the result in order.
struct ContactSet(Vec<u64>);

impl ContactSet {
    fn new(contacts: usize) -> ContactSet {
        ContactSet(vec![0; contacts / 64 + 1])
    }

    fn insert(&mut self, contact: u32) {
        self.0[contact as usize / 64] |= 1 << (contact % 64);
    }

    fn contains(&self, contact: u32) -> bool {
        self.0[contact as usize / 64] & (1 << (contact % 64)) != 0
    }

    fn remove(&mut self, contact: u32) {
        self.0[contact as usize / 64] &= !(1 << (contact % 64));
    }

    fn intersect(&mut self, other: &ContactSet) {
        for (word, other) in self.0.iter_mut().zip(&other.0) {
            *word &= other;
        }
    }

    fn remove_all(&mut self, hidden: &Hidden) {
        for &rank in &hidden.ranks {
            self.remove(rank);
        }
    }

    /// The contacts in the set, ascending.
    fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(at, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let bit = bits.trailing_zeros();
                    bits &= bits - 1;
                    (at * 64) as u32 + bit
                })
            })
        })
    }
}

/// The address book's contacts (those with a number) folded: name, company and group names
/// of each, in one buffer, and their words numbered. The first step of a build; see
/// `FoldedBook`.
struct Folded {
    text: Vec<u8>,
    /// Contact `c`'s name is `text[at[c][0]..at[c][1]]`, its company runs to `at[c][2]`, its
    /// groups (joined by spaces) to `at[c][3]`.
    at: Vec<[u32; 4]>,
    rows: Vec<(u32, u32)>,
    /// The words, numbered; `word_start` ends with the end of the last contact's words.
    numbering: WordNumbering,
}

/// The distinct words of a folded book, numbered in the order contacts first have them.
#[derive(Default)]
struct Words {
    /// Every distinct word once (where it is in the folded text), and how many contacts have
    /// it.
    distinct: Vec<(u32, u32)>,
    count: Vec<u32>,
    /// Contact `c`'s words are `words[word_start[c]..word_start[c + 1]]`: ids in `distinct`,
    /// with `GROUP_WORD` set for a group's word. A word a contact has twice is there once:
    /// the first, a dialled one (name, company) when it has one, before a group's.
    words: Vec<u32>,
    word_start: Vec<u32>,
}

/// Numbers words as a contact's text is folded, while it is still in the cache, so that a
/// fold is complete with its words and two folds can be joined (see `absorb`). Measured
/// alone, it costs what the second pass over the folded text it replaced did.
#[derive(Default)]
struct WordNumbering {
    /// Words of up to 16 bytes (nearly all) are numbered by their bytes as one integer, read
    /// in one load and hashed and compared in place; longer ones by their text. Kept as two
    /// halves: a `u128` key is aligned to 16 bytes, so each entry took 32 bytes instead of
    /// 24, and the table's misses cost 7% of the fold (25,000 contacts: 2.05-2.24 ms against
    /// 2.16-2.44, alternating).
    short_ids: rustc_hash::FxHashMap<ShortWord, u32>,
    long_ids: rustc_hash::FxHashMap<Box<[u8]>, u32>,
    /// Per word id: the last contact that had it.
    last_contact: Vec<u32>,
    words: Words,
    /// Per contact: how its name starts, for ordering the book (see `NameStart`).
    name_starts: Vec<NameStart>,
}

/// A word of up to `WORD_KEY_BYTES` bytes as two integers (see `WordNumbering::short_ids`),
/// hashed as two integers: `[u64; 2]` hashes as 16 bytes after its length, through the
/// hasher's path for byte strings (25,000 contacts, the name index built on one thread: 0.98
/// of the time, alternating in one process, faster in 16 of 22 rounds).
#[derive(Clone, Copy, PartialEq, Eq)]
struct ShortWord(u64, u64);

impl std::hash::Hash for ShortWord {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
        state.write_u64(self.1);
    }
}

/// How many of a name's words `NameStart` keeps.
const START_WORDS: usize = 3;

/// The start of a contact's folded name as words and what separates them, for ordering the
/// address book by counting instead of comparing names (see `Folded::by_name`).
///
/// Names compare byte by byte. When a name starts with its first word, every separator
/// between its first words is one byte below `0` (a space, `'`, `-`, `.`: below every
/// letter and digit), and so is the byte after the last word kept (with fewer than three
/// words, the name's last byte), comparing two names byte by byte gives what comparing their
/// words one by one (as strings: a word before a longer word it starts) and then their
/// separators does: where the names first differ, either both have a letter or digit (their
/// words differ there), or one has a separator or its end and the other a letter or digit
/// (the first's word is the start of the other's, and sorts first), or both have separators
/// (which differ). So such names order by (word, separator, word, separator, word), each
/// word by its place among the book's distinct words, with no name read. Other names
/// (`Dr. No`: two separator bytes; `[?]`, a leading `(`) are `orderable: false`, ordered by
/// comparing them.
#[derive(Clone, Copy, Debug, Default)]
struct NameStart {
    /// The first words' ids + 1; 0 where the name has no more words.
    words: [u32; START_WORDS],
    /// The separators after the first two words, as their byte + 1; 0 where the name ends.
    separators: [u8; START_WORDS - 1],
    orderable: bool,
    /// Orderable, and nothing of the name is left out of `words` and `separators`: two
    /// whole names with the same start are the same name.
    whole: bool,
}

impl NameStart {
    /// Fills in the separators and whether the name is orderable by its start, given where
    /// its first words are in `text[name_from..]` (which ends with the name).
    fn check(&mut self, text: &[u8], name_from: usize, spans: &[(usize, usize)]) {
        let name_to = text.len();
        let Some((&(first, _), &(_, last_end))) = spans.first().zip(spans.last()) else {
            // No word: the empty name sorts first by its key; one of separators is compared.
            self.orderable = name_from == name_to;
            self.whole = self.orderable;
            return;
        };
        // The first word starts the name; each of the others follows one separator byte.
        self.orderable = first == name_from;
        for (at, pair) in spans.windows(2).enumerate() {
            let (end, next) = (pair[0].1, pair[1].0);
            self.orderable &= next == end + 1 && text[end] < b'0';
            self.separators[at] = text[end] + 1;
        }
        // After the last word kept: the name's end, or a separator byte below `0` (which,
        // with fewer words than kept, must be all that is left: the last separator).
        if last_end < name_to {
            let after = text[last_end];
            let kept = spans.len();
            self.orderable &= after < b'0' && (kept == START_WORDS || last_end + 1 == name_to);
            if kept < START_WORDS {
                self.separators[kept - 1] = after + 1;
            }
        }
        // With fewer words than kept, all after the last is its separator, if any.
        self.whole = self.orderable && (spans.len() < START_WORDS || last_end == name_to);
    }
}

/// The bytes of a word that its key holds: a word this long or shorter is numbered by one
/// integer.
const WORD_KEY_BYTES: usize = 16;

/// The `WORD_KEY_BYTES` bytes of folded text from `start`, read at once: the text is padded
/// with as many zeros, so there always are that many.
fn key_bytes(text: &[u8], start: usize) -> [u8; WORD_KEY_BYTES] {
    text[start..start + WORD_KEY_BYTES]
        .try_into()
        .expect("the text is padded")
}

/// The first `keep` bytes (at most `WORD_KEY_BYTES`) of the `len` bytes of folded text at
/// `start`, as one big-endian integer with zeros after them: such integers order as the
/// texts' first bytes do, since no folded text holds a zero byte. Read in one load: the text
/// is padded.
fn head_key(text: &[u8], start: usize, len: usize, keep: usize) -> u128 {
    let kept = len.min(keep);
    if kept == 0 {
        return 0;
    }
    u128::from_be_bytes(key_bytes(text, start)) & (u128::MAX << (8 * (WORD_KEY_BYTES - kept)))
}

impl WordNumbering {
    fn with_capacity(contacts: usize) -> WordNumbering {
        let mut numbering = WordNumbering::default();
        numbering.words.words.reserve(contacts * 3);
        numbering.words.word_start.reserve(contacts + 1);
        numbering.name_starts.reserve(contacts);
        numbering
    }

    /// Numbers the words of `contact`, whose parts are `text[at[0]..at[3]]`; `text` holds
    /// `WORD_KEY_BYTES` zeros after them.
    fn add_contact(&mut self, text: &[u8], at: [u32; 4], contact: u32) {
        self.words.word_start.push(self.words.words.len() as u32);
        let (name_from, name_to) = (at[0] as usize, at[1] as usize);
        // The name's first words, and where each is in the text. Written in place: a start
        // made on the stack a byte at a time and then copied out as a whole stalled the
        // store (perf: a fifth of this function's time).
        let this = self.name_starts.len();
        self.name_starts.push(NameStart::default());
        let mut spans = [(0usize, 0usize); START_WORDS];
        let mut kept = 0;
        for word in fold::split(&text[name_from..name_to]) {
            let offset = name_from + (word.as_ptr() as usize - text[name_from..].as_ptr() as usize);
            let id = self.id(text, offset, word);
            if kept < START_WORDS {
                self.name_starts[this].words[kept] = id + 1;
                spans[kept] = (offset, offset + word.len());
                kept += 1;
            }
            self.add_word(id, contact);
        }
        self.name_starts[this].check(&text[..name_to], name_from, &spans[..kept]);
        for part in 1..3 {
            let kind = if part == 2 { GROUP_WORD } else { 0 };
            let from = at[part] as usize;
            for word in fold::split(&text[from..at[part + 1] as usize]) {
                let offset = from + (word.as_ptr() as usize - text[from..].as_ptr() as usize);
                let id = self.id(text, offset, word);
                self.add_word(id | kind, contact);
            }
        }
    }

    /// Adds word `id` (with its kind) to `contact`'s words, unless the contact has it.
    fn add_word(&mut self, word: u32, contact: u32) {
        let id = (word & !GROUP_WORD) as usize;
        if self.last_contact[id] != contact {
            self.last_contact[id] = contact;
            self.words.count[id] += 1;
            self.words.words.push(word);
        }
    }

    /// The word's id, a new one the first time it is seen.
    fn id(&mut self, text: &[u8], offset: usize, word: &[u8]) -> u32 {
        let next = self.words.distinct.len() as u32;
        let id = if word.len() <= WORD_KEY_BYTES {
            // Words are letters and digits, never NUL: the zeros are unambiguous.
            let key = u128::from_le_bytes(key_bytes(text, offset))
                & (u128::MAX >> (8 * (WORD_KEY_BYTES - word.len())));
            *self
                .short_ids
                .entry(ShortWord(key as u64, (key >> 64) as u64))
                .or_insert(next)
        } else {
            *self.long_ids.entry(word.into()).or_insert(next)
        };
        if id == next {
            self.words
                .distinct
                .push((offset as u32, (offset + word.len()) as u32));
            self.words.count.push(0);
            self.last_contact.push(u32::MAX);
        }
        id
    }

    /// Marks the end of the last contact's words.
    fn finish(&mut self) {
        self.words.word_start.push(self.words.words.len() as u32);
    }

    /// Takes in the numbering of contacts folded after these (by another thread), whose
    /// text now starts at `text_base` in `text`: their words (and the words their names
    /// start with) get this numbering's ids, as if one pass had numbered them all.
    fn absorb(&mut self, later: WordNumbering, text: &[u8], text_base: usize) {
        self.words.word_start.pop();
        let words_base = self.words.words.len() as u32;
        let ids: Vec<u32> = later
            .words
            .distinct
            .iter()
            .map(|&(from, to)| {
                let (from, to) = (text_base + from as usize, text_base + to as usize);
                self.id(text, from, &text[from..to])
            })
            .collect();
        for (&id, &count) in ids.iter().zip(&later.words.count) {
            self.words.count[id as usize] += count;
        }
        self.words.words.extend(
            later
                .words
                .words
                .iter()
                .map(|&word| ids[(word & !GROUP_WORD) as usize] | (word & GROUP_WORD)),
        );
        self.words
            .word_start
            .extend(later.words.word_start.iter().map(|&at| at + words_base));
        self.name_starts
            .extend(later.name_starts.iter().map(|&start| NameStart {
                words: start.words.map(|word| {
                    if word == 0 {
                        0
                    } else {
                        ids[word as usize - 1] + 1
                    }
                }),
                ..start
            }));
    }
}

/// How `Folded::by_name` packs a contact with its order key in one integer: the key above
/// the contact's position, which takes `contact_bits`.
#[derive(Clone, Copy)]
struct Packing {
    contact_bits: u32,
    /// The key's last bits, below the name's fields, when all of them fit: how contacts with
    /// the same name start differ without their text being read (see `Folded::by_name`).
    tail_bits: u32,
}

/// The key's tail (see `Packing::tail_bits`) of a whole name (see `NameStart::whole`) and no
/// company: contacts with the same key are the same name and company.
const TAIL_NOTHING_MORE: u64 = 0b00;
/// Of a whole name and a company.
const TAIL_COMPANY: u64 = 0b01;
/// Of a name that goes on after its start: these compare, company or not.
const TAIL_NAME_GOES_ON: u64 = 0b10;

impl Packing {
    fn contact(self, packed: u64) -> u32 {
        (packed & self.contact_mask()) as u32
    }

    fn key(self, packed: u64) -> u64 {
        packed >> self.contact_bits
    }

    /// The key without its tail: the fields of the name's start.
    fn start_key(self, packed: u64) -> u64 {
        self.key(packed) >> self.tail_bits
    }

    /// Whether two contacts with the key of `packed` are sure to have the same name and
    /// company, unread.
    fn same_unread(self, packed: u64) -> bool {
        self.tail_bits == 2 && self.key(packed) & 0b11 == TAIL_NOTHING_MORE
    }

    /// `packed` with its contact replaced by `contact`.
    fn with_contact(self, packed: u64, contact: u32) -> u64 {
        (packed & !self.contact_mask()) | u64::from(contact)
    }

    fn contact_mask(self) -> u64 {
        (1 << self.contact_bits) - 1
    }
}

/// A field of the order key `Folded::by_name` packs: where it is, how wide, whether it holds
/// a word's place (or a separator), and how many contacts have each value (at value + 1).
struct KeyField {
    shift: u32,
    bits: u32,
    is_word: bool,
    counts: Vec<u32>,
}

/// The fields of `Folded::by_name`'s key, most significant first, for a book of `words`
/// distinct words whose contacts take `contact_bits`, and how many bits its tail takes.
/// The fields are (word, separator, word, separator, word), a word as its rank + 1 (0:
/// none), a separator as its byte + 1 (0: the name's end; below `0` + 1, so 6 bits). They
/// fill the key below its top bit, which only the compared contacts' key has; those that do
/// not fit are left to comparing. With every field in the key and two bits to spare, the
/// key ends in a tail that tells contacts with the same start apart as far as their text
/// need not be read: a whole name (`NameStart::whole`) sorts before the names it starts,
/// and without a company before itself with one. The tail is not sorted by counting: only
/// contacts of the same start need it, sorted as integers (`Folded::order_alike`).
fn key_fields(contact_bits: u32, words: usize) -> (Vec<KeyField>, u32) {
    let key_bits = u64::BITS - contact_bits;
    let word_bits = u64::BITS - (words as u64).leading_zeros();
    let mut fields: Vec<KeyField> = Vec::with_capacity(5);
    let mut used = 0;
    for (at, bits) in [word_bits, 6, word_bits, 6, word_bits]
        .into_iter()
        .enumerate()
    {
        if used + bits >= key_bits {
            break;
        }
        used += bits;
        let values = if at % 2 == 0 { words + 1 } else { 1 << 6 };
        fields.push(KeyField {
            shift: u64::BITS - 1 - used,
            bits,
            is_word: at % 2 == 0,
            counts: vec![0; values + 1],
        });
    }
    let tail_bits = if fields.len() == 5 && used + 2 < key_bits {
        2
    } else {
        0
    };
    (fields, tail_bits)
}

/// `order` (packed contacts) sorted by its key's `fields`, most significant first, by one
/// stable counting pass a field, the last field first; each pass carries the packed
/// integer, so that it reads front to back and moves 8 bytes a contact. A field every
/// contact has the same is no pass.
fn sort_by_fields(mut order: Vec<u64>, fields: Vec<KeyField>) -> Vec<u64> {
    let mut sorted = vec![0u64; order.len()];
    for KeyField {
        shift,
        bits,
        mut counts,
        ..
    } in fields.into_iter().rev()
    {
        if counts.iter().any(|&n| n as usize == order.len()) {
            continue;
        }
        for b in 1..counts.len() {
            counts[b] += counts[b - 1];
        }
        let mask = (1u64 << bits) - 1;
        for &packed in &order {
            let at = &mut counts[((packed >> shift) & mask) as usize];
            sorted[*at as usize] = packed;
            *at += 1;
        }
        std::mem::swap(&mut order, &mut sorted);
    }
    order
}

/// How many entries `Folded::new` reads ahead.
const READ_AHEAD: usize = 16;

impl Folded {
    /// Folds every entry and numbers its words, in the entries' order, so that the pass
    /// reads its memory front to back. `count` is how many there are at most.
    fn new<'e>(entries: impl Iterator<Item = Entry<'e>>, count: usize) -> Folded {
        let mut folded = Folded {
            // Room for names longer than most: pages never written are never touched.
            text: Vec::with_capacity(count * 48 + WORD_KEY_BYTES),
            at: Vec::with_capacity(count),
            rows: Vec::with_capacity(count),
            numbering: WordNumbering::with_capacity(count),
        };
        // A batch at a time, the first byte of every name and company in it read before any
        // is folded: each is an allocation of its own somewhere in the heap, a cache miss,
        // and read together their misses overlap instead of stalling the fold one after
        // another (25,000 contacts, interleaved in one process on a loaded machine: 1.1 ms
        // less of ~5.5; in quiet moments no difference was measured either way).
        let mut batch: Vec<Entry<'e>> = Vec::with_capacity(READ_AHEAD);
        // Fused: the last batch asks once more after the end.
        let mut entries = entries.fuse();
        loop {
            batch.extend(entries.by_ref().take(READ_AHEAD));
            if batch.is_empty() {
                break;
            }
            for e in &batch {
                std::hint::black_box((
                    e.name.as_bytes().first().copied(),
                    e.company.as_bytes().first().copied(),
                ));
            }
            for e in batch.drain(..) {
                folded.push(e);
            }
        }
        folded.text.extend_from_slice(&[0; WORD_KEY_BYTES]);
        folded.numbering.finish();
        folded
    }

    /// Folds one entry and numbers its words.
    fn push(&mut self, e: Entry<'_>) {
        let text = &mut self.text;
        let start = text.len() as u32;
        fold::fold_into(e.name, text);
        let name_end = text.len() as u32;
        fold::fold_into(e.company, text);
        let company_end = text.len() as u32;
        for group in e.groups {
            text.push(b' ');
            fold::fold_into(group, text);
        }
        let end = text.len();
        let parts = [start, name_end, company_end, end as u32];
        // So that every word has a whole key's bytes after its start; the next contact's
        // text overwrites them.
        text.extend_from_slice(&[0; WORD_KEY_BYTES]);
        self.numbering
            .add_contact(text, parts, self.at.len() as u32);
        text.truncate(end);
        self.at.push(parts);
        self.rows.push((e.rows.start, e.rows.end));
    }

    /// Appends `later`, folded from the entries after these; its rows start at `row_base`.
    fn append(&mut self, later: Folded, row_base: u32) {
        let text_base = self.text.len() - WORD_KEY_BYTES;
        self.text.truncate(text_base);
        self.text.extend_from_slice(&later.text);
        let shift = text_base as u32;
        self.at
            .extend(later.at.iter().map(|at| at.map(|offset| offset + shift)));
        self.rows.extend(
            later
                .rows
                .iter()
                .map(|&(from, to)| (from + row_base, to + row_base)),
        );
        self.numbering
            .absorb(later.numbering, &self.text, text_base);
    }

    /// Where contact `c`'s rows are among all rows: kept beside the rest, so that
    /// visiting contacts in the book's order does not touch the entries again.
    fn rows(&self, contact: usize) -> Range<usize> {
        let (from, to) = self.rows[contact];
        from as usize..to as usize
    }

    fn part(&self, contact: usize, from: usize) -> &[u8] {
        let at = &self.at[contact];
        &self.text[at[from] as usize..at[from + 1] as usize]
    }

    fn name_and_company(&self, contact: usize) -> (&[u8], &[u8]) {
        (self.part(contact, 0), self.part(contact, 1))
    }

    fn word(&self, id: u32) -> &[u8] {
        let (from, to) = self.numbering.words.distinct[id as usize];
        &self.text[from as usize..to as usize]
    }

    /// The ids of the distinct words, in the words' order: sorted as integers, each word's
    /// first 16 bytes (big-endian, zeros past its end, which sort before any of a word's
    /// bytes), and by their text only where long words share those. Comparing the words' text
    /// took 46 µs of a 0.77 ms layout for the benchmark's 1,100 distinct words (the layout
    /// 3% faster this way, alternating in one process); a real book has ten times as many.
    fn sorted_ids(&self) -> Vec<u32> {
        let mut keyed: Vec<(u128, u32)> = self
            .numbering
            .words
            .distinct
            .iter()
            .enumerate()
            .map(|(id, &(from, to))| {
                let key = head_key(
                    &self.text,
                    from as usize,
                    (to - from) as usize,
                    WORD_KEY_BYTES,
                );
                (key, id as u32)
            })
            .collect();
        keyed.sort_unstable();
        for run in keyed.chunk_by_mut(|a, b| a.0 == b.0) {
            if run.len() > 1 {
                run.sort_unstable_by(|a, b| self.word(a.1).cmp(self.word(b.1)));
            }
        }
        keyed.into_iter().map(|(_, id)| id).collect()
    }

    /// Whether two contacts' names and companies compare as the address book orders them.
    fn compare(&self, a: u32, b: u32) -> Ordering {
        self.name_and_company(a as usize)
            .cmp(&self.name_and_company(b as usize))
    }

    /// `compare` for two contacts packed with their keys.
    fn compare_packed(&self, packing: Packing, a: u64, b: u64) -> Ordering {
        self.compare(packing.contact(a), packing.contact(b))
    }

    /// The contacts in the address book's order (name, then company), each with its order
    /// key, packed as the `Packing` returned says. A contact whose name is orderable by its
    /// start (see `NameStart`) is placed by stable counting sorts of its key's fields (see
    /// `sort_by_fields`): its words' places among the book's words (`sorted_ids`) and its
    /// separators (25,000 contacts: a pass or two over small integers, where comparing
    /// their names took 0.54 ms). Contacts with the same start (the same name, or the same
    /// first words) are then told apart by the key's tail where it can (see
    /// `Packing::tail_bits`) and compared where it cannot, and so are the others, which go
    /// in where comparing puts them, with a key no orderable name has.
    fn by_name(&self, sorted_ids: &[u32]) -> (Vec<u64>, Packing) {
        let mut rank_of = vec![0u32; sorted_ids.len()];
        for (rank, &id) in sorted_ids.iter().enumerate() {
            rank_of[id as usize] = rank as u32;
        }
        let contacts = self.numbering.name_starts.len();
        let contact_bits = u64::BITS - (contacts as u64).leading_zeros();
        let (mut fields, tail_bits) = key_fields(contact_bits, sorted_ids.len());
        let packing = Packing {
            contact_bits,
            tail_bits,
        };
        let mut order: Vec<u64> = Vec::with_capacity(contacts);
        let mut compared: Vec<u64> = Vec::new();
        let compared_key = u64::MAX << contact_bits;
        for (contact, start) in self.numbering.name_starts.iter().enumerate() {
            if !start.orderable {
                compared.push(compared_key | contact as u64);
                continue;
            }
            let values = [
                start.words[0],
                start.separators[0].into(),
                start.words[1],
                start.separators[1].into(),
                start.words[2],
            ];
            let tail = if !start.whole {
                TAIL_NAME_GOES_ON
            } else if self.at[contact][1] != self.at[contact][2] {
                TAIL_COMPANY
            } else {
                TAIL_NOTHING_MORE
            };
            let mut packed = contact as u64;
            if tail_bits > 0 {
                packed |= tail << contact_bits;
            }
            for (field, value) in fields.iter_mut().zip(values) {
                let value = if field.is_word && value != 0 {
                    rank_of[value as usize - 1] + 1
                } else {
                    value
                };
                field.counts[value as usize + 1] += 1;
                packed |= u64::from(value) << field.shift;
            }
            order.push(packed);
        }
        let mut order = sort_by_fields(order, fields);
        self.order_alike(&mut order, packing);
        if compared.is_empty() {
            return (order, packing);
        }
        self.sort_by_head(&mut compared, packing);
        (self.merge(order, compared, packing), packing)
    }

    /// Orders the contacts of `order` (sorted by their keys' fields) whose names start
    /// alike: by their keys' tails, then by comparing them where the tail cannot tell.
    fn order_alike(&self, order: &mut [u64], packing: Packing) {
        for run in order.chunk_by_mut(|a, b| packing.start_key(*a) == packing.start_key(*b)) {
            if run.len() < 2 {
                continue;
            }
            run.sort_unstable();
            for same in run.chunk_by_mut(|a, b| packing.key(*a) == packing.key(*b)) {
                if same.len() > 1 && !packing.same_unread(same[0]) {
                    same.sort_unstable_by(|&a, &b| self.compare_packed(packing, a, b));
                }
            }
        }
    }

    /// Contacts whose names are ordered by their words (`order`) and those whose names are
    /// compared (`compared`), each sorted, in one order. No orderable name equals one that
    /// is not. A few go in by binary search (a book of Western names with a `Dr. ` here and
    /// there); many by merging, each contact compared once (a book of `Family, Given` names
    /// is all compared).
    fn merge(&self, order: Vec<u64>, compared: Vec<u64>, packing: Packing) -> Vec<u64> {
        let compare = |a: &u64, b: &u64| self.compare_packed(packing, *a, *b);
        let mut merged = Vec::with_capacity(order.len() + compared.len());
        let searches = compared.len() * (usize::BITS - order.len().leading_zeros()) as usize;
        if searches < order.len() {
            let mut rest = &order[..];
            for contact in compared {
                let at = rest.partition_point(|c| compare(c, &contact) == Ordering::Less);
                merged.extend_from_slice(&rest[..at]);
                merged.push(contact);
                rest = &rest[at..];
            }
            merged.extend_from_slice(rest);
        } else {
            let (mut a, mut b) = (order.iter().peekable(), compared.iter().peekable());
            while let (Some(&&x), Some(&&y)) = (a.peek(), b.peek()) {
                if compare(&x, &y) == Ordering::Less {
                    merged.push(x);
                    a.next();
                } else {
                    merged.push(y);
                    b.next();
                }
            }
            merged.extend(a);
            merged.extend(b);
        }
        merged
    }

    /// Sorts contacts whose names are compared (packed as `packing` packs them): first as
    /// one integer each, the first 12 bytes of the name above the contact, so that the sort
    /// compares integers in place; only runs with the same 12 bytes are then compared in
    /// full. How every contact was ordered before names were ordered by their words.
    fn sort_by_head(&self, contacts: &mut [u64], packing: Packing) {
        let mut by_head: Vec<u128> = contacts
            .iter()
            .map(|&packed| {
                let contact = packing.contact(packed);
                let at = &self.at[contact as usize];
                let (start, len) = (at[0] as usize, (at[1] - at[0]) as usize);
                // The name's first 12 bytes, above the contact's 4.
                head_key(&self.text, start, len, 12) | u128::from(contact)
            })
            .collect();
        by_head.sort_unstable();
        let full = |a: &u128, b: &u128| self.compare(*a as u32, *b as u32);
        for run in by_head.chunk_by_mut(|a, b| a >> 32 == b >> 32) {
            if run.len() > 1 {
                run.sort_unstable_by(full);
            }
        }
        for (slot, head) in contacts.iter_mut().zip(by_head) {
            *slot = packing.with_contact(*slot, head as u32);
        }
    }

    /// The distinct words in order with their contacts, given `by_rank[r]`, the contact
    /// ranked `r`. Each word's contacts go after those of the words before it (its place is
    /// counted), and contacts are visited in rank order, so each word's contacts come out
    /// ascending with no sort. A word's place is written once, not with each of its
    /// contacts: half the bytes scattered (four a pair, not eight).
    fn sorted_words(&self, sorted_ids: &[u32], by_rank: &[u32]) -> SortedWords {
        let words = &self.numbering.words;
        let mut text: Vec<u8> = Vec::with_capacity(
            words
                .distinct
                .iter()
                .map(|(from, to)| (to - from) as usize + 1)
                .sum(),
        );
        let mut at = Vec::with_capacity(sorted_ids.len());
        let mut contacts_from = Vec::with_capacity(sorted_ids.len() + 1);
        let mut next = vec![0u32; words.distinct.len()];
        let mut placed = 0u32;
        for &id in sorted_ids {
            at.push(text.len() as u32);
            text.extend_from_slice(self.word(id));
            text.push(0);
            contacts_from.push(placed);
            next[id as usize] = placed;
            placed += words.count[id as usize];
        }
        contacts_from.push(placed);
        let mut contacts = vec![0u32; words.words.len()];
        for (rank, &contact) in by_rank.iter().enumerate() {
            let contact = contact as usize;
            let from = words.word_start[contact] as usize;
            let to = words.word_start[contact + 1] as usize;
            for &word in &words.words[from..to] {
                let id = (word & !GROUP_WORD) as usize;
                contacts[next[id] as usize] = rank as u32 | (word & GROUP_WORD);
                next[id] += 1;
            }
        }
        SortedWords {
            text: text.into_boxed_slice(),
            at: at.into_boxed_slice(),
            contacts_from: contacts_from.into_boxed_slice(),
            contacts: contacts.into_boxed_slice(),
        }
    }
}

/// The address book laid out, before it is given its rows (see `FoldedBook::lay_out`).
pub struct Layout {
    /// The row at each place in the book: its index in the rows `index` takes.
    order: Vec<u32>,
    contact_start: Box<[u32]>,
    contact_rows: Box<[u32]>,
    words: SortedWords,
    rank_of_entry: Vec<u32>,
}

impl Layout {
    /// The index of `rows` (row `i` where the layout placed it), and each entry's rank.
    pub fn index(self, rows: Vec<Row>) -> (NameIndex, Vec<u32>) {
        assert_eq!(rows.len(), self.order.len(), "the rows the layout placed");
        let index = NameIndex {
            rows: rows.into_boxed_slice(),
            order: self.order.into_boxed_slice(),
            contact_start: self.contact_start,
            contact_rows: self.contact_rows,
            words: self.words,
        };
        (index, self.rank_of_entry)
    }
}

/// The address book on its way to a `Layout`, in two steps: `new` folds the contacts' text
/// and numbers their words; `lay_out` orders the contacts and their rows, and places each
/// word's contacts. Every step is a pass over the contacts, counting sorts, or sorts of
/// fixed-size keys (the text is compared only where names start alike or cannot be ordered
/// by their words), and none needs the rows' text or labels: a build with a second thread
/// makes those (the caller-ID part) there, meanwhile (see `beside`).
pub struct FoldedBook {
    folded: Folded,
    /// Whether each entry is in the address book (has a number).
    in_book: Vec<bool>,
}

impl FoldedBook {
    /// Folds the entries, made a few at a time (25,000 of them at once would be a megabyte
    /// written and read again), with room for `room` entries in all (these and any appended,
    /// see `append`).
    pub fn new<'e>(entries: impl Iterator<Item = Entry<'e>>, room: usize) -> FoldedBook {
        let mut in_book = Vec::with_capacity(room);
        // Only contacts with a number are in the address book.
        let with_numbers = entries
            .inspect(|e| in_book.push(!e.rows.is_empty()))
            .filter(|e| !e.rows.is_empty());
        let folded = Folded::new(with_numbers, room);
        FoldedBook { folded, in_book }
    }

    /// Appends `later`, folded from the entries after these (by another thread); its rows
    /// start at `row_base`. The book is then the one `new` makes of all the entries.
    pub fn append(&mut self, later: FoldedBook, row_base: u32) {
        self.folded.append(later.folded, row_base);
        self.in_book.extend(later.in_book);
    }

    /// The layout, given the rows' numbers (`e164s[i]` is row `i`'s).
    pub fn lay_out(&self, e164s: &[u64]) -> Layout {
        let folded = &self.folded;

        // The contacts in the address book's order (name, then company, folded).
        let contacts = folded.at.len();
        let sorted_ids = folded.sorted_ids();
        let (by_name, packing) = folded.by_name(&sorted_ids);
        let same_name = |&a: &u64, &b: &u64| {
            packing.key(a) == packing.key(b)
                && (packing.same_unread(a)
                    || folded.compare_packed(packing, a, b) == Ordering::Equal)
        };

        // Every row, contact by contact in that order. Contacts with the same name and company
        // mix their rows by number (as text); each contact is ranked by its first row, so that
        // a set of contacts walked in ascending order is walked in the address book's order.
        let mut order: Vec<u32> = Vec::with_capacity(e164s.len());
        let mut contact_start: Vec<u32> = Vec::with_capacity(contacts + 1);
        let mut contact_rows: Vec<u32> = Vec::with_capacity(e164s.len());
        let mut placed: Vec<(u32, u32)> = Vec::new();
        let mut rank = vec![u32::MAX; contacts];
        let mut by_rank: Vec<u32> = Vec::with_capacity(contacts);
        let mut same: Vec<(u64, u32, u32)> = Vec::new();
        let order_key = |row: u32| text_order_key(e164s[row as usize]);
        // Which contacts of two numbers show the second first, found in the contacts' order
        // (reading the numbers front to back), so that the loop below, which visits the
        // contacts in the book's order, reads one bit of a small set instead of two numbers
        // at random.
        let mut second_first = ContactSet::new(contacts);
        for (contact, &(from, to)) in folded.rows.iter().enumerate() {
            if to - from == 2 && order_key(from + 1) < order_key(from) {
                second_first.insert(contact as u32);
            }
        }
        for run in by_name.chunk_by(same_name) {
            if let [only] = run {
                // The only contact of its name and company, as most are: its rows by number.
                let contact = packing.contact(*only) as usize;
                let r = by_rank.len() as u32;
                rank[contact] = r;
                by_rank.push(contact as u32);
                let first = order.len();
                order.extend(folded.rows(contact).map(|row| row as u32));
                match order.len() - first {
                    0 | 1 => {}
                    2 => {
                        if second_first.contains(contact as u32) {
                            order.swap(first, first + 1);
                        }
                    }
                    _ => order[first..].sort_unstable_by_key(|&row| order_key(row)),
                }
                // Its rows are the ones just placed, in order.
                contact_start.push(contact_rows.len() as u32);
                contact_rows.extend(first as u32..order.len() as u32);
                continue;
            }
            same.clear();
            for &packed in run {
                let contact = packing.contact(packed);
                for row in folded.rows(contact as usize) {
                    same.push((order_key(row as u32), contact, row as u32));
                }
            }
            same.sort_unstable_by_key(|&(number, contact, _)| (number, contact));
            // Their rows interleave: each contact's places, by its rank (given in the order
            // the contacts first appear, so the run's ranks follow one another).
            placed.clear();
            for &(_, contact, row) in &same {
                let r = &mut rank[contact as usize];
                if *r == u32::MAX {
                    *r = by_rank.len() as u32;
                    by_rank.push(contact);
                }
                placed.push((*r, order.len() as u32));
                order.push(row);
            }
            placed.sort_unstable();
            for of_contact in placed.chunk_by(|a, b| a.0 == b.0) {
                contact_start.push(contact_rows.len() as u32);
                contact_rows.extend(of_contact.iter().map(|&(_, position)| position));
            }
        }
        contact_start.push(contact_rows.len() as u32);

        let words = folded.sorted_words(&sorted_ids, &by_rank);

        let mut ranks = rank.into_iter();
        let rank_of_entry: Vec<u32> = self
            .in_book
            .iter()
            .map(|&in_book| {
                if in_book {
                    ranks.next().expect("one rank per entry with rows")
                } else {
                    u32::MAX
                }
            })
            .collect();
        Layout {
            order,
            contact_start: contact_start.into_boxed_slice(),
            contact_rows: contact_rows.into_boxed_slice(),
            words,
            rank_of_entry,
        }
    }
}

impl NameIndex {
    /// Builds the index, and says each entry's place in the address book (its rank, by its
    /// first row; `u32::MAX` for an entry without a number, which is not in the book).
    /// All on this thread: a large account's build lays the book out beside the caller-ID
    /// part instead, which makes the rows (see `FoldedBook` and `beside`).
    pub fn build(entries: &[Entry<'_>], rows: &[Row]) -> (NameIndex, Vec<u32>) {
        let e164s: Vec<u64> = rows.iter().map(|r| r.e164).collect();
        FoldedBook::new(entries.iter().cloned(), entries.len())
            .lay_out(&e164s)
            .index(rows.to_vec())
    }

    /// The row at `position` in the address book's order.
    pub fn row(&self, position: u32) -> &Row {
        &self.rows[self.order[position as usize] as usize]
    }

    /// What `query` matches, leaving out the `hidden` contacts: the total, and the first
    /// `need` rows in order.
    pub fn matching(&self, query: &Query, need: usize, hidden: &Hidden) -> Matches {
        match query {
            Query::All => {
                let first = (0..self.rows.len() as u32)
                    .filter(|&r| !hidden.hides_row(r))
                    .take(need)
                    .collect();
                Matches {
                    total: self.rows.len() - hidden.rows.len(),
                    first,
                }
            }
            Query::Keypad(digits) => {
                let mut set = self.keypad_contacts(digits.as_bytes());
                set.remove_all(hidden);
                self.rows_of(&set, &[], need)
            }
            Query::Text { words, digits } if words.is_empty() => {
                let mut total = 0;
                let mut first = Vec::new();
                for position in 0..self.order.len() as u32 {
                    if row_has_digits(self.row(position), digits) && !hidden.hides_row(position) {
                        total += 1;
                        if first.len() < need {
                            first.push(position);
                        }
                    }
                }
                Matches { total, first }
            }
            Query::Text { words, digits } => {
                let mut set = self.letter_contacts(words[0].as_bytes());
                for word in &words[1..] {
                    set.intersect(&self.letter_contacts(word.as_bytes()));
                }
                set.remove_all(hidden);
                self.rows_of(&set, digits, need)
            }
        }
    }

    /// Contacts with a word that starts with `prefix`.
    fn letter_contacts(&self, prefix: &[u8]) -> ContactSet {
        let mut set = ContactSet::new(self.contact_count());
        let words = self.words.narrow(0..self.words.count(), prefix);
        for &contact in self.words.contacts_of(words) {
            set.insert(contact & !GROUP_WORD);
        }
        set
    }

    /// Contacts with a name or company word whose keypad spelling starts with `digits`: the
    /// letters each digit stands for narrow the sorted words one digit at a time, so only
    /// prefixes some word has are ever followed.
    fn keypad_contacts(&self, digits: &[u8]) -> ContactSet {
        let mut set = ContactSet::new(self.contact_count());
        let mut prefix = Vec::with_capacity(digits.len());
        self.spell(digits, &mut prefix, 0..self.words.count(), &mut set);
        set
    }

    fn spell(
        &self,
        digits: &[u8],
        prefix: &mut Vec<u8>,
        words: Range<usize>,
        set: &mut ContactSet,
    ) {
        let Some(&digit) = digits.get(prefix.len()) else {
            for &contact in self.words.contacts_of(words) {
                if contact & GROUP_WORD == 0 {
                    set.insert(contact);
                }
            }
            return;
        };
        for &key in fold::keypad_keys(digit) {
            prefix.push(key);
            let narrowed = self.words.narrow(words.clone(), prefix);
            if !narrowed.is_empty() {
                self.spell(digits, prefix, narrowed, set);
            }
            prefix.pop();
        }
    }

    fn contact_count(&self) -> usize {
        self.contact_start.len() - 1
    }

    /// The rows of a contact, ascending.
    pub fn rows_of_contact(&self, contact: u32) -> &[u32] {
        let from = self.contact_start[contact as usize] as usize;
        let to = self.contact_start[contact as usize + 1] as usize;
        &self.contact_rows[from..to]
    }

    /// The rows of the contacts in `set` whose numbers contain every run of `digits`: how
    /// many in all, and the first `need` in order. Contacts are numbered by their first row,
    /// so the first rows come from the first contacts of the set; a later contact's row can
    /// only come earlier when it shares its name and company, so the walk goes on while a
    /// contact's first row is before the last row kept.
    fn rows_of(&self, set: &ContactSet, digits: &[String], need: usize) -> Matches {
        let mut total = 0;
        let mut first: Vec<u32> = Vec::new();
        let mut settled = false;
        for contact in set.iter() {
            let rows = self.rows_of_contact(contact);
            if digits.is_empty() {
                total += rows.len();
            } else {
                total += rows
                    .iter()
                    .filter(|&&r| row_has_digits(self.row(r), digits))
                    .count();
            }
            if settled || need == 0 {
                continue;
            }
            if first.len() >= need && rows[0] > first[need - 1] {
                settled = true;
                continue;
            }
            first.extend(
                rows.iter()
                    .filter(|&&r| row_has_digits(self.row(r), digits)),
            );
            if first.len() >= need {
                first.sort_unstable();
                first.truncate(need);
            }
        }
        first.sort_unstable();
        first.truncate(need);
        Matches { total, first }
    }

    /// Heap bytes the index holds, for the memory figures.
    pub fn heap_bytes(&self) -> usize {
        self.rows.len() * std::mem::size_of::<Row>()
            + (self.order.len() + self.contact_start.len() + self.contact_rows.len()) * 4
            + self.words.heap_bytes()
    }
}

fn row_has_digits(row: &Row, digits: &[String]) -> bool {
    if digits.is_empty() {
        return true;
    }
    let mut buf = [0u8; 20];
    let text = super::phone::E164(row.e164).write(&mut buf);
    digits.iter().all(|d| text.contains(d.as_str()))
}

/// A key that orders E.164 numbers as their text does: the digits left-aligned to 16 places
/// (so "+1212…" comes before "+44…"), and the length last (a number before its extensions).
fn text_order_key(e164: u64) -> u64 {
    // Powers of ten from a table: `pow` multiplies in a loop, and the layout orders every
    // contact's two numbers by this (25,000 contacts, a fifth with two: that pass 50 -> 38
    // µs, on the calling thread while the other is often idle).
    const POWERS_OF_TEN: [u64; 17] = {
        let mut powers = [1u64; 17];
        let mut at = 1;
        while at < powers.len() {
            powers[at] = powers[at - 1] * 10;
            at += 1;
        }
        powers
    };
    let digits = if e164 == 0 { 1 } else { e164.ilog10() + 1 };
    (e164 * POWERS_OF_TEN[(16 - digits.min(16)) as usize]) * 16 + u64::from(digits)
}

/// E.164 numbers ordered as their text ("+1212…" before "+44…").
pub fn number_text_order(a: u64, b: u64) -> Ordering {
    text_order_key(a).cmp(&text_order_key(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn row(e164: u64) -> Row {
        Row {
            e164,
            ..Row::default()
        }
    }

    /// Builds from entries that each hold their rows, as the tests write them.
    fn build(entries: Vec<(&str, &str, &[String], Vec<Row>)>) -> (NameIndex, Vec<u32>) {
        let mut rows = Vec::new();
        let entries: Vec<Entry<'_>> = entries
            .into_iter()
            .map(|(name, company, groups, own)| {
                let start = rows.len() as u32;
                rows.extend(own);
                Entry {
                    name,
                    company,
                    groups,
                    rows: start..rows.len() as u32,
                }
            })
            .collect();
        NameIndex::build(&entries, &rows)
    }

    fn index() -> NameIndex {
        let groups = vec!["Customers".to_string()];
        build(vec![
            (
                "Jürgen Müller",
                "Acme GmbH",
                &groups,
                vec![row(4930123456), row(491701234567)],
            ),
            ("Anna Schmidt", "", &[], vec![row(4940123456)]),
            ("No Number", "", &[], vec![]),
            ("anna adams", "Müller & Co", &[], vec![row(12125550100)]),
        ])
        .0
    }

    fn rows(index: &NameIndex, query: &str, keypad: bool) -> Vec<u64> {
        let query = Query::parse(query, keypad).unwrap();
        let matches = index.matching(&query, usize::MAX, &Hidden::default());
        assert_eq!(matches.total, matches.first.len());
        matches.first.iter().map(|&r| index.row(r).e164).collect()
    }

    #[test]
    fn rows_are_ordered_by_folded_name_then_company_then_number_text() {
        let all = rows(&index(), "", false);
        // "+4917…" sorts before "+4930…" as text.
        assert_eq!(all, [12125550100, 4940123456, 491701234567, 4930123456]);
    }

    #[test]
    fn words_match_as_prefixes_in_any_order_without_case_or_accents() {
        let i = index();
        for q in [
            "mül",
            "mul",
            "MUL",
            "jürgen müller",
            "müller jür",
            "acme",
            "cust",
        ] {
            assert!(rows(&i, q, false).contains(&4930123456), "{q}");
        }
        assert_eq!(
            rows(&i, "mul", false).len(),
            3,
            "Müller's two rows and Müller & Co"
        );
        assert_eq!(rows(&i, "anna sch", false), [4940123456]);
        assert!(rows(&i, "number", false).is_empty(), "no number, no row");
        assert!(rows(&i, "zzz", false).is_empty());
    }

    /// Most names are ordered by counting their words' places (see `NameStart`); these are
    /// the names where that could differ from their text's order: a word that starts
    /// another before a separator above `0` (`ab:` after `ab1`), two separators, a trailing
    /// one, more words than a start keeps, names of separators alone, and names with the
    /// same start, mixed with names that are compared.
    #[test]
    fn names_order_as_their_text_whatever_separates_their_words() {
        let names = [
            "",
            "-",
            "--",
            " x",
            "a",
            "a ",
            "a  ",
            "a b",
            "a  b",
            "a-b",
            "a.b",
            "a:b",
            "a_b",
            "a b ",
            "a b c",
            "a b c ",
            "a b c d",
            "a b c:d",
            "a b c1",
            "a b cd",
            "a b c-d",
            "a b c d e",
            "a b c d f",
            "ab",
            "ab:",
            "ab1",
            "ab ",
            "ab.",
            "ab c",
            "Ab C",
            "äb c",
            "a1",
            "a1 b",
            "a 1",
            "1 a",
            "[?] a",
            "a [b]",
            "zz",
            "z z",
            "z:z",
            "Dr. No",
            "Dr No",
            "Dr.No",
            "dr no",
            "O'Connor",
            "o connor",
            "oconnor",
        ];
        assert_ordered_as_text(&names, &["", "Beta", "alpha"], "");
    }

    /// Builds a book of every name with every company (in reverse, so that the order is
    /// the build's), and checks its rows come in the order of the folded (name, company).
    fn assert_ordered_as_text(names: &[impl AsRef<str>], companies: &[&str], what: &str) {
        let mut people: Vec<(&str, &str, Vec<Row>)> = Vec::new();
        for (i, name) in names.iter().enumerate() {
            for (j, company) in companies.iter().enumerate() {
                let number = 12125550000 + (i * companies.len() + j) as u64;
                people.push((name.as_ref(), company, vec![row(number)]));
            }
        }
        people.reverse();
        let mut expected: Vec<(String, String, u64)> = people
            .iter()
            .map(|(n, c, r)| (fold::fold(n), fold::fold(c), r[0].e164))
            .collect();
        expected.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)).then(a.2.cmp(&b.2)));
        let entries = people
            .into_iter()
            .map(|(n, c, r)| (n, c, &[] as &[String], r))
            .collect();
        let (index, _) = build(entries);
        let got = rows(&index, "", false);
        let want: Vec<u64> = expected.iter().map(|e| e.2).collect();
        assert_eq!(got, want, "{what}");
    }

    /// Words are sorted by their first 16 bytes as integers, and by their text where long
    /// ones share those: each order holds, the words' own and the book's, and prefixes
    /// longer than 16 bytes find the right words.
    #[test]
    fn long_words_that_share_their_first_16_bytes_order_as_their_text() {
        let names = [
            "abcdefghijklmnopq",
            "abcdefghijklmnop",
            "abcdefghijklmnopa x",
            "abcdefghijklmno",
            "abcdefghijklmnopqrstuvwxyz",
            "abcdefghijklmnopb",
            "abcdefghijklmnoz",
            "abcdefghijklmnopa",
            "b",
        ];
        assert_ordered_as_text(&names, &[""], "long words");
        let people = names
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, "", &[] as &[String], vec![row(12125550000 + i as u64)]))
            .collect();
        let (index, _) = build(people);
        let words: Vec<&[u8]> = index.words.text.split(|&b| b == 0).collect();
        let words = &words[..words.len() - 1];
        let mut sorted = words.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(words, sorted, "the distinct words, in their text's order");
        assert_eq!(
            rows(&index, "abcdefghijklmnopa", false),
            [12125550007, 12125550002],
            "17 bytes: the two names with that word, the shorter first"
        );
        assert_eq!(rows(&index, "abcdefghijklmnopq", false).len(), 2);
        assert_eq!(rows(&index, "abcdefghijklmnop", false).len(), 6);
    }

    /// A book with more distinct words than its order keys have room for all three of a
    /// name's words: the third is left to comparing, which must still order the names that
    /// differ only there (and after it); and a few names compared, each searched into the
    /// rest (the other test merges them).
    #[test]
    fn names_order_as_their_text_when_the_keys_cannot_hold_every_word() {
        let count = 33_000;
        let spell = |mut i: usize| {
            let mut word = String::new();
            loop {
                word.push(char::from(b'a' + (i % 26) as u8));
                i /= 26;
                if i == 0 {
                    return word;
                }
            }
        };
        let names: Vec<String> = (0..count)
            .map(|i| {
                let (first, second) = (["ann", "anna", "bo"][i % 3], ["li", "lin"][i / 3 % 2]);
                match i % 5 {
                    // A few compared names (two separator bytes), searched into the rest.
                    _ if i % 97 == 0 => format!("{first}, {second} {}", spell(i * 7919 % count)),
                    0 => format!("{first} {second} {} x", spell(i * 7919 % count)),
                    1 => format!("{first} {second}-{}", spell(i * 7919 % count)),
                    _ => format!("{first} {second} {}", spell(i * 7919 % count)),
                }
            })
            .collect();
        let people: Vec<(&str, &str, &[String], Vec<Row>)> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                (
                    name.as_str(),
                    "",
                    &[] as &[String],
                    vec![row(12_000_000_000 + i as u64)],
                )
            })
            .collect();
        let mut expected: Vec<(&str, u64)> = names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.as_str(), 12_000_000_000 + i as u64))
            .collect();
        expected.sort();
        let (index, _) = build(people);
        let got = rows(&index, "", false);
        let want: Vec<u64> = expected.iter().map(|e| e.1).collect();
        assert_eq!(got.len(), want.len());
        assert!(
            got == want,
            "the book's order differs from the names' order"
        );
    }

    /// Names alike in their first 12 bytes (one integer each in the sort of the names that
    /// are compared) are ordered by the rest of their text: around that boundary, prefixes,
    /// case and accents, and ties decided by the company, in the order the contract's
    /// reference gives.
    #[test]
    fn names_alike_at_their_start_sort_as_their_whole_text_does() {
        // Ordered by their words, and (two separator bytes) compared.
        for head in ["Christopher ", "Christopher, "] {
            names_alike_at_their_start_sort_as_their_whole_text(head);
        }
    }

    fn names_alike_at_their_start_sort_as_their_whole_text(head: &str) {
        let names: Vec<String> = [
            "",
            "a",
            "A",
            "ab",
            "abcdefghijklmno",
            "abcdefghijklmnop",
            "abcdefghijklmnopq",
            "abcdefghijklmnopa",
            "abcdefghijklmnop zed",
            "abcdefghijklmnop alpha",
            "Ábcdefghijklmnop",
            "abcdefghijklmnp",
        ]
        .iter()
        .map(|tail| format!("{head}{tail}"))
        .collect();
        assert_ordered_as_text(&names[..], &["", "Zeta", "Alpha"], head);
    }

    #[test]
    fn numbers_order_as_their_text_does() {
        let mut numbers = [
            4930123456u64,
            12125550100,
            491701234567,
            1,
            10,
            44207946095,
            4420794609,
        ];
        numbers.sort_by(|&a, &b| number_text_order(a, b));
        let mut as_text = numbers.map(|n| format!("+{n}"));
        as_text.sort();
        assert_eq!(numbers.map(|n| format!("+{n}")), as_text);
    }

    #[test]
    fn the_first_rows_are_right_when_contacts_of_the_same_name_interleave() {
        let index = build(vec![
            (
                "Same Name",
                "",
                &[],
                vec![row(12015550100), row(12035550100)],
            ),
            ("same name", "", &[], vec![row(12025550100)]),
            ("Other", "", &[], vec![row(12045550100)]),
        ])
        .0;
        let query = Query::parse("same", false).unwrap();
        for need in 0..4 {
            let matches = index.matching(&query, need, &Hidden::default());
            let first: Vec<u64> = matches.first.iter().map(|&r| index.row(r).e164).collect();
            let all = [12015550100, 12025550100, 12035550100];
            assert_eq!(
                (matches.total, first.as_slice()),
                (3, &all[..need.min(3)]),
                "{need}"
            );
        }
    }

    #[test]
    fn hidden_contacts_are_left_out_of_every_kind_of_search_and_of_the_totals() {
        let i = index();
        let (_, ranks) = build(vec![]);
        assert!(ranks.is_empty());
        // Jürgen Müller is the third contact in the book's order (anna adams, Anna Schmidt,
        // Jürgen Müller): hide him and his two rows.
        let rank = 2;
        let hidden = Hidden {
            ranks: vec![rank],
            rows: i.rows_of_contact(rank).to_vec(),
        };
        assert_eq!(hidden.rows, [2, 3]);
        for (query, keypad, left) in [
            ("", false, vec![12125550100, 4940123456]),
            ("mul", false, vec![12125550100]),
            ("4930", false, vec![]),
            ("494", false, vec![4940123456]),
            ("685", true, vec![12125550100]),
        ] {
            let parsed = Query::parse(query, keypad).unwrap();
            let matches = i.matching(&parsed, usize::MAX, &hidden);
            let found: Vec<u64> = matches.first.iter().map(|&r| i.row(r).e164).collect();
            assert_eq!(found, left, "{query:?}");
            assert_eq!(matches.total, left.len(), "{query:?}");
        }
    }

    #[test]
    fn digit_words_match_part_of_the_number() {
        let i = index();
        assert_eq!(rows(&i, "555-01", false), [12125550100]);
        assert_eq!(rows(&i, "mül 170", false), [491701234567]);
        assert_eq!(rows(&i, "4930 123", false), [4930123456]);
        assert!(
            rows(&i, "(49) 301", false).is_empty(),
            "(49) has two digits: a word"
        );
        assert!(
            rows(&i, "12", false).is_empty(),
            "two digits are a word, not a number"
        );
    }

    #[test]
    fn the_keypad_spells_the_start_of_a_name_or_company_word() {
        let i = index();
        assert_eq!(
            rows(&i, "6855", true).len(),
            3,
            "mull: Müller twice, Müller & Co"
        );
        assert_eq!(rows(&i, "587", true), [491701234567, 4930123456]);
        assert_eq!(rows(&i, "2662", true), [12125550100, 4940123456], "anna");
        assert!(rows(&i, "2878", true).is_empty(), "groups are not dialled");
        // Letters only: a digit of a name is not spelled by its own key.
        let digits = build(vec![
            ("24/7 Support", "", &[], vec![row(12125550124)]),
            ("R2D2", "", &[], vec![row(12125550122)]),
        ])
        .0;
        for (typed, found) in [
            ("2", vec![]),
            ("247", vec![]),
            ("7", vec![12125550124, 12125550122]),
            ("72", vec![]),
            ("7232", vec![]),
            ("787", vec![12125550124]),
        ] {
            assert_eq!(rows(&digits, typed, true), found, "{typed}");
        }
        assert!(Query::parse("68a", true).is_err());
        assert!(Query::parse("0", true).is_err());
    }

    /// The book as the contract words it, the slow way: every row of every contact with a
    /// number whose words match, in (name, company, number as text) order, folded.
    fn reference(
        entries: &[(String, String, Vec<String>, Vec<u64>)],
        query: &Query,
    ) -> Vec<(String, String, u64)> {
        let words_of = |texts: &[&str]| -> Vec<String> {
            let mut out = Vec::new();
            for text in texts {
                fold::words(text, |w| out.push(w.to_owned()));
            }
            out
        };
        let mut rows = Vec::new();
        for (name, company, groups, numbers) in entries {
            let dialled = words_of(&[name, company]);
            let mut all = dialled.clone();
            all.extend(words_of(
                &groups.iter().map(String::as_str).collect::<Vec<_>>(),
            ));
            // The keypad spelling of a word's letters up to its first character that is not
            // one (a digit): "r2d2" spells "7".
            let spelled = |w: &String| -> String {
                w.bytes()
                    .map_while(fold::keypad_digit)
                    .map(char::from)
                    .collect()
            };
            for &e164 in numbers {
                let text = format!("+{e164}");
                let matches = match query {
                    Query::All => true,
                    Query::Keypad(digits) => dialled.iter().any(|w| spelled(w).starts_with(digits)),
                    Query::Text { words, digits } => {
                        words
                            .iter()
                            .all(|q| all.iter().any(|w| w.starts_with(q.as_str())))
                            && digits.iter().all(|d| text.contains(d.as_str()))
                    }
                };
                if matches {
                    rows.push((fold::fold(name), fold::fold(company), e164));
                }
            }
        }
        rows.sort_by(|a, b| {
            (&a.0, &a.1)
                .cmp(&(&b.0, &b.1))
                .then_with(|| number_text_order(a.2, b.2))
        });
        rows
    }

    fn text() -> impl Strategy<Value = String> {
        // Few letters, so that words and prefixes repeat; accents, ß and punctuation, so that
        // folding and splitting are exercised; digits, so that words mix them.
        let piece = prop::sample::select(vec![
            "a", "b", "m", "ü", "Ü", "ß", "é", "n", "nn", " ", " ", "'", "-", "2", "Ö", "北",
            // Separators that sort after digits and letters' first bytes, or before them.
            ":", ".", "_",
        ]);
        prop::collection::vec(piece, 0..8).prop_map(|p| p.concat())
    }

    /// An E.164 number of any length, 1 to 15 digits.
    fn e164_of_any_length() -> impl Strategy<Value = u64> {
        (1u32..=15).prop_flat_map(|digits| 10u64.pow(digits - 1)..10u64.pow(digits))
    }

    proptest::proptest! {
        #[test]
        fn numbers_of_any_length_order_as_their_text_does(
            a in e164_of_any_length(),
            b in e164_of_any_length(),
        ) {
            prop_assert_eq!(
                number_text_order(a, b),
                format!("+{a}").cmp(&format!("+{b}")),
                "{} against {}", a, b
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        #[test]
        fn searches_find_what_the_contract_says_in_its_order(
            entries in prop::collection::vec(
                (
                    text(),
                    text(),
                    prop::collection::vec(text(), 0..3),
                    prop::collection::vec(
                        prop::sample::select(vec![
                            12125550100u64, 12125550101, 1212555010, 4930123456, 491701234567,
                            12125550100,
                        ]),
                        0..3,
                    ),
                ),
                0..24,
            ),
            queries in prop::collection::vec((text(), any::<bool>()), 1..6),
        ) {
            let owned: Vec<(&str, &str, &[String], Vec<Row>)> = entries
                .iter()
                .map(|(name, company, groups, numbers)| {
                    (
                        name.as_str(),
                        company.as_str(),
                        groups.as_slice(),
                        numbers.iter().map(|&n| row(n)).collect(),
                    )
                })
                .collect();
            let (index, _) = build(owned);
            let mut all_queries: Vec<Query> = queries
                .iter()
                .filter_map(|(text, keypad)| {
                    let typed = if *keypad {
                        text.bytes().filter_map(fold::keypad_digit).filter(|d| *d >= b'2').map(char::from).collect()
                    } else {
                        text.clone()
                    };
                    Query::parse(&typed, *keypad).ok()
                })
                .collect();
            all_queries.push(Query::parse("555", false).unwrap());
            all_queries.push(Query::parse("a 0101", false).unwrap());
            for query in &all_queries {
                let expected = reference(&entries, query);
                let matches = index.matching(query, usize::MAX, &Hidden::default());
                prop_assert_eq!(matches.total, expected.len(), "{:?}", query);
                let found: Vec<u64> = matches.first.iter().map(|&r| index.row(r).e164).collect();
                let wanted: Vec<u64> = expected.iter().map(|r| r.2).collect();
                prop_assert_eq!(found, wanted, "{:?}", query);
            }
        }
    }
}
