//! Text as the address book compares it: words folded to lower-case ASCII without accents
//! (`Müller` and `MULLER` are `muller`, `ß` is `ss`, other scripts transliterated), and the
//! phone keypad's spelling of a word (ITU E.161: abc 2, def 3, ghi 4, jkl 5, mno 6, pqrs 7,
//! tuv 8, wxyz 9). Names and queries go through the same functions, so they always meet.

/// Hands the folded words of `text` to `each`, each as ASCII lower-case letters and digits;
/// anything else separates words ("O'Connor" is "o" and "connor", as a query "o'con" is).
pub fn words(text: &str, mut each: impl FnMut(&str)) {
    let folded = fold(text);
    for word in split(folded.as_bytes()) {
        // Folded text is ASCII, so every word is UTF-8.
        each(std::str::from_utf8(word).expect("folded text is ASCII"));
    }
}

/// The words of text already folded.
pub fn split(folded: &[u8]) -> impl Iterator<Item = &[u8]> {
    folded
        .split(|c: &u8| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// Lower-case ASCII with the accents removed (deunicode's transliteration: `ß` → `ss`,
/// `Ø` → `O`, `Ж` → `Zh`), for sorting and matching.
pub fn fold(text: &str) -> String {
    let mut folded = Vec::with_capacity(text.len());
    fold_into(text, &mut folded);
    String::from_utf8(folded).expect("folded text is ASCII")
}

/// Appends `text` folded to `out`: what `fold` gives, without a string of its own, so that
/// the address book folds 25,000 names into one buffer instead of 50,000 allocations.
pub fn fold_into(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    if bytes.is_ascii() {
        // Copied and lower-cased in one pass (names are short: a call to memcpy would cost
        // more than the copy).
        out.extend(bytes.iter().map(u8::to_ascii_lowercase));
        return;
    }
    // What `deunicode::deunicode` gives, a character at a time: the ASCII before DEL as it
    // is, accented Latin letters (and the rest of the two-byte characters) from a table made
    // of deunicode's own answers, every other character as deunicode transliterates it.
    let table = two_byte_table();
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if byte < 0x7f {
            out.push(byte.to_ascii_lowercase());
            at += 1;
            continue;
        }
        // A lead byte of a two-byte character: valid UTF-8 has its second byte.
        if (0xc2..0xe0).contains(&byte) {
            let code = (usize::from(byte & 0x1f) << 6) | usize::from(bytes[at + 1] & 0x3f);
            let [len, piece @ ..] = table[code - 0x80];
            if len != NOT_IN_TABLE {
                // All three bytes, then the length cut: a copy of a length known when
                // compiling is a move, a slice of one known only now a call to memcpy
                // (25,000 names, 40% with an accent: the fold 1.3% faster, interleaved).
                out.extend_from_slice(&piece);
                out.truncate(out.len() - piece.len() + usize::from(len));
                at += 2;
                continue;
            }
        }
        at = fold_char_into(text, at, out);
    }
}

/// Marks a character of `two_byte_table` whose transliteration depends on what follows it
/// (it ends in a space) or is longer than the table holds.
const NOT_IN_TABLE: u8 = u8::MAX;

/// deunicode's transliteration of U+0080 to U+07FF (every character UTF-8 writes in two
/// bytes: the accents of Latin, Greek, Cyrillic, Hebrew, Arabic), lower-cased, as its
/// length and up to three bytes. Made once, from `deunicode_char` itself, so it cannot
/// differ from it.
fn two_byte_table() -> &'static [[u8; 4]; 0x780] {
    static TABLE: std::sync::OnceLock<Box<[[u8; 4]; 0x780]>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = Box::new([[NOT_IN_TABLE; 4]; 0x780]);
        for (slot, code) in table.iter_mut().zip(0x80u32..0x800) {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            let mut piece = Vec::new();
            fold_char_into(c.encode_utf8(&mut [0; 4]), 0, &mut piece);
            if piece.len() <= 3 && !deunicode::deunicode_char(c).is_some_and(|p| p.ends_with(' ')) {
                slot[0] = piece.len() as u8;
                slot[1..1 + piece.len()].copy_from_slice(&piece);
            }
        }
        table
    })
}

