/** The reference snappy implementation the decoder is fuzzed against (it ships no types). */
declare module 'snappyjs' {
  export function compress<T extends Uint8Array | ArrayBuffer>(data: T): T;
  export function uncompress<T extends Uint8Array | ArrayBuffer>(data: T, maxLength?: number): T;
}
