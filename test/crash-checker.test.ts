/**
 * The judgement the crash test and the soak rest on (test/helpers/workload.ts, `Register`): which states a register
 * may hold after a batch of acked, refused and unknown writes. Each case here is a violation the checker must
 * report, or a legitimate outcome it must accept; without these, a checker that accepts everything would pass the
 * crash test too. (No server, no database: the same in both store runs.)
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Register, type Outcome, type State } from './helpers/workload.js';

/** A register with attempts at given (sent, answered) times; answered = Infinity for no answer. */
function register(name: string, base: State, attempts: [Outcome, string, number, number, Partial<State>?][]): Register {
  const reg = new Register(name, base);
  for (const [outcome, value, sentAt, answeredAt, extra] of attempts) {
    const a = reg.begin(`write ${value}`, value, extra);
    Object.assign(a, { outcome, sentAt, answeredAt });
  }
  return reg;
}

const verdict = (reg: Register, observed: State) => {
  const v = reg.judge(observed);
  return 'match' in v ? `ok: ${v.match.what} (${v.match.outcome})` : v.problem;
};

describe('crash checker: what a register may hold', () => {
  test('an acknowledged write that is missing is a violation', () => {
    const reg = register('hostname certificate c1', { value: 'absent' }, [['acked', 'live', 0, 5, { detail: 'id1', statuses: ['initializing'] }]]);
    assert.equal(
      verdict(reg, { value: 'absent' }),
      'hostname certificate c1: holds absent, which no write explains; allowed: write live (acked) = live [initializing] (id1); ' +
        'attempts since the last check: acked',
    );
    assert.equal(verdict(reg, { value: 'live', detail: 'id1', statuses: ['active'] }), 'ok: write live (acked)');
  });

  test('acknowledged content must be exact: another id or timestamp is a violation', () => {
    const reg = register('Access CA ca-1', { value: 'absent' }, [['acked', 'ca-1|', 0, 5, { detail: '["id1","2026-01-01T00:00:00.000Z"]' }]]);
    assert.match(verdict(reg, { value: 'ca-1|', detail: '["id2","2026-01-01T00:00:00.000Z"]' }), /^Access CA ca-1: holds ca-1\| \(\["id2"/);
  });

  test('a refused write that took effect is a violation; its absence is the state before', () => {
    const reg = register('Access CA ca-2', { value: 'absent' }, [['refused', 'ca-2|', 0, 5]]);
    assert.match(verdict(reg, { value: 'ca-2|' }), /^Access CA ca-2: holds ca-2\|, which no write explains; allowed: the state before \(base\) = absent;/);
    assert.equal(verdict(reg, { value: 'absent' }), 'ok: the state before (base)');
  });

  test('a write without an answer may or may not have happened', () => {
    const reg = register('zone AOP setting', { value: 'false' }, [['unknown', 'true', 0, Infinity]]);
    assert.equal(verdict(reg, { value: 'true' }), 'ok: write true (unknown)');
    assert.equal(verdict(reg, { value: 'false' }), 'ok: the state before (base)');
  });

  test('a write sent after another was answered must win; concurrent writes may end either way', () => {
    const sequential = register('zone AOP setting', { value: 'false' }, [
      ['acked', 'true', 0, 10],
      ['acked', 'false', 20, 30],
    ]);
    assert.match(verdict(sequential, { value: 'true' }), /^zone AOP setting: holds true, which no write explains; allowed: write false \(acked\) = false;/);
    assert.equal(verdict(sequential, { value: 'false' }), 'ok: write false (acked)');
    const concurrent = register('zone AOP setting', { value: 'false' }, [
      ['acked', 'true', 0, 30],
      ['acked', 'false', 10, 20],
    ]);
    assert.equal(verdict(concurrent, { value: 'true' }), 'ok: write true (acked)');
    assert.equal(verdict(concurrent, { value: 'false' }), 'ok: write false (acked)');
    // Once anything was acknowledged, the state before is gone.
    assert.match(verdict(register('x', { value: 'a' }, [['acked', 'b', 0, 1]]), { value: 'a' }), /^x: holds a, which no write explains/);
  });

  test('an answered 503 committed, if at all, before its answer: a write sent later wins over it', () => {
    const reg = register('zone AOP setting', { value: 'false' }, [
      ['unknown', 'true', 0, 10],
      ['acked', 'false', 20, 30],
    ]);
    assert.match(verdict(reg, { value: 'true' }), /^zone AOP setting: holds true, which no write explains/);
    // Without an answer (the process died) it may have committed at any moment until then.
    const killed = register('zone AOP setting', { value: 'false' }, [
      ['unknown', 'true', 0, Infinity],
      ['acked', 'false', 20, 30],
    ]);
    assert.equal(verdict(killed, { value: 'true' }), 'ok: write true (unknown)');
  });

  test('rows of a bulk group from two PUTs are a PUT half applied', () => {
    const reg = register('bulk group 0', { value: 'absent' }, [
      ['acked', '0e1d2e', 0, 10, { detail: 'a b c', statuses: ['pending_deployment', 'pending_deployment', 'pending_deployment'] }],
      ['unknown', '3d3d3d', 5, Infinity],
    ]);
    assert.match(
      verdict(reg, { value: '0e1d3d', detail: 'a b d', statuses: ['active', 'active', 'pending_deployment'] }),
      /^bulk group 0: holds 0e1d3d \[active,pending_deployment\] \(a b d\), which no write explains; allowed: write 0e1d2e \(acked\) = 0e1d2e \[pending_deployment\] \(a b c\), carried by 2 of 3 hostnames; write 3d3d3d \(unknown\) = 3d3d3d, carried by 1 of 3 hostnames;/,
    );
    assert.equal(verdict(reg, { value: '3d3d3d', detail: 'x y z', statuses: ['pending_deployment', 'active', 'active'] }), 'ok: write 3d3d3d (unknown)');
  });

  test('a status never moves backwards without a write, nor across from deletion to deployment', () => {
    const reg = register('hostname certificate c3', { value: 'live', detail: 'id3', statuses: ['active'] }, []);
    assert.match(verdict(reg, { value: 'live', detail: 'id3', statuses: ['pending_deployment'] }), /^hostname certificate c3: holds live \[pending_deployment\]/);
    assert.equal(verdict(reg, { value: 'live', detail: 'id3', statuses: ['active'] }), 'ok: the state before (base)');
    const deleting = register('hostname certificate c4', { value: 'deleting', detail: 'id4', statuses: ['pending_deletion'] }, []);
    assert.equal(verdict(deleting, { value: 'deleting', detail: 'id4', statuses: ['deleted'] }), 'ok: the state before (base)');
    assert.match(verdict(deleting, { value: 'live', detail: 'id4', statuses: ['active'] }), /^hostname certificate c4: holds live \[active\]/);
  });
});
