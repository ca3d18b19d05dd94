/**
 * The subset of AWS IoT SQL that fleetgate's topic rules use, parsed once and evaluated per message:
 *
 * - `SELECT *`, `SELECT *, expr AS alias`, `SELECT a.b AS c, topic(2) AS thingName`, …
 * - `FROM '<topic filter>'` with MQTT wildcards (`+` one level, `#` the rest, last level only)
 * - `WHERE` with `=`, `<>`, `!=`, `<`, `<=`, `>`, `>=`, `AND`, `OR`, `NOT`, parentheses, string and
 *   number literals, `true` / `false`
 * - functions `topic()`, `topic(n)`, `principal()`, `clientid()`, `timestamp()`, `newuuid()`,
 *   `accountid()`, `traceid()`
 *
 * Semantics follow the 2016-03-23 SQL version: a field missing from the payload is Undefined, is left
 * out of the output, and makes every comparison with it Undefined (a WHERE that is not `true` drops
 * the message).
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-reference.html
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-functions.html
 * @see https://docs.aws.amazon.com/iot/latest/developerguide/topics.html#topicfilters
 */
import { randomUUID } from 'node:crypto';

/** Thrown when a rule's SQL uses a form this engine does not understand (fail at start, not per message). */
export class IotSqlError extends Error {
  override name = 'IotSqlError';
}

export type Expr =
  | { kind: 'literal'; value: string | number | boolean | null }
  | { kind: 'field'; path: string[] }
  | { kind: 'call'; name: string; args: Expr[] }
  | { kind: 'not'; operand: Expr }
  | { kind: 'binary'; op: BinaryOp; left: Expr; right: Expr };

type BinaryOp = '=' | '<>' | '<' | '<=' | '>' | '>=' | 'AND' | 'OR';

export type Projection = { kind: 'all' } | { kind: 'expr'; expr: Expr; alias: string };

export interface IotSqlStatement {
  readonly sql: string;
  readonly select: readonly Projection[];
  readonly topicFilter: string;
  readonly where?: Expr;
}

/** What the rules engine knows about a message besides its payload. */
export interface MessageContext {
  topic: string;
  /** Certificate id of the publisher (what `principal()` returns for X.509 clients). */
  principal?: string;
  clientId?: string;
  /** Milliseconds since the epoch; defaults to the current time. */
  timestamp?: number;
  accountId?: string;
  traceId?: string;
}

/** The evaluation of one statement on one message. */
export type SqlResult = { matched: false } | { matched: true; output: unknown };

const UNDEFINED = Symbol('Undefined');
type Value = string | number | boolean | null | object | typeof UNDEFINED;

type Token =
  | { type: 'ident'; text: string }
  | { type: 'string'; text: string }
  | { type: 'number'; value: number }
  | { type: 'op'; text: string };

function tokenize(sql: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < sql.length) {
    const ch = sql.charAt(i);
    if (/\s/.test(ch)) {
      i += 1;
    } else if (ch === "'" || ch === '"') {
      const end = sql.indexOf(ch, i + 1);
      if (end < 0) throw new IotSqlError(`unterminated string at ${i}: ${sql}`);
      tokens.push({ type: 'string', text: sql.slice(i + 1, end) });
      i = end + 1;
    } else if (/[0-9]/.test(ch) || (ch === '-' && /[0-9]/.test(sql.charAt(i + 1)))) {
      const match = /^-?[0-9]+(\.[0-9]+)?/.exec(sql.slice(i));
      const text = match?.[0] ?? ch;
      tokens.push({ type: 'number', value: Number(text) });
      i += text.length;
    } else if (/[A-Za-z_$]/.test(ch)) {
      const match = /^[A-Za-z_$][A-Za-z0-9_$]*/.exec(sql.slice(i));
      const text = match?.[0] ?? ch;
      tokens.push({ type: 'ident', text });
      i += text.length;
    } else {
      const two = sql.slice(i, i + 2);
      if (['<>', '!=', '<=', '>='].includes(two)) {
        tokens.push({ type: 'op', text: two === '!=' ? '<>' : two });
        i += 2;
      } else if ('*,().=<>'.includes(ch)) {
        tokens.push({ type: 'op', text: ch });
        i += 1;
      } else {
        throw new IotSqlError(`unexpected "${ch}" at ${i}: ${sql}`);
      }
    }
  }
  return tokens;
}

const KEYWORDS = new Set(['SELECT', 'FROM', 'WHERE', 'AS', 'AND', 'OR', 'NOT']);
const FUNCTIONS = new Set(['topic', 'principal', 'clientid', 'timestamp', 'newuuid', 'accountid', 'traceid']);

