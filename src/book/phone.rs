//! Phone numbers as the host contract reads them (contract: "Words" -> number, and "Lookup").
//!
//! Numbers are compared in E.164. Two readers share one set of rules, [`RegionRules`], built once
//! per region when the plugin opens:
//! - [`RegionRules::normalise_stored`] runs at sync time, once per number stored in Google
//!   Contacts. It may allocate and may call the `phonenumber` parser.
//! - [`RegionRules::read_incoming`] runs on every call. It works over bytes in a stack buffer and
//!   touches neither the heap, nor a regex, nor the parser.
//!
//! Both start with the same byte-level reading (`RegionRules::read`), so a number written the
//! same way on both sides always meets itself. The `phonenumber` parser only gets the stored text
//! that reading declines (extensions, labels, letters, "(0)", Brazilian carrier codes).

use phonenumber::country::{Id, Source};
use phonenumber::metadata::DATABASE;
use phonenumber::{Metadata, Type};

/// Digits the stack buffer holds: an E.164 number (15) behind the longest international prefix
/// the reader knows (four digits: Australia's 0011, Chile's 1100). With 17, room for "00"
/// only, every 15-digit number dialled with 0011, 011, 010 or 810 was refused (Tajikistan's
/// "810 91 1861 123 456 789").
const MAX_DIGITS: usize = E164_MAX_DIGITS + LONGEST_INTERNATIONAL_PREFIX;
/// The shortest E.164 numbers in use have 7 digits (Saint Helena's +290 XXXX, for one).
const E164_MIN_DIGITS: usize = 7;
/// E.164 allows at most 15 digits, country code included.
const E164_MAX_DIGITS: usize = 15;
/// The longest international prefix read: four digits. The metadata's four-digit prefixes
/// (0011, 0014, 0030, 0161, 1001, 1022, 1100, 1401, ...) all start with 0 or 1; longer ones
/// (Australia's 14880011, a carrier's code before 0011) are not read.
const LONGEST_INTERNATIONAL_PREFIX: usize = 4;
// `decimal` of 20 digits could overflow a u64.
const _: () = assert!(MAX_DIGITS <= 19);

/// The contract names 00 as an international prefix everywhere, whatever the region's metadata.
const EVERYWHERE_INTERNATIONAL_PREFIX: &str = "00";
/// The one prefix starting with 00 that is read beside it (see `InternationalPrefixes`), in
/// Australia and its territories, as this reader always did.
const AUSTRALIAN_INTERNATIONAL_PREFIX: &str = "0011";

/// The international prefixes of a region, read off its metadata's pattern once, when the
/// plugin opens: every digit string of up to `LONGEST_INTERNATIONAL_PREFIX` digits the pattern
/// takes whole (011 in NANP, 010 in Japan, 810 in Russia, 1100 in Chile, 012-019 in Israel,
/// 16 in Chad), and 00 everywhere. Each counts only in the regions whose metadata says it is
/// theirs: in Great Britain "0113 496 0000" is Leeds, in Italy "011 ..." is Turin, and in India
/// "011 ..." is Delhi. Kept as one bit per digit string of each length, so that a lookup tests
/// four bits however many prefixes a region has (Uruguay has 70 besides 00).
///
/// Prefixes that start with 00 are left out, but for Australia's 0011: 00 is everyone's (the
/// contract), and after it a country code, so Korea's 008, Thailand's 001-009 or Brazil's
/// 0055 make "00 82 2-212-3456" in Korea, "00 66 2 123 4567" in Thailand and "00 55 11
/// 96123-4567" in Brazil ambiguous: the property tests found each read both ways, and no rule
/// of plausible lengths told them apart. Which should win is the contract's to say (see the
/// note of the session that tried).
#[derive(Clone, Debug)]
struct InternationalPrefixes {
    /// Bit `start(len) + value` for the `len`-digit string of `value`.
    bits: Box<[u64]>,
    /// Bit `d` when a prefix starts with digit `d`, and bit `len` of `lengths` when one has
    /// `len` digits: most numbers (those not starting with 0 or 1) and most lengths are
    /// ruled out at once, so that a lookup costs what comparing two prefixes did.
    first_digits: u16,
    lengths: u8,
}

impl InternationalPrefixes {
    /// Where the bits of `len`-digit strings start: after the 10 + 100 + ... shorter ones.
    const fn start(len: usize) -> usize {
        let mut start = 0;
        let mut shorter = 1;
        while shorter < len {
            start += 10usize.pow(shorter as u32);
            shorter += 1;
        }
        start
    }

    fn of(meta: &Metadata) -> InternationalPrefixes {
        let total = Self::start(LONGEST_INTERNATIONAL_PREFIX + 1);
        let mut prefixes = InternationalPrefixes {
            bits: vec![0; total.div_ceil(64)].into_boxed_slice(),
            first_digits: 0,
            lengths: 0,
        };
        prefixes.insert(EVERYWHERE_INTERNATIONAL_PREFIX.as_bytes());
        let Some(pattern) = meta.international_prefix() else {
            return prefixes;
        };
        for len in 1..=LONGEST_INTERNATIONAL_PREFIX {
            // Four digits only from 0 and 1 (see LONGEST_INTERNATIONAL_PREFIX): a regex run
            // is about a microsecond in a debug build, and every region's rules are made in
            // the tests.
            let count = if len == 4 {
                2000
            } else {
                10usize.pow(len as u32)
            };
            for value in 0..count {
                let candidate = format!("{value:0len$}");
                let whole = pattern
                    .find(&candidate)
                    .is_some_and(|found| found.start() == 0 && found.end() == len);
                let beside_everywhere = !candidate.starts_with(EVERYWHERE_INTERNATIONAL_PREFIX)
                    || candidate == AUSTRALIAN_INTERNATIONAL_PREFIX;
                if whole && beside_everywhere {
                    prefixes.insert(candidate.as_bytes());
                }
            }
        }
        prefixes
    }

    fn bit(digits: &[u8]) -> usize {
        Self::start(digits.len()) + decimal(digits) as usize
    }

    fn insert(&mut self, digits: &[u8]) {
        let bit = Self::bit(digits);
        self.bits[bit / 64] |= 1 << (bit % 64);
        self.first_digits |= 1 << (digits[0] - b'0');
        self.lengths |= 1 << digits.len();
    }

