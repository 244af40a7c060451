//! `like`, `ilike` and `fzlike` matchers.
//!
//! `like` is SQL LIKE over Unicode scalar values: `%` matches any run (possibly empty), `_` exactly
//! one character, and `\` escapes the next character (`\%`, `\_`, `\\`). The whole value must
//! match. Matching never backtracks: the pattern is split at `%` into segments, and each segment
//! is found at its leftmost possible position (correct for glob-style patterns), by
//! Knuth-Morris-Pratt when it is literal and by a bit-parallel Shift-And scan when it holds `_`.
//! The whole match is one pass over the value: linear in the value (times `segment / 64` word
//! operations per character for segments with `_`), for any pattern up to
//! [`crate::core::limits::MAX_PATTERN`] characters.
//!
//! `ilike` folds both sides with a one-to-one lowercase mapping first. `fzlike` is a fuzzy match:
//! after lowercasing and stripping accents (combining marks, Latin-1 and Latin Extended-A letters)
//! the pattern's characters, whitespace ignored, must appear in order in the value. O(value).

use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Lit(char),
    One,
}

/// One run of the pattern between `%` signs, with what finding it needs: for a run of literal
/// characters, the Knuth-Morris-Pratt failure table; for a run with `_` in it, the bit masks of a
/// Shift-And search (for each literal character the positions where it may appear, and the `_`
/// positions).
#[derive(Clone, Debug)]
struct Segment {
    toks: Vec<Tok>,
    search: Search,
}

#[derive(Clone, Debug)]
enum Search {
    Literal {
        chars: Vec<char>,
        failure: Vec<usize>,
    },
    Wildcards {
        masks: HashMap<char, Vec<u64>>,
        any: Vec<u64>,
    },
}

impl Segment {
    fn new(toks: Vec<Tok>) -> Self {
        let literal: Option<Vec<char>> = toks
            .iter()
            .map(|t| match t {
                Tok::Lit(c) => Some(*c),
                Tok::One => None,
            })
            .collect();
        let search = match literal {
            Some(chars) => {
                // failure[i]: length of the longest proper prefix of chars[..=i] that is also
                // its suffix.
                let mut failure = vec![0; chars.len()];
                let mut k = 0;
                for i in 1..chars.len() {
                    while k > 0 && chars[i] != chars[k] {
                        k = failure[k - 1];
                    }
                    if chars[i] == chars[k] {
                        k += 1;
                    }
                    failure[i] = k;
                }
                Search::Literal { chars, failure }
            }
            None => {
                let words = toks.len().div_ceil(64).max(1);
                let mut masks: HashMap<char, Vec<u64>> = HashMap::new();
                let mut any = vec![0u64; words];
                for (i, t) in toks.iter().enumerate() {
                    let (w, bit) = (i / 64, 1u64 << (i % 64));
                    match t {
                        Tok::One => any[w] |= bit,
                        Tok::Lit(c) => masks.entry(*c).or_insert_with(|| vec![0; words])[w] |= bit,
                    }
                }
                Search::Wildcards { masks, any }
            }
        };
        Segment { toks, search }
    }

    fn len(&self) -> usize {
        self.toks.len()
    }

    /// Whether the segment matches `text` at `at`.
    fn matches_at(&self, text: &[char], at: usize) -> bool {
        at + self.len() <= text.len()
            && self.toks.iter().zip(&text[at..]).all(|(t, c)| match t {
                Tok::One => true,
                Tok::Lit(l) => l == c,
            })
    }

