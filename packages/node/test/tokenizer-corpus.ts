/**
 * Strings that exercise tokenizer edge cases: unicode, emoji (byte fallback / split byte-level pieces),
 * repeated and leading/trailing spaces, newlines and CRLF, contractions in both cases, digits, special-token
 * text, non-breaking and ideographic spaces.
 */
export const TOKENIZER_CORPUS: readonly string[] = [
  'Once upon a time', 'Hello world', '', ' ', '  ', '\n', 'a\n\nb', 'Hello, World! How are you?',
  "I'm sure you'll see they've done it. HE'S HERE, WE'LL GO", 'héllo wörld — naïve café', '日本語のテキスト',
  'emoji 😀🎉👍🏽 and 🇫🇷 flags', 'multiple   spaces    here', 'tabs\tand\ttabs', 'trailing spaces   ',
  '   leading spaces', 'line1\nline2\r\nline3', 'numbers 1234567890 and 3.14159 and 1,000,000',
  'code: function f(x) { return x * 2; } // comment', 'URLs https://example.com/path?q=1&r=2',
  'mixed: αβγ δεζ ЖЗИ اَلْعَرَبِيَّةُ', '<|im_start|>user\nHi there<|im_end|>\n', '<s>Once</s> upon',
  'special <|endoftext|> in middle', 'Ω≈ç√∫˜µ≤≥÷', '\u00a0nbsp\u2003emspace\u3000ideo', 'zero\u200bwidth',
  'a'.repeat(50), '!!!???...,,,', "don't won't can't shouldn't", 'CamelCaseIdentifier snake_case_id kebab-case-id',
  '$100 + 200 = <300> ^ ~ |pipe|', 'x\n \n y', ' \n', '\n\n\n', 'end.\n', 'ﬁ ligature Å Å',
];

/** True when `s` contains text some tokenizer would read as a special token. */
export function hasSpecialText(s: string): boolean {
  return /<\|[a-z_]+\|>|<\/?s>/.test(s);
}
