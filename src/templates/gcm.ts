import { type Cipher, createCipheriv, randomFillSync } from 'node:crypto'

/**
 * AES-256-GCM encryption (NIST SP 800-38D) with a 96-bit random IV, a 128-bit tag and one fixed
 * block of additional data, for many short messages under one key. What a Node cipher costs per
 * message is mostly making it (one context per IV); here the block cipher is one long-lived
 * AES-256-ECB context of OpenSSL, run over the counter blocks of 256 IVs at a time, and GHASH is
 * computed in JavaScript without data-dependent branches or table indexes. The output is exactly
 * what `createCipheriv('aes-256-gcm', key, iv)` gives for the same IV: any GCM decrypter reads it.
 */

const BLOCK = 16
export const GCM_IV_BYTES = 12
export const GCM_TAG_BYTES = 16
/** IVs drawn, and their counter blocks encrypted, at a time. */
const POOL = 256
/** Keystream blocks ready per IV (the plaintext of most messages fits); more are made when needed. */
const READY_BLOCKS = 6
/** Per IV: E(J0) for the tag, then the keystream. */
const STRIDE = (1 + READY_BLOCKS) * BLOCK

export interface GcmSealer {
  /**
   * Encrypts `plaintext` under a fresh random IV and writes `iv | ciphertext | tag` into `out` at
   * `at`; gives the offset after the tag. `out` needs room for the ciphertext padded to whole blocks.
   */
  seal(plaintext: Buffer, out: Buffer, at: number): number
}

/** GF(2^128) product `(y0..y3) * H` by the table of `H * x^i`, bit by bit under masks. */
function multiply(table: Int32Array, y0: number, y1: number, y2: number, y3: number, result: Int32Array): void {
  let z0 = 0
  let z1 = 0
  let z2 = 0
  let z3 = 0
  let j = 0
  for (let word = 0; word < 4; word++) {
    const y = word === 0 ? y0 : word === 1 ? y1 : word === 2 ? y2 : y3
    for (let bit = 0; bit < 32; bit++, j += 4) {
      // All ones when the bit (most significant first) is set, else zero.
      const mask = (y << bit) >> 31
      z0 ^= (table[j] as number) & mask
      z1 ^= (table[j + 1] as number) & mask
      z2 ^= (table[j + 2] as number) & mask
      z3 ^= (table[j + 3] as number) & mask
    }
  }
  result[0] = z0
  result[1] = z1
  result[2] = z2
  result[3] = z3
}