class Parser {
  private position = 0;
  constructor(
    private readonly tokens: Token[],
    private readonly sql: string,
  ) {}

  parse(): IotSqlStatement {
    this.keyword('SELECT');
    const select: Projection[] = [];
    do {
      select.push(this.projection());
    } while (this.op(','));
    this.keyword('FROM');
    const from = this.next();
    if (from?.type !== 'string') throw this.error('FROM needs a quoted topic filter');
    validateTopicFilter(from.text);
    let where: Expr | undefined;
    if (this.isKeyword('WHERE')) {
      this.position += 1;
      where = this.orExpr();
    }
    if (this.position < this.tokens.length) throw this.error('unexpected text after the statement');
    return { sql: this.sql, select, topicFilter: from.text, ...(where ? { where } : {}) };
  }

  private projection(): Projection {
    if (this.op('*')) return { kind: 'all' };
    const expr = this.orExpr();
    let alias: string | undefined;
    if (this.isKeyword('AS')) {
      this.position += 1;
      const name = this.next();
      if (name?.type !== 'ident' && name?.type !== 'string') throw this.error('AS needs a name');
      alias = name.text;
    } else if (expr.kind === 'field') {
      alias = expr.path[expr.path.length - 1];
    } else if (expr.kind === 'call') {
      alias = expr.name;
    }
    if (!alias) throw this.error('an expression in SELECT needs AS <name>');
    return { kind: 'expr', expr, alias };
  }

  private orExpr(): Expr {
    let left = this.andExpr();
    while (this.isKeyword('OR')) {
      this.position += 1;
      left = { kind: 'binary', op: 'OR', left, right: this.andExpr() };
    }
    return left;
  }

  private andExpr(): Expr {
    let left = this.notExpr();
    while (this.isKeyword('AND')) {
      this.position += 1;
      left = { kind: 'binary', op: 'AND', left, right: this.notExpr() };
    }
    return left;
  }

  private notExpr(): Expr {
    if (this.isKeyword('NOT')) {
      this.position += 1;
      return { kind: 'not', operand: this.notExpr() };
    }
    return this.comparison();
  }

  private comparison(): Expr {
    const left = this.primary();
    const token = this.tokens[this.position];
    if (token?.type === 'op' && ['=', '<>', '<', '<=', '>', '>='].includes(token.text)) {
      this.position += 1;
      return { kind: 'binary', op: token.text as BinaryOp, left, right: this.primary() };
    }
    return left;
  }

  private primary(): Expr {
    const token = this.next();
    if (!token) throw this.error('unexpected end of statement');
    if (token.type === 'string') return { kind: 'literal', value: token.text };
    if (token.type === 'number') return { kind: 'literal', value: token.value };
    if (token.type === 'op' && token.text === '(') {
      const inner = this.orExpr();
      if (!this.op(')')) throw this.error('missing )');
      return inner;
    }
    if (token.type !== 'ident' || KEYWORDS.has(token.text.toUpperCase())) {
      throw this.error(`unexpected ${JSON.stringify(token)}`);
    }
    const lower = token.text.toLowerCase();
    if (lower === 'true' || lower === 'false') return { kind: 'literal', value: lower === 'true' };
    if (lower === 'null') return { kind: 'literal', value: null };
    if (this.op('(')) {
      if (!FUNCTIONS.has(lower)) throw this.error(`function ${token.text}() is not supported locally`);
      const args: Expr[] = [];
      if (!this.op(')')) {
        do {
          args.push(this.orExpr());
        } while (this.op(','));
        if (!this.op(')')) throw this.error('missing ) after function arguments');
      }
      return { kind: 'call', name: lower, args };
    }
    const path = [token.text];
    while (this.op('.')) {
      const part = this.next();
      if (part?.type !== 'ident') throw this.error('expected a field name after "."');
      path.push(part.text);
    }
    return { kind: 'field', path };
  }

  private next(): Token | undefined {
    const token = this.tokens[this.position];
    this.position += 1;
    return token;
  }

  private op(text: string): boolean {
    const token = this.tokens[this.position];
    if (token?.type === 'op' && token.text === text) {
      this.position += 1;
      return true;
    }
    return false;
  }

  private isKeyword(word: string): boolean {
    const token = this.tokens[this.position];
    return token?.type === 'ident' && token.text.toUpperCase() === word;
  }

  private keyword(word: string): void {
    if (!this.isKeyword(word)) throw this.error(`expected ${word}`);
    this.position += 1;
  }

  private error(message: string): IotSqlError {
    return new IotSqlError(`${message} (token ${this.position + 1}): ${this.sql}`);
  }
}

