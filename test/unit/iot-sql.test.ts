import { describe, expect, it } from 'vitest';
import { evaluateIotSql, IotSqlError, parseIotSql, topicMatches } from '../../local/iot-sql';

describe('topicMatches', () => {
  it.each([
    ['a/b', 'a/b', true],
    ['a/b', 'a/c', false],
    ['a/+', 'a/b', true],
    ['a/+', 'a/b/c', false],
    ['a/+/c', 'a//c', true],
    ['a/#', 'a', true],
    ['a/#', 'a/b/c', true],
    ['#', 'a/b', true],
    ['#', '$aws/events/x', false],
    ['+/events/x', '$aws/events/x', false],
    ['$aws/events/presence/+/+', '$aws/events/presence/connected/dev-1', true],
    ['$aws/events/presence/+/+', '$aws/events/presence/connected', false],
    ['$aws/events/thing/+/+', '$aws/events/thing/t1/created', true],
    ['fleetgate/+/rotate/request', 'fleetgate/t1/rotate/request', true],
    ['fleetgate/+/rotate/request', 'fleetgate/t1/rotate/response', false],
  ])('%s matches %s: %s', (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected);
  });
});

describe('evaluateIotSql', () => {
  const payload = { color: 'red', temperature: 50, nested: { level: 3 }, active: true };
  const context = {
    topic: 'devices/dev-1/state',
    principal: 'abc',
    clientId: 'dev-1',
    timestamp: 1700000000000,
  };
  it.each([
    ["SELECT * FROM 'devices/+/state'", payload],
    ["SELECT color FROM 'devices/+/state'", { color: 'red' }],
    ["SELECT color AS rgb, temperature FROM 'devices/+/state'", { rgb: 'red', temperature: 50 }],
    ["SELECT nested.level AS level FROM 'devices/#'", { level: 3 }],
    ["SELECT missing, color FROM 'devices/#'", { color: 'red' }],
    [
      "SELECT *, topic(2) AS thingName, topic() AS t, principal() AS p, clientid() AS c, timestamp() AS ts FROM 'devices/+/state'",
      { ...payload, thingName: 'dev-1', t: 'devices/dev-1/state', p: 'abc', c: 'dev-1', ts: 1700000000000 },
    ],
    ["SELECT topic(9) AS none, 'x' AS lit, 42 AS n FROM 'devices/#'", { lit: 'x', n: 42 }],
    ["select color as c from 'devices/#' where temperature >= 50", { c: 'red' }],
    ["SELECT color FROM 'devices/#' WHERE color = 'red' AND temperature > 10", { color: 'red' }],
    ["SELECT color FROM 'devices/#' WHERE color = 'blue' OR temperature < 100", { color: 'red' }],
    ["SELECT color FROM 'devices/#' WHERE NOT (color <> 'red')", { color: 'red' }],
    ["SELECT color FROM 'devices/#' WHERE active = true AND nested.level != 4", { color: 'red' }],
    ["SELECT color FROM 'devices/#' WHERE topic(2) = 'dev-1'", { color: 'red' }],
  ])('%s', (sql, expected) => {
    expect(evaluateIotSql(parseIotSql(sql), payload, context)).toEqual({ matched: true, output: expected });
  });

  it.each([
    ["SELECT * FROM 'other/#'"],
    ["SELECT * FROM 'devices/#' WHERE color = 'blue'"],
    ["SELECT * FROM 'devices/#' WHERE temperature > 50"],
    ["SELECT * FROM 'devices/#' WHERE missing = 1"],
    ["SELECT * FROM 'devices/#' WHERE missing <> 1"],
    ["SELECT * FROM 'devices/#' WHERE color > 5"],
    ["SELECT * FROM 'devices/#' WHERE color = 'red' AND missing = 1"],
  ])('drops the message: %s', (sql) => {
    expect(evaluateIotSql(parseIotSql(sql), payload, context)).toEqual({ matched: false });
  });

  it('returns "n/a" for clientid() without an MQTT client and Undefined for principal()', () => {
    const result = evaluateIotSql(
      parseIotSql("SELECT clientid() AS c, principal() AS p FROM 'a'"),
      {},
      { topic: 'a' },
    );
    expect(result).toEqual({ matched: true, output: { c: 'n/a' } });
  });

  it('passes a non-JSON payload through SELECT *', () => {
    expect(evaluateIotSql(parseIotSql("SELECT * FROM 'a'"), 'raw text', { topic: 'a' })).toEqual({
      matched: true,
      output: 'raw text',
    });
  });

  it.each([
    ["SELECT FROM 'a'"],
    ['SELECT * FROM a'],
    ["SELECT * FROM 'a/#/b'"],
    ["SELECT * FROM 'a/b+'"],
    ["SELECT upper(color) AS c FROM 'a'"],
    ["SELECT * FROM 'a' WHERE"],
    ["SELECT * FROM 'a' LIMIT 1"],
    ["SELECT color + 1 AS c FROM 'a'"],
  ])('rejects unsupported or malformed SQL: %s', (sql) => {
    expect(() => parseIotSql(sql)).toThrow(IotSqlError);
  });
});