    /// The length of the longest prefix of `digits` that is one of these.
    fn longest_at_head(&self, digits: &[u8]) -> Option<usize> {
        let first = *digits.first()?;
        if self.first_digits & (1 << (first - b'0')) == 0 {
            return None;
        }
        (1..=LONGEST_INTERNATIONAL_PREFIX.min(digits.len()))
            .rev()
            .filter(|&len| self.lengths & (1 << len) != 0)
            .find(|&len| {
                let bit = Self::bit(&digits[..len]);
                self.bits[bit / 64] & (1 << (bit % 64)) != 0
            })
    }

    /// Every prefix, longest first (for tests and messages).
    #[cfg(test)]
    fn listed(&self) -> Vec<String> {
        (1..=LONGEST_INTERNATIONAL_PREFIX)
            .rev()
            .flat_map(|len| {
                (0..10usize.pow(len as u32))
                    .map(move |value| format!("{value:0len$}"))
                    .filter(|text| self.longest_at_head(text.as_bytes()) == Some(text.len()))
            })
            .collect()
    }
}

/// The kinds of number someone may call from (fixed lines and mobiles): how long a national
/// significant number of these is decides whether leading digits that spell the country code
/// are the country code ("44 20 7946 0958" in GB) or part of the number (Italy's mobile
/// "393 123 4567").
const SUBSCRIBER_KINDS: [Type; 2] = [Type::FixedLine, Type::Mobile];

/// Every kind of number one can reach from outside; `Type::Unknown` is the general description.
const REACHABLE_KINDS: [Type; 11] = [
    Type::Unknown,
    Type::FixedLine,
    Type::Mobile,
    Type::TollFree,
    Type::PremiumRate,
    Type::SharedCost,
    Type::PersonalNumber,
    Type::Voip,
    Type::Pager,
    Type::Uan,
    Type::Voicemail,
];

/// An E.164 number as an integer: its digits without '+' (at most 15 digits; E.164 never starts
/// with 0, so no digit is lost).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164(pub u64);

impl E164 {
    /// Writes `+<digits>` into `buf` and returns it as &str, without allocating. A value of 20
    /// digits (never built here: E.164 has at most 15) loses its first digit.
    pub fn write<'a>(&self, buf: &'a mut [u8; 20]) -> &'a str {
        let mut rest = self.0;
        let mut start = buf.len();
        loop {
            start -= 1;
            buf[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 || start == 1 {
                break;
            }
        }
        start -= 1;
        buf[start] = b'+';
        let buf: &'a [u8; 20] = buf;
        // Only ASCII was written, so this never falls back.
        std::str::from_utf8(&buf[start..]).unwrap_or("")
    }

    /// The number as `+<digits>`, for paths where an allocation does not matter.
    pub fn to_string_e164(&self) -> String {
        let mut buf = [0; 20];
        self.write(&mut buf).to_owned()
    }
}

/// A national significant number (the digits after the country code, leading zeros kept, as for
/// Italy's "06..."), encoded as an integer with a leading sentinel digit 1 so leading zeros
/// survive: Italy's "0612345678" is 10612345678.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NationalKey(pub u64);

impl NationalKey {
    /// `digits` are ASCII digits of a national significant number: at most 14 of them (E.164's 15
    /// less a country code), so the key fits a u64 (18 would too, 19 would not).
    fn from_digits(digits: &[u8]) -> NationalKey {
        NationalKey(10u64.pow(digits.len() as u32) + decimal(digits))
    }

    /// How many digits the national number has (the leading 1 of the key marks the length).
    fn digits_len(&self) -> usize {
        self.0.ilog10() as usize
    }
}

/// A number stored in Google Contacts, normalised at sync time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StoredNumber {
    pub e164: E164,
    pub national: NationalKey,
}

impl StoredNumber {
    fn from_reading(number: IncomingNumber) -> Option<StoredNumber> {
        let national = match number.national {
            Some(national) => national,
            None => national_key_of(number.e164)?,
        };
        Some(StoredNumber {
            e164: number.e164,
            national,
        })
    }
}

/// An incoming caller number, read at lookup time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IncomingNumber {
    pub e164: E164,
    /// Some only when the input carried no country code (no '+', no international prefix): then
    /// the lookup may fall back to a match on the national significant number if exactly one
    /// contact fits.
    pub national: Option<NationalKey>,
    /// The same digits read as E.164 without its '+' ("442079460958" at a US tenant, as many
    /// trunks send it), when they fit a country code and its lengths and differ from `e164`:
    /// a lookup tries it when the national reading matches no one.
    pub international: Option<E164>,
}

/// Rules for reading numbers in one region, built once when the plugin opens (this is where the
/// phonenumber metadata is loaded, so no lookup pays for it).
#[derive(Clone, Debug)]
pub struct RegionRules {
    /// Upper-case ISO 3166 alpha-2 code.
    region: String,
    /// The same, as the parser wants it for stored numbers.
    id: Id,
    country_code: u16,
    /// The country code as ASCII digits, to spot it at the head of a number dialled without '+'.
    country_code_digits: Box<[u8]>,
    /// The trunk (national) prefixes as ASCII digits, longest first: "0" in most of Europe,
    /// "1" in NANP, "8" in Russia, "06" in Hungary; none where there is none (Italy). More
    /// than one where the metadata reads national numbers with any of a few: "0" and "8" in
    /// Lithuania (see `trunk_prefixes`).
    trunk_prefixes: Vec<Box<[u8]>>,
    /// Argentina only: the area codes after which a mobile number dialled nationally carries
    /// the token "15" ("011 15-2345-6789" is +54 9 11 2345 6789), read off the metadata.
    mobile_token_areas: Option<&'static AreaCodes>,
    /// The international prefixes of this region; "00" is always among them.
    international_prefixes: InternationalPrefixes,
    /// Lengths a national significant number of any reachable kind may have here.
    possible_lengths: Lengths,
    /// Lengths a fixed-line or mobile national significant number may have here.
    subscriber_lengths: Lengths,
}

impl RegionRules {
    /// None when `region` is not an ISO 3166 alpha-2 code the metadata knows ("US", "GB",
    /// "DE"...; case-insensitive).
    pub fn new(region: &str) -> Option<RegionRules> {
        if region.len() != 2 || !region.bytes().all(|b| b.is_ascii_alphabetic()) {
            return None;
        }
        let region = region.to_ascii_uppercase();
        let id: Id = region.parse().ok()?;
        let meta = DATABASE.by_id(region.as_str())?;
        let country_code = meta.country_code();

        let trunk_prefixes = trunk_prefixes(meta);

        // The metadata's international prefix is a regex: read here, once, so that a lookup
        // only tests bits.
        let international_prefixes = InternationalPrefixes::of(meta);

        // Built here, at open, so that no lookup pays for it.
        std::sync::LazyLock::force(&COUNTRY_LENGTHS);
        let possible_lengths = Lengths::of(meta, &REACHABLE_KINDS);
        let subscriber_lengths = Lengths::of(meta, &SUBSCRIBER_KINDS);
        let mobile_token_areas = (region == "AR").then(argentine_mobile_areas);
        Some(RegionRules {
            mobile_token_areas,
            region,
            id,
            country_code,
            country_code_digits: country_code.to_string().into_bytes().into(),
            trunk_prefixes,
            international_prefixes,
            possible_lengths,
            subscriber_lengths: if subscriber_lengths.is_empty() {
                possible_lengths
            } else {
                subscriber_lengths
            },
        })
    }

