import { InvalidInput } from '../../errors.js';

/**
 * Tokens of a SCIM filter. A `word` is an attribute path, an operator, a keyword or an unquoted
 * value; which one is for the parser to say, because operators and attribute names may be
 * spelled in any case.
 */
export type Token =
  | { kind: 'word'; text: string; pos: number }
  | { kind: 'string'; value: string; pos: number }
  | { kind: '(' | ')' | '[' | ']'; pos: number }
  | { kind: 'end'; pos: number };

/** What may stand after an operator: a JSON string, or an unquoted word as Entra and MS's tests send. */
export type ValueToken = Extract<Token, { kind: 'word' | 'string' }>;

export function filterError(detail: string): InvalidInput {
  return new InvalidInput('invalid_filter', detail, { scimType: 'invalidFilter' });
}

/** How a token reads in an error message. */
export function describeToken(t: Token): string {
  switch (t.kind) {
    case 'word':
      return JSON.stringify(t.text);
    case 'string':
      return `the string ${JSON.stringify(t.value)}`;
    case 'end':
      return 'the end of the filter';
    default:
      return `"${t.kind}"`;
  }
}

const PUNCT = new Set(['(', ')', '[', ']']);
const SPACE = /\s/;
const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

export class Lexer {
  private pos = 0;
  private peeked: Token | undefined;

  constructor(private readonly text: string) {}

  peek(): Token {
    this.peeked ??= this.lex();
    return this.peeked;
  }

  next(): Token {
    const t = this.peek();
    this.peeked = undefined;
    return t;
  }

  /**
   * Reads a comparison value. Unlike attribute names, an unquoted value may hold `(`, `[`, `"`
   * and the like (a date with an offset, an e-mail address), so it ends only at white space or
   * at a closing `)` / `]`. When no value is there, the token found instead.
   */
  value(): Token {
    if (this.peeked) {
      this.pos = this.peeked.pos;
      this.peeked = undefined;
    }
    this.skipSpace();
    const start = this.pos;
    if (this.text[start] === '"') return this.string();
    while (this.pos < this.text.length && !this.endsValue(this.text[this.pos]!)) this.pos++;
    return this.pos > start ? { kind: 'word', text: this.text.slice(start, this.pos), pos: start } : this.peek();
  }

  private endsValue(c: string): boolean {
    return SPACE.test(c) || c === ')' || c === ']';
  }

  private skipSpace(): void {
    while (this.pos < this.text.length && SPACE.test(this.text[this.pos]!)) this.pos++;
  }

  private lex(): Token {
    this.skipSpace();
    const start = this.pos;
    const c = this.text[start];
    if (c === undefined) return { kind: 'end', pos: start };
    if (PUNCT.has(c)) {
      this.pos++;
      return { kind: c as '(' | ')' | '[' | ']', pos: start };
    }
    if (c === '"') return this.string();
    while (this.pos < this.text.length) {
      const d = this.text[this.pos]!;
      if (SPACE.test(d) || PUNCT.has(d) || d === '"') break;
      this.pos++;
    }
    return { kind: 'word', text: this.text.slice(start, this.pos), pos: start };
  }

  /** A JSON string literal (RFC 8259 §7), read by hand so errors can say where. */
  private string(): ValueToken {
    const start = this.pos;
    let out = '';
    this.pos++;
    for (;;) {
      const c = this.text[this.pos];
      if (c === undefined) throw filterError(`unterminated string starting at position ${start}`);
      this.pos++;
      if (c === '"') return { kind: 'string', value: out, pos: start };
      if (c !== '\\') {
        out += c;
        continue;
      }
      out += this.escape(this.pos - 1);
    }
  }

  private escape(at: number): string {
    const e = this.text[this.pos];
    if (e === 'u') {
      const hex = this.text.slice(this.pos + 1, this.pos + 5);
      if (!/^[0-9a-fA-F]{4}$/.test(hex))
        throw filterError(`invalid \\u escape at position ${at}: expected four hex digits`);
      this.pos += 5;
      return String.fromCharCode(parseInt(hex, 16));
    }
    const mapped = e === undefined ? undefined : ESCAPES[e];
    if (mapped === undefined) throw filterError(`invalid escape "\\${e ?? ''}" at position ${at}`);
    this.pos++;
    return mapped;
  }
}