    /// The leftmost position in `text[from..to]` where the whole segment matches, in one pass
    /// over the text whatever the input: KMP for literal runs, and for runs with `_` a Shift-And
    /// scan costing `len / 64` word operations per character (no backtracking either way).
    fn find(&self, text: &[char], from: usize, to: usize) -> Option<usize> {
        let m = self.len();
        if m == 0 {
            return Some(from);
        }
        match &self.search {
            Search::Literal { chars, failure } => {
                let mut k = 0;
                for (i, c) in text.iter().enumerate().take(to).skip(from) {
                    while k > 0 && *c != chars[k] {
                        k = failure[k - 1];
                    }
                    if *c == chars[k] {
                        k += 1;
                        if k == m {
                            return Some(i + 1 - m);
                        }
                    }
                }
                None
            }
            Search::Wildcards { masks, any } => {
                let last = (m - 1) / 64;
                let last_bit = 1u64 << ((m - 1) % 64);
                let mut state = vec![0u64; any.len()];
                for (i, c) in text.iter().enumerate().take(to).skip(from) {
                    let mask = masks.get(c);
                    let mut carry = 1u64; // a match may start at every position
                    for (w, s) in state.iter_mut().enumerate() {
                        let shifted = (*s << 1) | carry;
                        carry = *s >> 63;
                        *s = shifted & (any[w] | mask.map_or(0, |m| m[w]));
                    }
                    if state[last] & last_bit != 0 {
                        return Some(i + 1 - m);
                    }
                }
                None
            }
        }
    }
}

/// A compiled LIKE pattern.
#[derive(Clone, Debug)]
pub struct LikePattern {
    /// Segments between `%` signs.
    segments: Vec<Segment>,
    /// Whether the pattern starts / ends with `%`.
    open_start: bool,
    open_end: bool,
    fold: bool,
}

fn fold_case(c: char) -> char {
    if c.is_ascii() {
        c.to_ascii_lowercase()
    } else {
        c.to_lowercase().next().unwrap_or(c)
    }
}

impl LikePattern {
    pub fn new(pattern: &str, case_insensitive: bool) -> Self {
        let mut segments: Vec<Vec<Tok>> = vec![Vec::new()];
        let mut chars = pattern.chars();
        let mut open_start = false;
        let mut open_end = false;
        let mut first = true;
        let lit = |c: char| Tok::Lit(if case_insensitive { fold_case(c) } else { c });
        while let Some(c) = chars.next() {
            open_end = false;
            let tok = match c {
                '%' => {
                    if first {
                        open_start = true;
                    } else if segments.last().is_some_and(|s| !s.is_empty()) {
                        segments.push(Vec::new());
                    }
                    open_end = true;
                    first = false;
                    continue;
                }
                '_' => Tok::One,
                // A trailing backslash stands for itself.
                '\\' => lit(chars.next().unwrap_or('\\')),
                c => lit(c),
            };
            if let Some(seg) = segments.last_mut() {
                seg.push(tok);
            }
            first = false;
        }
        if open_end && segments.len() > 1 && segments.last().is_some_and(Vec::is_empty) {
            segments.pop();
        }
        LikePattern {
            segments: segments.into_iter().map(Segment::new).collect(),
            open_start,
            open_end,
            fold: case_insensitive,
        }
    }

    pub fn matches(&self, value: &str) -> bool {
        let text: Vec<char> = if self.fold {
            value.chars().map(fold_case).collect()
        } else {
            value.chars().collect()
        };
        self.matches_chars(&text)
    }

    fn matches_chars(&self, text: &[char]) -> bool {
        let n = self.segments.len();
        // No `%` at all: exact length match.
        if !self.open_start && !self.open_end && n == 1 {
            let seg = &self.segments[0];
            return seg.len() == text.len() && seg.matches_at(text, 0);
        }
        let mut pos = 0;
        let mut lo = 0;
        let mut hi = n;
        if !self.open_start {
            let first = &self.segments[0];
            if !first.matches_at(text, 0) {
                return false;
            }
            pos = first.len();
            lo = 1;
        }
        let mut end = text.len();
        if !self.open_end && hi > lo {
            let last = &self.segments[n - 1];
            if last.len() > end - pos || !last.matches_at(text, end - last.len()) {
                return false;
            }
            end -= last.len();
            hi -= 1;
        }
        // Each middle segment at its leftmost place after the previous one: correct for `%`
        // patterns, and the scans never overlap, so the whole match is one pass.
        for seg in &self.segments[lo..hi] {
            match seg.find(text, pos, end) {
                Some(at) => pos = at + seg.len(),
                None => return false,
            }
        }
        pos <= end
    }
}