    /// The upper-case ISO 3166 alpha-2 code.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The region's country calling code (1 for US, 44 for GB).
    pub fn country_code(&self) -> u16 {
        self.country_code
    }

    /// Sync-time normalisation of a number stored in Google Contacts. `canonical` is Google's
    /// `canonicalForm` (E.164 like "+12125550199") when present and is preferred; otherwise
    /// `value` is read in this region: first as [`read_incoming`](Self::read_incoming) reads it,
    /// so both sides agree, then by `phonenumber::parse` for text that reading declines
    /// ("+1 212-555-0199 ext. 5", "+44 (0)20 7946 0958", a Brazilian carrier code).
    /// Returns None for text that is not a number at all.
    pub fn normalise_stored(&self, value: &str, canonical: Option<&str>) -> Option<StoredNumber> {
        if let Some(stored) = canonical.and_then(stored_from_canonical) {
            return Some(stored);
        }
        // Text with a country code is read with its country's lengths first, so that a trunk
        // prefix written after the code is dropped (see `read_international_text`); what that
        // declines, the byte reader reads as dialled, as a lookup would.
        let read = || {
            Dialled::lex(value)
                .and_then(|dialled| self.read(&dialled))
                .and_then(StoredNumber::from_reading)
        };
        read_international_text(value)
            .or_else(read)
            .or_else(|| self.parse_with_metadata(value))
    }

    /// Lookup-time reading of an incoming number: no allocation, no regex, no parser. Returns
    /// None for input that is not a phone number ("anonymous",
    /// "sip:anonymous@anonymous.invalid", empty, letters).
    pub fn read_incoming(&self, input: &str) -> Option<IncomingNumber> {
        self.read(&Dialled::lex(input)?)
    }

    /// The reading both sides share: '+', then the international prefixes, then national.
    fn read(&self, dialled: &Dialled) -> Option<IncomingNumber> {
        let digits = dialled.digits();
        if dialled.plus {
            return international(digits);
        }
        let after_prefix = self
            .international_prefixes
            .longest_at_head(digits)
            .map(|len| &digits[len..]);
        if let Some(rest) = after_prefix {
            // As in libphonenumber: no country code starts with 0, so "00 0..." is not an
            // international number, and what it is depends on the national rules below.
            if rest.first().is_some_and(|&digit| digit != b'0') {
                return international(rest);
            }
        }
        self.read_national(digits)
    }

    /// Digits dialled without '+' or an international prefix: read nationally, with the
    /// same digits read as E.164 beside (or instead, when no national reading exists).
    fn read_national(&self, digits: &[u8]) -> Option<IncomingNumber> {
        let international = international_without_prefix(digits);
        match self.read_national_only(digits) {
            Some(mut national) => {
                national.international = international.filter(|e| *e != national.e164);
                Some(national)
            }
            None => international.map(|e164| IncomingNumber {
                e164,
                national: None,
                international: None,
            }),
        }
    }

    fn read_national_only(&self, digits: &[u8]) -> Option<IncomingNumber> {
        if let Some(areas) = self.mobile_token_areas {
            if let Some(mobile) = self.read_mobile_token(areas, digits) {
                return Some(mobile);
            }
        }
        // "020 7946 0958", "1 212 555 1234": the trunk prefix, when what follows it has a length
        // a number here can have. NANP's "1" is thus taken only from 11-digit numbers.
        for trunk in &self.trunk_prefixes {
            if let Some(rest) = digits.strip_prefix(&trunk[..]) {
                if self.possible_lengths.contains(rest.len()) {
                    return self.national_number(rest);
                }
            }
        }
        // "44 20 7946 0958" in GB, as many SIP trunks send E.164 without its '+': the country
        // code, but only when the digits are too long for a subscriber number here and fit one
        // once it is gone. Italy's mobile "393 123 4567" and Brazil's area code 55 stay national.
        if let Some(rest) = digits.strip_prefix(&self.country_code_digits[..]) {
            if !self.subscriber_lengths.contains(digits.len())
                && self.subscriber_lengths.contains(rest.len())
            {
                return international(digits);
            }
        }
        // Regions without a trunk prefix (Italy) keep every digit, leading zeros included. A
        // length no number here can have (a US local number without its area code) is refused:
        // there is no E.164 number to make of it.
        //
        // Brazil's carrier selection codes (0 + two-digit carrier + area code, "0 21 11 ...")
        // are left out on purpose: the codes live in a metadata regex this reader may not run,
        // and such digits fit no Brazilian length, so they end here as None. At sync the parser
        // reads them, and incoming calls from a Brazilian trunk come as E.164 or "0 + area code".
        if self.possible_lengths.contains(digits.len()) {
            return self.national_number(digits);
        }
        None
    }

    /// Argentina's national mobile form: [0] area "15" subscriber, where area and subscriber
    /// make ten digits; as libphonenumber reads it (its transform rule "9$1"), the number is
    /// +54 9 area subscriber.
    fn read_mobile_token(&self, areas: &AreaCodes, digits: &[u8]) -> Option<IncomingNumber> {
        let digits = digits.strip_prefix(b"0").unwrap_or(digits);
        if digits.len() != ARGENTINE_NSN_DIGITS + 2 {
            return None;
        }
        (2..=4).find_map(|len| {
            let (area, rest) = digits.split_at(len);
            let subscriber = rest.strip_prefix(b"15")?;
            if !areas.contains(area) {
                return None;
            }
            let mut nsn = [0u8; ARGENTINE_NSN_DIGITS + 1];
            nsn[0] = b'9';
            nsn[1..=len].copy_from_slice(area);
            nsn[len + 1..].copy_from_slice(subscriber);
            self.national_number(&nsn)
        })
    }