/**
 * Parses a rule's SQL statement.
 * @throws IotSqlError when the statement uses a form outside the supported subset.
 */
export function parseIotSql(sql: string): IotSqlStatement {
  return new Parser(tokenize(sql), sql).parse();
}

/** @throws IotSqlError when `#` is not the last level or a wildcard shares a level with other text. */
export function validateTopicFilter(filter: string): void {
  const levels = filter.split('/');
  levels.forEach((level, index) => {
    if (level.includes('#') && (level !== '#' || index !== levels.length - 1)) {
      throw new IotSqlError(`topic filter ${filter}: "#" must be a whole level and the last one`);
    }
    if (level.includes('+') && level !== '+') {
      throw new IotSqlError(`topic filter ${filter}: "+" must be a whole level`);
    }
  });
}

/**
 * MQTT topic matching: `+` matches exactly one level (possibly empty), a trailing `#` matches the
 * parent level and everything below it. Wildcards in the first level do not match topics that
 * start with `$` (reserved topics such as `$aws/events/...` must be named explicitly).
 */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i += 1) {
    const level = f[i];
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Runs a parsed statement on one message: topic match, WHERE, then SELECT. */
export function evaluateIotSql(
  statement: IotSqlStatement,
  payload: unknown,
  context: MessageContext,
): SqlResult {
  if (!topicMatches(statement.topicFilter, context.topic)) return { matched: false };
  const env: Env = { payload, context, timestamp: context.timestamp ?? Date.now() };
  if (statement.where && evaluate(statement.where, env) !== true) return { matched: false };
  const output: Record<string, unknown> = {};
  for (const projection of statement.select) {
    if (projection.kind === 'all') {
      // SELECT * on a non-object payload passes the payload through unchanged.
      if (!isObject(payload)) {
        if (statement.select.length === 1) return { matched: true, output: payload };
        continue;
      }
      Object.assign(output, payload);
    } else {
      const value = evaluate(projection.expr, env);
      if (value !== UNDEFINED) output[projection.alias] = value;
    }
  }
  return { matched: true, output };
}

interface Env {
  payload: unknown;
  context: MessageContext;
  timestamp: number;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function evaluate(expr: Expr, env: Env): Value {
  switch (expr.kind) {
    case 'literal':
      return expr.value;
    case 'field': {
      let current: unknown = env.payload;
      for (const key of expr.path) {
        if (!isObject(current) || !(key in current)) return UNDEFINED;
        current = current[key];
      }
      return current as Value;
    }
    case 'call':
      return call(
        expr.name,
        expr.args.map((arg) => evaluate(arg, env)),
        env,
      );
    case 'not': {
      const operand = evaluate(expr.operand, env);
      return typeof operand === 'boolean' ? !operand : UNDEFINED;
    }
    case 'binary':
      return binary(expr.op, evaluate(expr.left, env), evaluate(expr.right, env));
  }
}

function call(name: string, args: Value[], env: Env): Value {
  switch (name) {
    case 'topic': {
      if (args.length === 0) return env.context.topic;
      const n = args[0];
      if (typeof n !== 'number') return UNDEFINED;
      return env.context.topic.split('/')[n - 1] ?? UNDEFINED;
    }
    case 'principal':
      return env.context.principal ?? UNDEFINED;
    case 'clientid':
      // AWS returns "n/a" when the message did not come from an MQTT client.
      return env.context.clientId ?? 'n/a';
    case 'timestamp':
      return env.timestamp;
    case 'newuuid':
      return randomUUID();
    case 'accountid':
      return env.context.accountId ?? '123456789012';
    case 'traceid':
      return env.context.traceId ?? randomUUID();
    default:
      return UNDEFINED;
  }
}

function binary(op: BinaryOp, left: Value, right: Value): Value {
  if (op === 'AND' || op === 'OR') {
    if (typeof left !== 'boolean' || typeof right !== 'boolean') return UNDEFINED;
    return op === 'AND' ? left && right : left || right;
  }
  if (left === UNDEFINED || right === UNDEFINED) return UNDEFINED;
  if (op === '=' || op === '<>') {
    const equal = JSON.stringify(left) === JSON.stringify(right);
    return op === '=' ? equal : !equal;
  }
  const comparable =
    (typeof left === 'number' && typeof right === 'number') ||
    (typeof left === 'string' && typeof right === 'string');
  if (!comparable) return UNDEFINED;
  const a = left as number | string;
  const b = right as number | string;
  switch (op) {
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    case '>':
      return a > b;
    case '>=':
      return a >= b;
  }
}
