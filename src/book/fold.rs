//! Text as the address book compares it: words folded to lower-case ASCII without accents
//! (`Müller` and `MULLER` are `muller`, `ß` is `ss`, other scripts transliterated), and the
//! phone keypad's spelling of a word (ITU E.161: abc 2, def 3, ghi 4, jkl 5, mno 6, pqrs 7,
//! tuv 8, wxyz 9). Names and queries go through the same functions, so they always meet.

/// Hands the folded words of `text` to `each`, each as ASCII lower-case letters and digits;
/// anything else separates words ("O'Connor" is "o" and "connor", as a query "o'con" is).
pub fn words(text: &str, mut each: impl FnMut(&str)) {
    for word in split(&fold(text)) {
        each(word);
    }
}

/// The words of text already folded.
pub fn split(folded: &str) -> impl Iterator<Item = &str> {
    folded
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// Lower-case ASCII with the accents removed (deunicode's transliteration: `ß` → `ss`,
/// `Ø` → `O`, `Ж` → `Zh`), for sorting and matching.
pub fn fold(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    let mut folded = deunicode::deunicode(text);
    folded.make_ascii_lowercase();
    folded
}

/// The keypad digit of a folded letter or digit; None for anything else.
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
        b'0'..=b'9' => c,
        _ => return None,
    })
}

/// What a keypad digit stands for in a folded word: the digit itself, then its letters, in
/// the order folded words sort.
pub fn keypad_keys(digit: u8) -> &'static [u8] {
    match digit {
        b'2' => b"2abc",
        b'3' => b"3def",
        b'4' => b"4ghi",
        b'5' => b"5jkl",
        b'6' => b"6mno",
        b'7' => b"7pqrs",
        b'8' => b"8tuv",
        b'9' => b"9wxyz",
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
    fn the_keypad_spells_letters_as_e161_does() {
        let spell =
            |w: &str| -> String { w.bytes().filter_map(keypad_digit).map(char::from).collect() };
        assert_eq!(spell("muller"), "685537");
        assert_eq!(spell("jurgen"), "587436");
        assert_eq!(spell("wxyz"), "9999");
        for digit in b'2'..=b'9' {
            for &key in keypad_keys(digit) {
                assert_eq!(keypad_digit(key), Some(digit));
            }
        }
    }
}