    /// A national significant number of this region, with its E.164 form.
    fn national_number(&self, nsn: &[u8]) -> Option<IncomingNumber> {
        let total = self.country_code_digits.len() + nsn.len();
        if nsn.is_empty() || !(E164_MIN_DIGITS..=E164_MAX_DIGITS).contains(&total) {
            return None;
        }
        let e164 = u64::from(self.country_code) * 10u64.pow(nsn.len() as u32) + decimal(nsn);
        Some(IncomingNumber {
            e164: E164(e164),
            national: Some(NationalKey::from_digits(nsn)),
            international: None,
        })
    }

    /// Stored text the byte reader declines, handed to the `phonenumber` parser.
    fn parse_with_metadata(&self, value: &str) -> Option<StoredNumber> {
        let number = phonenumber::parse(Some(self.id), value).ok()?;
        let code = number.code().value();
        let national = number.national();
        let nsn = format!(
            "{}{}",
            "0".repeat(usize::from(national.zeros())),
            national.value()
        );
        if number.code().source() == Source::Number {
            // phonenumber 0.3 takes leading digits that spell the region's country code for
            // it whenever they are there ("393 123 4567" in Italy becomes +39 31234567): put
            // the digits back together and let this module's rule decide.
            let dialled = Dialled::from_digits(format!("{code}{nsn}").as_bytes())?;
            return self.read(&dialled).and_then(StoredNumber::from_reading);
        }
        // The parser checks no length (0.3 ships the general lengths empty), so a local number
        // without its area code, or "0044 ..." where 00 is no prefix to it (US), would come out
        // as a number that exists nowhere: check the length against the metadata here.
        let lengths = if code == self.country_code {
            self.possible_lengths
        } else {
            lengths_of_country_code(code)
        };
        if !lengths.contains(nsn.len()) {
            return None;
        }
        let e164 = international(format!("{code}{nsn}").as_bytes())?.e164;
        Some(StoredNumber {
            e164,
            national: NationalKey::from_digits(nsn.as_bytes()),
        })
    }
}

/// The region's trunk prefixes, longest first: its national prefix, and where the metadata's
/// pattern for taking it off a national number is a plain choice of digit strings, each of
/// them. Lithuania moved from 8 to 0 in 2025 and reads both ("[08]": address books are full of
/// "8 612 34567", which with 0 alone was read as the Chinese +86 1234567); Belarus writes
/// "8 0AA ..." ("0|80?": with 8 alone, the 0 stayed inside the number). Patterns that capture a
/// carrier code (Korea's 08x, Bolivia's 01x, Colombia's 0x) or rewrite the number (Brazil,
/// Argentina) are not plain choices and are left out, as the reader leaves carrier codes out.
fn trunk_prefixes(meta: &Metadata) -> Vec<Box<[u8]>> {
    let mut prefixes: Vec<Box<[u8]>> = meta
        .national_prefix()
        .filter(|prefix| !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit()))
        .map(|prefix| prefix.as_bytes().into())
        .into_iter()
        .collect();
    let plain_choice = meta.national_prefix_for_parsing().filter(|pattern| {
        meta.national_prefix_transform_rule().is_none() && !pattern.as_str().contains('(')
    });
    if let Some(pattern) = plain_choice {
        for len in 1..=3u32 {
            for n in 0..10u32.pow(len) {
                let candidate = format!("{n:0width$}", width = len as usize);
                let whole = pattern
                    .find(&candidate)
                    .is_some_and(|found| found.start() == 0 && found.end() == candidate.len());
                if whole && !prefixes.iter().any(|p| **p == *candidate.as_bytes()) {
                    prefixes.push(candidate.as_bytes().into());
                }
            }
        }
    }
    prefixes.sort_by_key(|prefix| std::cmp::Reverse(prefix.len()));
    prefixes
}

/// Stored text with a country code that the byte reader declines for a trunk prefix in
/// brackets ("+44 (0)20 7946 0958") or an extension ("+1 212 555 0199 ext. 5"), read here
/// rather than by the parser, which takes the *tenant's* trunk prefix off a foreign number
/// (phonenumber 0.3 stores "+880 1812-345639 ext. 2" as +880 812345639 at a US tenant). The
/// bracketed 0 is dropped when the country's trunk prefix is 0 (GB, DE) and kept where it is
/// part of the number (Italy has no trunk prefix).
fn read_international_text(value: &str) -> Option<StoredNumber> {
    let text = value.trim().strip_prefix('+')?;
    // The extension: everything from the first letter, '#', ',' or ';' on.
    let end = text
        .find(|c: char| c.is_alphabetic() || matches!(c, '#' | ',' | ';'))
        .unwrap_or(text.len());
    let main = &text[..end];
    let digits_of = |part: &str| -> Option<String> {
        let mut digits = String::new();
        for c in part.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '\t' | '-' | '.' | '(' | ')' | '/' | '\u{a0}' => {}
                _ => return None,
            }
        }
        Some(digits)
    };
    let digits = match main.split_once("(0)") {
        Some((code, rest)) => {
            let code_digits = digits_of(code)?;
            let code: u16 = code_digits.parse().ok()?;
            let zero = if trunk_is_zero(code)? { "" } else { "0" };
            format!("{code_digits}{zero}{}", digits_of(rest)?)
        }
        None => digits_of(main)?,
    };
    let e164 = international(digits.as_bytes())?.e164;
    let national = national_key_of(e164)?;
    // A length the country's numbers have, or it is no number (the parser is asked instead).
    let code_len = digits.len() - national.digits_len();
    let code = decimal(&digits.as_bytes()[..code_len]) as u16;
    // "+44 020 7946 0958": the country's trunk prefix written after its code, which dialling
    // does not take. Read as written it is +44 0 20..., a number no call ever comes from; as
    // libphonenumber (and so Google's canonicalForm) reads it, without the 0, when the number
    // is valid only without it. Italy's 0 is part of its numbers: it has no trunk prefix.
    if let Some(without_trunk) = without_trunk_prefix(&digits, code_len, code) {
        return Some(without_trunk);
    }
    if !lengths_of_country_code(code).contains(digits.len() - code_len) {
        return None;
    }
    Some(StoredNumber { e164, national })
}

/// `digits` (E.164 digits whose country code has `code_len` digits) without the 0 after the
/// code, when that is the country's trunk prefix and the metadata's pattern of its national
/// numbers takes the number without the 0 and not with it (as libphonenumber decides). Runs
/// the metadata's patterns: only stored text comes here.
fn without_trunk_prefix(digits: &str, code_len: usize, code: u16) -> Option<StoredNumber> {
    let (country, after_code) = digits.split_at(code_len);
    let rest = after_code.strip_prefix('0')?;
    // As the parser weighs a national number: one of the lengths, and the pattern from its
    // first digit.
    let national = |nsn: &str| {
        DATABASE.by_code(&code).is_some_and(|regions| {
            regions
                .iter()
                .any(|meta| meta.descriptors().general().is_match(nsn))
        })
    };
    if !trunk_is_zero(code)? || national(after_code) || !national(rest) {
        return None;
    }
    let without = format!("{country}{rest}");
    let e164 = international(without.as_bytes())?.e164;
    Some(StoredNumber {
        e164,
        national: national_key_of(e164)?,
    })
}

