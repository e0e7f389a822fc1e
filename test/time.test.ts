/** The fast ISO-8601 writer and reader answer exactly what Date's own toISOString and parser do. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseIso, toIso } from '../src/util/time.js';

const same = (a: Date, b: Date) => assert.equal(Number.isNaN(a.getTime()) ? 'invalid' : a.getTime(), Number.isNaN(b.getTime()) ? 'invalid' : b.getTime());

describe('ISO-8601 timestamps', () => {
  test('toIso writes what toISOString writes, for random and boundary instants', () => {
    const instants = [0, -1, 1, 999, Date.UTC(1000, 0, 1), Date.UTC(999, 11, 31, 23, 59, 59, 999), Date.UTC(9999, 11, 31, 23, 59, 59, 999),
      Date.UTC(10000, 0, 1), Date.UTC(-1, 0, 1), Date.UTC(2024, 1, 29, 1, 2, 3, 4), 8.64e15, -8.64e15];
    for (let i = 0; i < 20000; i++) instants.push(Math.floor((Math.random() - 0.3) * 4e14));
    for (const t of instants) assert.equal(toIso(new Date(t)), new Date(t).toISOString(), `instant ${t}`);
  });

  test('toIso throws the same RangeError as toISOString for an invalid date', () => {
    assert.throws(() => new Date(NaN).toISOString(), RangeError);
    assert.throws(() => toIso(new Date(NaN)), RangeError);
  });

  test('parseIso reads what new Date reads: every text toIso writes, and the unusual ones', () => {
    for (let i = 0; i < 20000; i++) {
      const text = new Date(Math.floor((Math.random() - 0.3) * 4e14)).toISOString();
      same(parseIso(text), new Date(text));
    }
    const odd = ['2026-02-30T00:00:00.000Z', '2026-13-01T00:00:00.000Z', '2026-01-01T24:00:00.000Z', '2026-00-10T00:00:00.000Z',
      '2026-04-31T10:00:00.000Z', '0050-01-01T00:00:00.000Z', '0999-12-31T23:59:59.999Z', '2026-01-01T00:00:60.000Z',
      '2026-01-01T00:60:00.000Z', '2026-01-01 00:00:00.000Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00.000+01:00',
      '+010000-01-01T00:00:00.000Z', 'not a date', '', '2026-01-00T00:00:00.000Z'];
    for (const text of odd) same(parseIso(text), new Date(text));
  });
});