/** A sealer for one 32-byte key and one additional-data block of at most 16 bytes. */
export function createGcmSealer(key: Buffer, aad: Buffer): GcmSealer {
  if (key.length !== 32 || aad.length > BLOCK)
    throw new RangeError('createGcmSealer: a 32-byte key, at most 16 bytes of aad')
  const ecb: Cipher = createCipheriv('aes-256-ecb', key, null)
  ecb.setAutoPadding(false)
  const encryptBlocks = (blocks: Buffer) => ecb.update(blocks)

  // H = E(0^128); table[4i..4i+3] = H * x^i, in GCM's bit order (x^1 is a right shift).
  const hash = encryptBlocks(Buffer.alloc(BLOCK))
  const table = new Int32Array(128 * 4)
  let v0 = hash.readInt32BE(0)
  let v1 = hash.readInt32BE(4)
  let v2 = hash.readInt32BE(8)
  let v3 = hash.readInt32BE(12)
  for (let i = 0; i < 128; i++) {
    table[4 * i] = v0
    table[4 * i + 1] = v1
    table[4 * i + 2] = v2
    table[4 * i + 3] = v3
    const carry = v3 & 1
    v3 = (v3 >>> 1) | (v2 << 31)
    v2 = (v2 >>> 1) | (v1 << 31)
    v1 = (v1 >>> 1) | (v0 << 31)
    v0 = (v0 >>> 1) ^ (0xe1000000 & -carry)
  }
  const product = new Int32Array(4)
  // GHASH over the additional data, the same for every message.
  const aadBlock = Buffer.alloc(BLOCK)
  aad.copy(aadBlock)
  multiply(
    table,
    aadBlock.readInt32BE(0),
    aadBlock.readInt32BE(4),
    aadBlock.readInt32BE(8),
    aadBlock.readInt32BE(12),
    product,
  )
  const aadHash = Int32Array.from(product)
  const aadBits = aad.length * 8

  const ivs = Buffer.alloc(POOL * GCM_IV_BYTES)
  // Per IV, its counter blocks J0 = iv | 1, then iv | 2 ... (the counters are written once).
  const counters = Buffer.alloc(POOL * STRIDE)
  for (let k = 0; k < POOL; k++) {
    for (let b = 0; b <= READY_BLOCKS; b++) counters.writeUInt32BE(b + 1, k * STRIDE + b * BLOCK + GCM_IV_BYTES)
  }
  let keystream = Buffer.alloc(0)
  let next = POOL

  /** Counter block `counter` of an IV (J0 is counter 1, the plaintext starts at 2) into `into` at `at`. */
  function counterBlock(iv: Buffer, ivAt: number, counter: number, into: Buffer, at: number) {
    for (let i = 0; i < GCM_IV_BYTES; i++) into[at + i] = iv[ivAt + i] as number
    into.writeUInt32BE(counter, at + GCM_IV_BYTES)
  }

  function refill() {
    randomFillSync(ivs)
    for (let k = 0; k < POOL; k++) {
      for (let b = 0; b <= READY_BLOCKS; b++) {
        const at = k * STRIDE + b * BLOCK
        for (let i = 0; i < GCM_IV_BYTES; i++) counters[at + i] = ivs[k * GCM_IV_BYTES + i] as number
      }
    }
    // The spent keystream is wiped before it is let go.
    keystream.fill(0)
    keystream = encryptBlocks(counters)
    next = 0
  }

  return {
    seal(plaintext, out, at) {
      if (next >= POOL) refill()
      const k = next++
      const ivAt = k * GCM_IV_BYTES
      const streamAt = k * STRIDE
      for (let i = 0; i < GCM_IV_BYTES; i++) out[at + i] = ivs[ivAt + i] as number
      const cipherAt = at + GCM_IV_BYTES
      const length = plaintext.length
      const ready = Math.min(length, READY_BLOCKS * BLOCK)
      for (let i = 0; i < ready; i++) {
        out[cipherAt + i] = (plaintext[i] as number) ^ (keystream[streamAt + BLOCK + i] as number)
      }
      if (length > ready) {
        // A long message: the rest of its keystream, made now.
        const blocks = Math.ceil((length - ready) / BLOCK)
        const more = Buffer.alloc(blocks * BLOCK)
        for (let b = 0; b < blocks; b++) counterBlock(ivs, ivAt, READY_BLOCKS + 2 + b, more, b * BLOCK)
        const stream = encryptBlocks(more)
        for (let i = ready; i < length; i++) {
          out[cipherAt + i] = (plaintext[i] as number) ^ (stream[i - ready] as number)
        }
      }
      // GHASH over the ciphertext, its last block padded with zeros, then the lengths in bits.
      const padded = Math.ceil(length / BLOCK) * BLOCK
      for (let i = cipherAt + length; i < cipherAt + padded; i++) out[i] = 0
      let y0 = aadHash[0] as number
      let y1 = aadHash[1] as number
      let y2 = aadHash[2] as number
      let y3 = aadHash[3] as number
      for (let offset = cipherAt; offset < cipherAt + padded; offset += BLOCK) {
        multiply(
          table,
          y0 ^ out.readInt32BE(offset),
          y1 ^ out.readInt32BE(offset + 4),
          y2 ^ out.readInt32BE(offset + 8),
          y3 ^ out.readInt32BE(offset + 12),
          product,
        )
        y0 = product[0] as number
        y1 = product[1] as number
        y2 = product[2] as number
        y3 = product[3] as number
      }
      multiply(table, y0, y1 ^ aadBits, y2, y3 ^ (length * 8), product)
      // The tag: GHASH xor E(J0).
      const tagAt = cipherAt + length
      for (let w = 0; w < 4; w++) {
        out.writeInt32BE((product[w] as number) ^ keystream.readInt32BE(streamAt + 4 * w), tagAt + 4 * w)
      }
      return tagAt + GCM_TAG_BYTES
    },
  }
}
