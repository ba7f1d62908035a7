// The few parts of des.js (no published types) that VNC authentication uses.
declare module 'des.js' {
  interface Cipher {
    update(data: Uint8Array | number[]): number[];
    final(): number[];
  }
  export const DES: { create(opts: { type: 'encrypt' | 'decrypt'; key: Uint8Array | number[] }): Cipher };
}