/// Whether the trunk prefix of country code `code` is 0 (in one of its regions: GB, DE, FR,
/// but not Italy, which has none, nor NANP's 1); None for a code the metadata does not know.
fn trunk_is_zero(code: u16) -> Option<bool> {
    let regions = DATABASE.by_code(&code)?;
    Some(
        regions
            .iter()
            .any(|meta| meta.national_prefix() == Some("0")),
    )
}

/// Google's `canonicalForm`: "+" and the E.164 digits, nothing else.
fn stored_from_canonical(canonical: &str) -> Option<StoredNumber> {
    let dialled = Dialled::lex(canonical)?;
    if !dialled.plus {
        return None;
    }
    StoredNumber::from_reading(international(dialled.digits())?)
}

/// Digits that carry their country code: they are the E.164 number.
fn international(digits: &[u8]) -> Option<IncomingNumber> {
    if !(E164_MIN_DIGITS..=E164_MAX_DIGITS).contains(&digits.len()) || digits[0] == b'0' {
        return None;
    }
    Some(IncomingNumber {
        e164: E164(decimal(digits)),
        national: None,
        international: None,
    })
}

/// Argentina's national significant numbers: area code and subscriber number together.
const ARGENTINE_NSN_DIGITS: usize = 10;

/// Area codes of two to four digits, as a bit per value (area codes never start with 0, so
/// the value tells the digits).
pub struct AreaCodes(Box<[u64; 10_000 / 64 + 1]>);

impl std::fmt::Debug for AreaCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AreaCodes(..)")
    }
}

impl AreaCodes {
    fn contains(&self, area: &[u8]) -> bool {
        let value = decimal(area) as usize;
        area.first() != Some(&b'0') && self.0[value / 64] & (1 << (value % 64)) != 0
    }
}

/// The area codes libphonenumber's Argentine parsing rule takes "15" after, found once by
/// running the metadata's rule over every two- to four-digit code (at open, never on a
/// lookup, which runs no regex).
fn argentine_mobile_areas() -> &'static AreaCodes {
    static AREAS: std::sync::OnceLock<AreaCodes> = std::sync::OnceLock::new();
    AREAS.get_or_init(|| {
        let mut bits = Box::new([0u64; 10_000 / 64 + 1]);
        let rule = DATABASE
            .by_id("AR")
            .and_then(|meta| meta.national_prefix_for_parsing());
        if let Some(rule) = rule {
            for value in 10..10_000usize {
                let area = value.to_string();
                let probe = format!("0{area}15{}", "0".repeat(ARGENTINE_NSN_DIGITS - area.len()));
                let taken = rule.captures(&probe).is_some_and(|found| {
                    found
                        .get(0)
                        .is_some_and(|m| m.start() == 0 && m.end() == area.len() + 3)
                        && found.get(1).is_some_and(|g| g.as_str() == area)
                });
                if taken {
                    bits[value / 64] |= 1 << (value % 64);
                }
            }
        }
        AreaCodes(bits)
    })
}

/// For every country code (index), the lengths its national significant numbers may have;
/// empty for codes no country has. Built once from the metadata, so that reading a number
/// on the lookup path neither allocates nor searches.
static COUNTRY_LENGTHS: std::sync::LazyLock<Box<[Lengths; 1000]>> =
    std::sync::LazyLock::new(|| {
        let mut table = Box::new([Lengths(0); 1000]);
        for (code, lengths) in table.iter_mut().enumerate().skip(1) {
            *lengths = lengths_of_country_code(code as u16);
        }
        table
    });

/// Digits that may be an E.164 number without its '+': a country code at their head (codes
/// are prefix-free, so the first one found is it) and a length that country's numbers have.
fn international_without_prefix(digits: &[u8]) -> Option<E164> {
    if !(E164_MIN_DIGITS..=E164_MAX_DIGITS).contains(&digits.len()) || digits[0] == b'0' {
        return None;
    }
    let table = &*COUNTRY_LENGTHS;
    (1..=3).find_map(|len| {
        let lengths = table[decimal(&digits[..len]) as usize];
        if lengths.is_empty() {
            return None;
        }
        Some(
            lengths
                .contains(digits.len() - len)
                .then(|| E164(decimal(digits))),
        )
    })?
}

/// The national significant number of an E.164 number: what follows its country code. None when
/// the metadata knows no country code at its head.
fn national_key_of(e164: E164) -> Option<NationalKey> {
    let mut buf = [0; 20];
    let text = e164.write(&mut buf);
    let digits = &text.as_bytes()[1..];
    // Country codes are prefix-free (ITU-T E.164), so the first one the metadata knows is it.
    (1..=3)
        .filter(|&len| len < digits.len())
        .find(|&len| {
            DATABASE
                .by_code(&(decimal(&digits[..len]) as u16))
                .is_some()
        })
        .map(|len| NationalKey::from_digits(&digits[len..]))
}

/// Lengths a national significant number may have under a country code, over all its regions.
fn lengths_of_country_code(code: u16) -> Lengths {
    let mut lengths = Lengths(0);
    for meta in DATABASE.by_code(&code).unwrap_or_default() {
        lengths.0 |= Lengths::of(meta, &REACHABLE_KINDS).0;
    }
    lengths
}

/// The value of ASCII digits; at most [`MAX_DIGITS`] of them, so it cannot overflow.
fn decimal(digits: &[u8]) -> u64 {
    digits
        .iter()
        .fold(0, |value, &digit| value * 10 + u64::from(digit - b'0'))
}

/// A set of lengths of national significant numbers, one bit per length.
#[derive(Clone, Copy, Debug)]
struct Lengths(u32);

impl Lengths {
    fn of(meta: &Metadata, kinds: &[Type]) -> Lengths {
        let mut bits = 0u32;
        for &kind in kinds {
            if let Some(descriptor) = meta.descriptors().get(kind) {
                for &len in descriptor.possible_length() {
                    bits |= 1u32.checked_shl(u32::from(len)).unwrap_or(0);
                }
            }
        }
        Lengths(bits)
    }

    fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Metadata without length data restricts nothing.
    fn contains(self, len: usize) -> bool {
        self.is_empty() || (len < 32 && self.0 & (1 << len) != 0)
    }
}

/// The digits of a number as written, and whether a '+' led them.
#[derive(Clone, Copy)]
struct Dialled {
    digits: [u8; MAX_DIGITS],
    len: usize,
    plus: bool,
}

impl Dialled {
    /// Reads a SIP From user part, a tel: or sip: URI, or typed text: `+12125551234`,
    /// `(212) 555-1234`, `tel:+1-212-555-1234`, `"Alice" <sip:+12125551234@host;user=phone>`.
    /// None when anything but digits, one leading '+' and visual separators is left.
    fn lex(input: &str) -> Option<Dialled> {
        let mut text = input.as_bytes().trim_ascii();
        // `"Alice" <sip:...>`: the URI is inside the last angle brackets; the display name before
        // them may hold anything.
        if let Some(open) = text.iter().rposition(|&b| b == b'<') {
            text = &text[open + 1..];
            let close = text.iter().position(|&b| b == b'>').unwrap_or(text.len());
            text = text[..close].trim_ascii();
        }
        for scheme in [&b"sips:"[..], b"sip:", b"tel:"] {
            if text.len() >= scheme.len() && text[..scheme.len()].eq_ignore_ascii_case(scheme) {
                text = &text[scheme.len()..];
                break;
            }
        }
        // The user part ends at '@' (the host), ';' (URI or tel parameters) or '?' (headers).
        let end = text
            .iter()
            .position(|&b| matches!(b, b'@' | b';' | b'?'))
            .unwrap_or(text.len());
        text = &text[..end];

        let mut dialled = Dialled {
            digits: [0; MAX_DIGITS],
            len: 0,
            plus: false,
        };
        for (at, &byte) in text.iter().enumerate() {
            match byte {
                b'0'..=b'9' => dialled.push(byte)?,
                b'+' if dialled.len == 0 && !dialled.plus => dialled.plus = true,
                // "+44 (0)20 ...": a trunk prefix shown for callers inside the country. Whether
                // that 0 is dialled from abroad depends on the country (Italy keeps it), which
                // this reader cannot know without a parser; it leaves such text to the parser.
                b'(' if text[at + 1..].starts_with(b"0)") => return None,
                // Spaces, RFC 3966 visual separators, and the slash of "030/1234567".
                b' ' | b'\t' | b'-' | b'.' | b'(' | b')' | b'/' => {}
                _ => return None,
            }
        }
        (dialled.len > 0).then_some(dialled)
    }

    /// Bare ASCII digits, national (no '+').
    fn from_digits(digits: &[u8]) -> Option<Dialled> {
        let mut dialled = Dialled {
            digits: [0; MAX_DIGITS],
            len: 0,
            plus: false,
        };
        for &digit in digits {
            if !digit.is_ascii_digit() {
                return None;
            }
            dialled.push(digit)?;
        }
        (dialled.len > 0).then_some(dialled)
    }

    /// None once the buffer is full: more than [`MAX_DIGITS`] digits are no phone number.
    fn push(&mut self, digit: u8) -> Option<()> {
        *self.digits.get_mut(self.len)? = digit;
        self.len += 1;
        Some(())
    }

