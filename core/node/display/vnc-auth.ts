// RFB "VNC Authentication" (security type 2): the server sends 16 random bytes, the client
// returns them DES-encrypted with the password (8 bytes, zero-padded, each byte's bits reversed,
// a quirk of the original VNC). Weak by today's standards: used only for `hangar display --listen`
// on loopback by default, with a random password made for one run.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import desjs from 'des.js';

function reverseBits(b: number): number {
  let r = 0;
  for (let i = 0; i < 8; i++) r |= ((b >> i) & 1) << (7 - i);
  return r;
}

/** The client's answer to a challenge for a password (only its first 8 characters count). */
export function vncAuthResponse(password: string, challenge: Uint8Array): Buffer {
  const key = Buffer.alloc(8);
  Buffer.from(password, 'latin1').copy(key, 0, 0, 8);
  const cipher = desjs.DES.create({ type: 'encrypt', key: [...key].map(reverseBits) });
  return Buffer.from(cipher.update(challenge));
}

export function checkVncAuthResponse(password: string, challenge: Uint8Array, response: Uint8Array): boolean {
  const want = vncAuthResponse(password, challenge);
  return response.length === want.length && timingSafeEqual(want, response);
}

/** 8 characters (all VNC authentication uses) from an alphabet without look-alikes. */
export function oneTimeVncPassword(): string {
  const alphabet = 'abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789';
  return [...randomBytes(8)].map((b) => alphabet[b % alphabet.length]).join('');
}