/// Appends the character at `text[at..]` folded, as deunicode transliterates it ("[?]" for
/// one it cannot), lower-cased; returns where the next character starts. A transliteration
/// that ends in a space ("北" is "Bei ") loses it at the end or before another space.
fn fold_char_into(text: &str, at: usize, out: &mut Vec<u8>) -> usize {
    let c = text[at..].chars().next().expect("a character starts here");
    let next = at + c.len_utf8();
    let from = out.len();
    match deunicode::deunicode_char(c) {
        None => out.extend_from_slice(b"[?]"),
        Some(piece) => {
            let piece = piece.as_bytes();
            let trim = piece.len() > 1
                && piece.ends_with(b" ")
                && match text[next..].chars().next() {
                    None => true,
                    Some(after) if after < '\u{7f}' => after == ' ',
                    Some(after) => {
                        deunicode::deunicode_char(after).is_some_and(|p| p.starts_with(' '))
                    }
                };
            out.extend_from_slice(if trim {
                &piece[..piece.len() - 1]
            } else {
                piece
            });
        }
    }
    out[from..].make_ascii_lowercase();
    next
}

/// The keypad digit of a folded letter; None for anything else (a digit too: the keypad
/// spells letters, see `keypad_keys`).
pub fn keypad_digit(c: u8) -> Option<u8> {
    Some(match c {
        b'a'..=b'c' => b'2',
        b'd'..=b'f' => b'3',
        b'g'..=b'i' => b'4',
        b'j'..=b'l' => b'5',
        b'm'..=b'o' => b'6',
        b'p'..=b's' => b'7',
        b't'..=b'v' => b'8',
        b'w'..=b'z' => b'9',
        _ => return None,
    })
}

/// The letters a keypad digit stands for in a folded word, in the order folded words sort.
/// Letters only, as the contract words keypad search ("a word ... starts with letters spelled
/// by those digits"): a digit typed does not stand for itself, so `2` does not find "24/7
/// Support" nor `7232` "R2D2".
pub fn keypad_keys(digit: u8) -> &'static [u8] {
    match digit {
        b'2' => b"abc",
        b'3' => b"def",
        b'4' => b"ghi",
        b'5' => b"jkl",
        b'6' => b"mno",
        b'7' => b"pqrs",
        b'8' => b"tuv",
        b'9' => b"wxyz",
        _ => b"",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_words(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        words(text, |w| out.push(w.to_owned()));
        out
    }

    #[test]
    fn words_fold_case_and_accents_the_same_for_names_and_queries() {
        assert_eq!(all_words("Jürgen Müller"), ["jurgen", "muller"]);
        assert_eq!(all_words("MÜL"), ["mul"]);
        assert_eq!(all_words("Straße"), ["strasse"]);
        assert_eq!(
            all_words("O'Connor & Sons, Ltd."),
            ["o", "connor", "sons", "ltd"]
        );
        assert_eq!(all_words("  "), Vec::<String>::new());
        assert_eq!(fold("Åsa Øberg"), "asa oberg");
    }

    #[test]
    fn folding_into_a_buffer_gives_what_deunicode_gives_lower_cased() {
        let mut out = b"kept ".to_vec();
        for text in [
            "Jürgen Müller",
            "Straße",
            "北京 Office",
            "北 京",
            "x北",
            "北",
            "北😀",
            "Ünïcödé  spaces ",
            "Ж\u{7f}x",
            "😀 Smile",
            "\u{10FFFF}",
            "",
        ] {
            let mut expected = deunicode::deunicode(text);
            expected.make_ascii_lowercase();
            assert_eq!(fold(text), expected, "{text:?}");
            out.truncate(5);
            fold_into(text, &mut out);
            assert_eq!(out, format!("kept {expected}").as_bytes(), "{text:?}");
        }
    }

    /// The table of two-byte characters is deunicode's answer for each, in every context
    /// where deunicode's answer could depend on what is around it.
    #[test]
    fn every_two_byte_character_folds_as_deunicode_folds_it_whatever_surrounds_it() {
        for code in 0x80u32..0x800 {
            let c = char::from_u32(code).expect("no surrogates below U+0800");
            for text in [
                format!("{c}"),
                format!("a{c}b"),
                format!("{c} x"),
                format!("{c}-x"),
                format!("{c}北"),
                format!("北{c}"),
                format!("{c}{c}"),
                format!("{c}\u{7f}"),
            ] {
                let mut expected = deunicode::deunicode(&text);
                expected.make_ascii_lowercase();
                assert_eq!(fold(&text), expected, "{text:?} (U+{code:04X})");
            }
        }
    }

    #[test]
    fn the_keypad_spells_letters_as_e161_does() {
        let spell =
            |w: &str| -> String { w.bytes().filter_map(keypad_digit).map(char::from).collect() };
        assert_eq!(spell("muller"), "685537");
        assert_eq!(spell("jurgen"), "587436");
        assert_eq!(spell("wxyz"), "9999");
        assert_eq!(spell("r2d2"), "73", "digits spell nothing");
        for digit in b'2'..=b'9' {
            for &key in keypad_keys(digit) {
                assert_eq!(keypad_digit(key), Some(digit));
            }
        }
    }
}