    fn digits(&self) -> &[u8] {
        &self.digits[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(region: &str) -> RegionRules {
        RegionRules::new(region).unwrap_or_else(|| panic!("no rules for {region}"))
    }

    fn key(nsn: &str) -> NationalKey {
        NationalKey::from_digits(nsn.as_bytes())
    }

    /// (region, incoming text, expected E.164, expected national significant number when the
    /// input carried no country code). Fictional numbers where a regulator sets some aside:
    /// NANP 555-01xx, Ofcom's drama ranges (020 7946 0xxx, 0113 496 0xxx, 07700 900xxx),
    /// ACMA's (0491 570 xxx, 02 5550 xxxx).
    #[rustfmt::skip]
    const TABLE: &[(&str, &str, Option<&str>, Option<&str>)] = &[
        // United States (NANP).
        ("US", "+12125550100", Some("+12125550100"), None),
        ("US", "12125550101", Some("+12125550101"), Some("2125550101")),
        ("US", "2125550102", Some("+12125550102"), Some("2125550102")),
        ("US", "(212) 555-0103", Some("+12125550103"), Some("2125550103")),
        ("US", "1-212-555-0104", Some("+12125550104"), Some("2125550104")),
        ("US", "212.555.0105", Some("+12125550105"), Some("2125550105")),
        ("US", "tel:+1-212-555-0106", Some("+12125550106"), None),
        ("US", "TEL:+12125550107", Some("+12125550107"), None),
        ("US", "sip:+12125550108@pbx.example.com;user=phone", Some("+12125550108"), None),
        ("US", "sips:+12125550109@pbx.example.com", Some("+12125550109"), None),
        ("US", "sip:+12125550110@pbx.example.com:5060;transport=tcp", Some("+12125550110"), None),
        ("US", "\"Alice Example\" <sip:+12125550111@pbx.example.com>", Some("+12125550111"), None),
        ("US", "<sip:2125550112@192.0.2.10:5060>", Some("+12125550112"), Some("2125550112")),
        ("US", "  +1 (212) 555-0113  ", Some("+12125550113"), None),
        ("US", "011 44 20 7946 0958", Some("+442079460958"), None),
        ("US", "0044 20 7946 0958", Some("+442079460958"), None),
        ("US", "anonymous", None, None),
        ("US", "sip:anonymous@anonymous.invalid", None, None),
        ("US", "\"Anonymous\" <sip:anonymous@anonymous.invalid>", None, None),
        ("US", "Restricted", None, None),
        ("US", "", None, None),
        ("US", "   ", None, None),
        ("US", "+", None, None),
        ("US", "12345", None, None),
        ("US", "+12345", None, None),
        ("US", "555-0199", None, None), // a local number without its area code
        ("US", "1-800-FLOWERS", None, None),
        ("US", "+1 212-555-0114 ext. 5", None, None),
        ("US", "*67 212 555 0115", None, None),
        ("US", "+1 212 555 0116 0116 0116", None, None), // 18 digits
        ("US", "+0442079460958", None, None), // no country code starts with 0
        // Canada shares NANP's country code and trunk prefix.
        ("CA", "1 416 555 0123", Some("+14165550123"), Some("4165550123")),
        // Great Britain.
        ("GB", "020 7946 0958", Some("+442079460958"), Some("2079460958")),
        ("GB", "+44 20 7946 0959", Some("+442079460959"), None),
        ("GB", "0044 20 7946 0960", Some("+442079460960"), None),
        ("GB", "0113 496 0000", Some("+441134960000"), Some("1134960000")), // Leeds, not 011
        ("GB", "07700 900123", Some("+447700900123"), Some("7700900123")),
        ("GB", "sip:07700900456@trunk.example.net", Some("+447700900456"), Some("7700900456")),
        ("GB", "442079460961", Some("+442079460961"), None), // E.164 without its '+'
        ("GB", "+44 (0)20 7946 0962", None, None), // left to the parser at sync
        // Germany.
        ("DE", "030 12345678", Some("+493012345678"), Some("3012345678")),
        ("DE", "+49 30 12345678", Some("+493012345678"), None),
        ("DE", "0049 30 12345678", Some("+493012345678"), None),
        ("DE", "0170 1234567", Some("+491701234567"), Some("1701234567")),
        ("DE", "030/1234567", Some("+49301234567"), Some("301234567")),
        // France.
        ("FR", "01 23 45 67 89", Some("+33123456789"), Some("123456789")),
        ("FR", "+33 1 23 45 67 89", Some("+33123456789"), None),
        ("FR", "06.12.34.56.78", Some("+33612345678"), Some("612345678")),
        ("FR", "0033 6 12 34 56 78", Some("+33612345678"), None),
        // India: "011" is Delhi's area code behind the trunk prefix, not an international prefix.
        ("IN", "098765 43210", Some("+919876543210"), Some("9876543210")),
        ("IN", "+91 98765 43210", Some("+919876543210"), None),
        ("IN", "919876543210", Some("+919876543210"), None),
        ("IN", "011 2345 6789", Some("+911123456789"), Some("1123456789")),
        // Brazil.
        ("BR", "(11) 91234-5678", Some("+5511912345678"), Some("11912345678")),
        ("BR", "011 91234 5678", Some("+5511912345678"), Some("11912345678")),
        ("BR", "+55 11 91234-5678", Some("+5511912345678"), None),
        ("BR", "(55) 3222-1234", Some("+555532221234"), Some("5532221234")), // area code 55
        ("BR", "0 21 11 91234-5678", None, None), // carrier selection code: left to the parser
        // Australia: 0011 is its international prefix, and 00 is read too.
        ("AU", "0491 570 156", Some("+61491570156"), Some("491570156")),
        ("AU", "+61 491 570 157", Some("+61491570157"), None),
        ("AU", "0011 44 20 7946 0958", Some("+442079460958"), None),
        ("AU", "0044 20 7946 0958", Some("+442079460958"), None),
        ("AU", "(02) 5550 1234", Some("+61255501234"), Some("255501234")),
        ("AU", "000", None, None),
        // Italy: no trunk prefix, the leading 0 belongs to the number, and 011 is Turin.
        ("IT", "011 123 4567", Some("+390111234567"), Some("0111234567")),
        ("IT", "06 1234 5678", Some("+390612345678"), Some("0612345678")),
        ("IT", "+39 06 1234 5678", Some("+390612345678"), None),
        ("IT", "393 123 4567", Some("+393931234567"), Some("3931234567")), // a mobile
        // Other international prefixes, where the metadata has them.
        ("JP", "010 44 20 7946 0958", Some("+442079460958"), None),
        ("RU", "8 10 44 20 7946 0958", Some("+442079460958"), None),
        // Every region's own prefixes, as its metadata has them (the contract: "the region's
        // own"), but for those that start with 00: Chile's 1100, Israel's 014, Chad's 16.
        ("CL", "1100 44 20 7946 0958", Some("+442079460958"), None),
        ("IL", "014 44 20 7946 0958", Some("+442079460958"), None),
        ("TD", "16 49 7121 234", Some("+497121234"), None),
        ("UY", "0150 44 20 7946 0958", Some("+442079460958"), None),
        // 15-digit E.164 numbers behind three- and four-digit international prefixes: 18 and 19
        // digits dialled (India's premium-rate 1861 numbers have 13 national digits).
        ("TJ", "810 91 1861 123 456 789", Some("+911861123456789"), None),
        ("AU", "0011 91 1861 123 456 789", Some("+911861123456789"), None),
        ("US", "011 91 1861 123 456 789", Some("+911861123456789"), None),
        // One digit more is no E.164 number, whatever the prefix.
        ("AU", "0011 91 1861 123 456 7890", None, None),
        ("RU", "8 495 123-45-67", Some("+74951234567"), Some("4951234567")),
        // Lithuania moved its trunk prefix from 8 to 0 in 2025 and reads both; with 0 alone,
        // "8 612 34567" was read as the Chinese +86 1234567.
        ("LT", "8 612 34567", Some("+37061234567"), Some("61234567")),
        ("LT", "0 612 34567", Some("+37061234567"), Some("61234567")),
        ("LT", "8 5 212 3456", Some("+37052123456"), Some("52123456")),
        ("LT", "8 800 12345", Some("+37080012345"), Some("80012345")),
        // Belarus: "8 0AA ..." (the 0 is not part of the number), and "0AA ..." too.
        ("BY", "8 0152 45-09-11", Some("+375152450911"), Some("152450911")),
        ("BY", "8 029 123-45-67", Some("+375291234567"), Some("291234567")),
        ("BY", "029 123-45-67", Some("+375291234567"), Some("291234567")),
    ];

    #[test]
    fn foreign_numbers_with_a_bracketed_trunk_prefix_or_an_extension_are_stored_right() {
        for region in ["US", "IT", "DE"] {
            let rules = rules(region);
            for (text, e164) in [
                ("+44 (0)20 7946 0958", 442079460958u64),
                ("+49 (0)30 12345678", 493012345678),
                ("+39 (0)6 1234 5678", 390612345678), // Italy keeps its 0
                ("+880 1812-345639 ext. 2", 8801812345639),
                ("+1 212-555-0199 x5", 12125550199),
            ] {
                let stored = rules.normalise_stored(text, None).map(|s| s.e164.0);
                assert_eq!(stored, Some(e164), "{text} at {region}");
            }
        }
    }

    #[test]
    fn argentine_mobiles_dialled_nationally_read_as_libphonenumber_reads_them() {
        let ar = rules("AR");
        for (text, e164) in [
            ("011 15-2345-6789", 5491123456789u64),
            ("011 15 2345 6789", 5491123456789),
            ("11 15 2345 6789", 5491123456789),
            ("0351 15 234 5678", 5493512345678),
            ("011 2345-6789", 541123456789),
            ("+54 9 11 2345 6789", 5491123456789),
        ] {
            assert_eq!(
                ar.read_incoming(text).map(|n| n.e164.0),
                Some(e164),
                "{text}"
            );
            assert_eq!(
                ar.normalise_stored(text, None).map(|n| n.e164.0),
                Some(e164),
                "{text}"
            );
        }
        assert!(argentine_mobile_areas().contains(b"11"));
        assert!(!argentine_mobile_areas().contains(b"99"));
    }

    #[test]
    fn table_reads_incoming_numbers() {
        assert!(TABLE.len() >= 40);
        for &(region, input, e164, national) in TABLE {
            let got = rules(region).read_incoming(input);
            let want = e164.map(|e164| (e164.to_owned(), national.map(key)));
            assert_eq!(
                got.map(|number| (number.e164.to_string_e164(), number.national)),
                want,
                "{region} {input:?}"
            );
        }
    }

    #[test]
    fn table_stored_and_incoming_agree() {
        // The same text must give the same E.164 number at sync and at lookup, or a contact
        // would not be found by the number it was saved with.
        let mut compared = 0;
        for &(region, input, _, _) in TABLE {
            let rules = rules(region);
            let (Some(incoming), Some(stored)) = (
                rules.read_incoming(input),
                rules.normalise_stored(input, None),
            ) else {
                continue;
            };
            compared += 1;
            assert_eq!(incoming.e164, stored.e164, "{region} {input:?}");
            if let Some(national) = incoming.national {
                assert_eq!(national, stored.national, "{region} {input:?}");
            }
        }
        assert!(compared >= 40, "only {compared} rows compared");
    }

    #[test]
    fn stored_prefers_canonical_form() {
        let us = rules("US");
        let with_canonical = us.normalise_stored("(212) 555-0199", Some("+12125550199"));
        assert_eq!(
            with_canonical,
            Some(StoredNumber {
                e164: E164(12125550199),
                national: key("2125550199"),
            })
        );
        // Google's canonical form wins over a value this region would read otherwise.
        let other = us.normalise_stored("555-0199", Some("+12125550199"));
        assert_eq!(other.map(|n| n.e164), Some(E164(12125550199)));
        // A canonical form that is not E.164 is ignored, and the value read instead.
        let bad = us.normalise_stored("(212) 555-0199", Some("212-555-0199"));
        assert_eq!(bad.map(|n| n.e164), Some(E164(12125550199)));
        // Italian leading zero kept in the national key of a canonical form.
        let it = rules("IT").normalise_stored("06 1234 5678", Some("+390612345678"));
        assert_eq!(it.map(|n| n.national), Some(key("0612345678")));
        assert_eq!(it.map(|n| n.national), Some(NationalKey(10612345678)));
    }

    #[test]
    fn stored_without_canonical_form() {
        // (region, value, expected E.164 and national significant number)
        #[rustfmt::skip]
        let cases = [
            ("US", "(212) 555-0199", Some(("+12125550199", "2125550199"))),
            ("DE", "030 12345678", Some(("+493012345678", "3012345678"))),
            // Declined by the byte reader, read by the parser:
            ("GB", "+44 (0)20 7946 0958", Some(("+442079460958", "2079460958"))),
            ("DE", "+49 (0)30 12345678", Some(("+493012345678", "3012345678"))),
            ("US", "+1 212-555-0199 ext. 5", Some(("+12125550199", "2125550199"))),
            ("US", "cell: 212-555-0199", Some(("+12125550199", "2125550199"))),
            ("US", "1-800-FLOWERS", Some(("+18003569377", "8003569377"))),
            ("BR", "0 21 11 91234-5678", Some(("+5511912345678", "11912345678"))),
            // The parser took "39" for the country code; this module's rule puts it back.
            ("IT", "393 123 4567 ext 2", Some(("+393931234567", "3931234567"))),
            ("IT", "+39 06 1234 5678", Some(("+390612345678", "0612345678"))),
            // The trunk prefix written after the country code: dropped where it is one (GB,
            // DE, FR), kept where the 0 is part of the number (Italy).
            ("US", "+44 020 7946 0958", Some(("+442079460958", "2079460958"))),
            ("US", "+44 07700 900123", Some(("+447700900123", "7700900123"))),
            ("US", "+49 030 12345678", Some(("+493012345678", "3012345678"))),
            ("DE", "+33 06 12 34 56 78", Some(("+33612345678", "612345678"))),
            ("US", "+39 06 1234 5678", Some(("+390612345678", "0612345678"))),
            // The parser reads letters as a keypad ("cell" is 2355): too long, so refused.
            ("US", "212-555-0199 (cell)", None),
            // 00 is not the US prefix for the parser: +1 0044..., no such length, so refused.
            ("US", "0044 20 7946 0958 ext 1", None),
            ("US", "anonymous", None),
            ("US", "", None),
            ("US", "555-0199", None),
        ];
        for (region, value, want) in cases {
            let got = rules(region).normalise_stored(value, None);
            assert_eq!(
                got.map(|n| (n.e164.to_string_e164(), n.national)),
                want.map(|(e164, nsn)| (e164.to_owned(), key(nsn))),
                "{region} {value:?}"
            );
        }
    }

    #[test]
    fn region_rules_know_their_region() {
        let us = rules("us");
        assert_eq!((us.region(), us.country_code()), ("US", 1));
        assert_eq!(rules("Gb").country_code(), 44);
        assert!(rules("IT").trunk_prefixes.is_empty());
        assert_eq!(rules("GB").international_prefixes.listed(), ["00"]);
        assert_eq!(rules("US").international_prefixes.listed(), ["011", "00"]);
        assert_eq!(rules("AU").international_prefixes.listed(), ["0011", "00"]);
        assert_eq!(rules("TD").international_prefixes.listed(), ["00", "16"]);
        assert_eq!(rules("KR").international_prefixes.listed(), ["00"]);
        assert_eq!(rules("UY").international_prefixes.listed().len(), 71);
        for bad in ["", "U", "USA", "XX", "001", "1A", "ÜS"] {
            assert!(RegionRules::new(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn e164_writes_without_allocating() {
        let mut buf = [0; 20];
        assert_eq!(E164(12125550199).write(&mut buf), "+12125550199");
        assert_eq!(E164(442079460958).to_string_e164(), "+442079460958");
        assert_eq!(E164(0).to_string_e164(), "+0");
        assert_eq!(E164(u64::MAX).write(&mut buf), "+8446744073709551615");
    }

    #[test]
    fn national_key_keeps_leading_zeros() {
        assert_eq!(key("0612345678"), NationalKey(10612345678));
        assert_ne!(key("0612345678"), key("612345678"));
    }
}
