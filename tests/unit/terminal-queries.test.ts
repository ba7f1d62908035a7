import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stripTerminalQueries } from '../../core/node/console/terminal-queries.ts';

test('cursor-position and device-attribute queries are removed from history, the rest kept', () => {
  const history = Buffer.from('guest# \x1b[6nls\r\nbin  etc\r\n\x1b[0cguest# \x1b[5n\x1b[?6n\x1b[>c\x1b[31mred\x1b[0m', 'latin1');
  assert.equal(stripTerminalQueries(history).toString('latin1'), 'guest# ls\r\nbin  etc\r\nguest# \x1b[31mred\x1b[0m');
});

test('history without queries is returned as is; binary bytes survive', () => {
  const b = Buffer.from([0x1b, 0x5b, 0x32, 0x4a, 0xff, 0x00, 0x80]);
  assert.equal(stripTerminalQueries(b), b);
  const withQuery = Buffer.concat([b, Buffer.from('\x1b[6n', 'latin1'), b]);
  assert.deepEqual(stripTerminalQueries(withQuery), Buffer.concat([b, b]));
});
