// Which part of an A/B test a recipient is in: reproducible from the batch id and the address alone.
import { createHash } from 'node:crypto'

/** 2^48: six bytes of the hash make one fraction in [0, 1). */
const SPAN = 2 ** 48

/**
 * Where one recipient falls in a test: `inTest` when its first hash fraction is below `share`,
 * and then `variant`, from a second, independent fraction, in equal parts of `variants`.
 * The same batch id and address (any case) always give the same answer, on any machine.
 */
export function abSlot(
  batchId: string,
  address: string,
  share: number,
  variants: number,
): { inTest: boolean; variant: number } {
  const digest = createHash('sha256').update(`${batchId}\n${address.toLowerCase()}`).digest()
  const group = digest.readUIntBE(0, 6) / SPAN
  const part = digest.readUIntBE(6, 6) / SPAN
  return { inTest: group < share, variant: Math.min(variants - 1, Math.floor(part * variants)) }
}