/// Lowercases and strips accents from one character; `None` for characters that vanish
/// (combining marks).
fn fold_fuzzy(c: char) -> Option<char> {
    // (base letter, how many code points in a row map to it); '\0' keeps the character.
    const LATIN1_UPPER: &[(char, u8)] = &[
        ('a', 7),
        ('c', 1),
        ('e', 4),
        ('i', 4),
        ('d', 1),
        ('n', 1),
        ('o', 5),
        ('\0', 1),
        ('o', 1),
        ('u', 4),
        ('y', 1),
        ('\0', 1),
        ('s', 1),
    ];
    const LATIN1_LOWER: &[(char, u8)] = &[
        ('a', 7),
        ('c', 1),
        ('e', 4),
        ('i', 4),
        ('d', 1),
        ('n', 1),
        ('o', 5),
        ('\0', 1),
        ('o', 1),
        ('u', 4),
        ('y', 1),
        ('\0', 1),
        ('y', 1),
    ];
    const LATIN_EXT_A: &[(char, u8)] = &[
        ('a', 6),
        ('c', 8),
        ('d', 4),
        ('e', 10),
        ('g', 8),
        ('h', 4),
        ('i', 12),
        ('j', 2),
        ('k', 3),
        ('l', 10),
        ('n', 9),
        ('o', 8),
        ('r', 6),
        ('s', 8),
        ('t', 6),
        ('u', 12),
        ('w', 2),
        ('y', 3),
        ('z', 6),
        ('s', 1),
    ];
    fn lookup(table: &[(char, u8)], mut offset: u32, c: char) -> char {
        for &(base, run) in table {
            if offset < u32::from(run) {
                return if base == '\0' { c } else { base };
            }
            offset -= u32::from(run);
        }
        c
    }
    let cp = c as u32;
    match cp {
        0x300..=0x36f => None,
        0xc0..=0xdf => Some(lookup(LATIN1_UPPER, cp - 0xc0, c)),
        0xe0..=0xff => Some(lookup(LATIN1_LOWER, cp - 0xe0, c)),
        0x100..=0x17f => Some(lookup(LATIN_EXT_A, cp - 0x100, c)),
        _ => Some(fold_case(c)),
    }
}

/// A compiled `fzlike` pattern.
#[derive(Clone, Debug)]
pub struct FuzzyPattern {
    needle: Vec<char>,
}

impl FuzzyPattern {
    pub fn new(pattern: &str) -> Self {
        FuzzyPattern {
            needle: pattern
                .chars()
                .filter(|c| !c.is_whitespace())
                .filter_map(fold_fuzzy)
                .collect(),
        }
    }

