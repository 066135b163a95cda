// Types for the `xsalsa20` package (no @types installed): only what xsalsa20-memory-fix.ts uses.
declare module 'xsalsa20' {
  interface XSalsa20 {
    update(input: Uint8Array, output?: Uint8Array): Uint8Array;
    finalize(): void;
  }
  function xsalsa20(nonce: Uint8Array, key: Uint8Array): XSalsa20;
  export default xsalsa20;
}