    pub fn matches(&self, value: &str) -> bool {
        let mut want = self.needle.iter().peekable();
        for c in value.chars().filter_map(fold_fuzzy) {
            match want.peek() {
                None => return true,
                Some(&&w) if w == c => {
                    want.next();
                }
                Some(_) => {}
            }
        }
        want.peek().is_none()
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn like(p: &str, v: &str) -> bool {
        LikePattern::new(p, false).matches(v)
    }

    /// Reference: classic dynamic programming over (pattern, value) prefixes.
    fn like_reference(p: &str, v: &str) -> bool {
        let mut toks = Vec::new(); // None = %, Some(None) = _, Some(Some(c)) = literal
        let mut it = p.chars();
        while let Some(c) = it.next() {
            toks.push(match c {
                '%' => None,
                '_' => Some(None),
                '\\' => Some(Some(it.next().unwrap_or('\\'))),
                c => Some(Some(c)),
            });
        }
        let v: Vec<char> = v.chars().collect();
        let mut dp = vec![vec![false; v.len() + 1]; toks.len() + 1];
        dp[0][0] = true;
        for i in 1..=toks.len() {
            for j in 0..=v.len() {
                dp[i][j] = match toks[i - 1] {
                    None => dp[i - 1][j] || (j > 0 && dp[i][j - 1]),
                    Some(None) => j > 0 && dp[i - 1][j - 1],
                    Some(Some(c)) => j > 0 && dp[i - 1][j - 1] && v[j - 1] == c,
                };
            }
        }
        dp[toks.len()][v.len()]
    }

    #[test]
    fn like_basics() {
        assert!(like("abc", "abc"));
        assert!(!like("abc", "abcd"));
        assert!(like("a%", "abc"));
        assert!(like("%c", "abc"));
        assert!(like("%b%", "abc"));
        assert!(like("a_c", "abc"));
        assert!(!like("a_c", "ac"));
        assert!(like("%", ""));
        assert!(like("", ""));
        assert!(!like("", "a"));
        assert!(like("a%b%c", "aXXbYYc"));
        assert!(!like("a%b%c", "aXXcYYb"));
        assert!(like("%aa", "aaa"));
        assert!(like("a%%a", "aa"));
        assert!(!like("ABC", "abc"));
    }

    #[test]
    fn like_escapes() {
        assert!(like("100\\%", "100%"));
        assert!(!like("100\\%", "1000"));
        assert!(like("a\\_b", "a_b"));
        assert!(!like("a\\_b", "axb"));
        assert!(like("a\\\\b", "a\\b"));
        assert!(like("end\\", "end\\"));
    }

    #[test]
    fn ilike_unicode() {
        let p = LikePattern::new("%ÉCOLE%", true);
        assert!(p.matches("la grande école"));
        assert!(LikePattern::new("straße", true).matches("STRAßE"));
        assert!(LikePattern::new("_x", true).matches("ÅX"));
    }

    #[test]
    fn no_blowup_on_adversarial_input() {
        let value = "a".repeat(20_000);
        let pattern = format!("{}b", "%a".repeat(50));
        assert!(!like(&pattern, &value));
        let fuzzy = FuzzyPattern::new(&"a".repeat(200));
        assert!(!fuzzy.matches(&"a".repeat(199)));
    }

    #[test]
    fn fuzzy_matches_in_order_ignoring_case_and_accents() {
        let p = |x: &str| FuzzyPattern::new(x);
        assert!(p("ada").matches("Ada Lovelace"));
        assert!(p("adl").matches("Ada Lovelace"));
        assert!(p("ada l").matches("Ada Lovelace"));
        assert!(!p("lda").matches("Ada Lovelace"));
        assert!(p("ecole").matches("École Polytechnique"));
        assert!(p("zurich").matches("Zürich"));
        assert!(p("lodz").matches("Łódź"));
        assert!(p("noel").matches("noe\u{308}l"));
        assert!(p("").matches("anything"));
    }

    /// Long segments: KMP for literal runs, and several 64-bit words of Shift-And state for runs
    /// with `_`, against the reference.
    #[test]
    fn long_segments_agree_with_reference() {
        let value = format!("{}c{}", "ab".repeat(120), "ab".repeat(90));
        for p in [
            format!("%{}c%", "ab".repeat(100)),
            format!("%{}_b%", "ab".repeat(100)),
            format!("%{}%{}%", "ab".repeat(70), "ab".repeat(80)),
            format!("%{}%{}%", "ab".repeat(70), "ab".repeat(95)),
            format!("%a{}c{}", "_".repeat(130), "ab".repeat(90)),
            format!("%aab{}%", "ab".repeat(10)),
            format!("%{}%", "abaab"),
        ] {
            assert_eq!(like(&p, &value), like_reference(&p, &value), "{p}");
        }
    }

    proptest! {
        #[test]
        fn like_agrees_with_reference(p in "[ab%_\\\\]{0,8}", v in "[ab_%]{0,10}") {
            prop_assert_eq!(like(&p, &v), like_reference(&p, &v), "pattern {:?} value {:?}", p, v);
        }

        /// Segments long enough to span several state words, over values built to nearly match.
        #[test]
        fn long_patterns_agree_with_reference(
            parts in proptest::collection::vec(("[ab_]{60,80}", any::<bool>()), 1..3),
            reps in 20usize..40,
            tail in "[abc]{0,4}",
        ) {
            let p: String = parts.iter().map(|(seg, gap)| format!("{}{seg}", if *gap { "%" } else { "" })).collect::<String>() + "%";
            let v = format!("{}{tail}", "ab".repeat(reps * 2));
            prop_assert_eq!(like(&p, &v), like_reference(&p, &v), "pattern {:?}", p);
        }
    }
}
