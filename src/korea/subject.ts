// The "(광고)" mark of an advertising email's subject (정보통신망법 시행령 제61조 제3항, 별표 6):
// written exactly so, at the very start. Pure: no I/O, no options.

/** The mark, exactly as the law writes it: ASCII parentheses around 광고, nothing in between. */
export const ADVERTISING_MARK = '(광고)'

/** Characters that only disguise a mark: invisible ones, and the separators people put between 광 and 고. */
const INVISIBLE = '\\u00AD\\u034F\\u115F\\u1160\\u180E\\u200B-\\u200F\\u2060-\\u2064\\u3164\\uFEFF\\uFFA0'
const SEPARATORS = `\\s${INVISIBLE}.·・‧∙•⋅˙ㆍ\u119E。｡、,，/\\\\|｜_\\-‐‑–—~*:;'"\``
/** Openers and closers of every bracket a look-alike uses (full-width ones are folded by NFKC first). */
const OPEN = '([{<〈《【「『〔〖〘〚‹«⟨'
const CLOSE = ')\\]}>〉》】」』〕〗〙〛›»⟩'
/**
 * 광 and 고 with anything disguising between and around them, in brackets of any kind or none at
 * the start: `(광/고)`, `[광고]`, `(광.고)`, `（광고）`, `(광\u200B고)`, `<광 고>`. Also the compatibility
 * jamo spelling is not tried: a mark must read as 광고 to be one.
 */
const MARK_RE = new RegExp(`[${OPEN}][${SEPARATORS}]*광[${SEPARATORS}]*고[${SEPARATORS}]*[${CLOSE}]`, 'u')
/** A bare 광고 mark at the very start, with a closer only: `광고)`, `광고]`. */
const START_RE = new RegExp(`^[${SEPARATORS}]*광[${SEPARATORS}]*고[${SEPARATORS}]*[${CLOSE}]`, 'u')

/** Where a subject carries an advertising mark, exact or look-alike. */
export interface AdvertisingMark {
  /** The mark as written in the subject. */
  text: string
  /** True for `(광고)` at the very start of the subject: the one right form. */
  exact: boolean
}

/** Full-width forms (`（광고）`) and other compatibility characters folded, so that brackets compare. */
const fold = (subject: string) => subject.normalize('NFKC')

/**
 * The first advertising mark in a subject, exact or look-alike; undefined when it has none. Costs a
 * character search for a subject without 광 (the common case).
 */
export function findAdvertisingMark(subject: string): AdvertisingMark | undefined {
  if (subject.startsWith(ADVERTISING_MARK)) return { text: ADVERTISING_MARK, exact: true }
  if (!subject.includes('광')) return undefined
  const folded = fold(subject)
  const match = MARK_RE.exec(folded) ?? START_RE.exec(folded)
  return match ? { text: match[0], exact: false } : undefined
}

/** The subject an advertising email goes out with, or why it cannot. */
export type AdvertisingSubject = { ok: true; subject: string } | { ok: false; reason: string }

/**
 * The subject of an advertising email: as it is when it starts with `(광고)`; with `(광고) ` put in
 * front when it has no mark; refused when it has a look-alike (`(광/고)`, `[광고]`, ...) or the
 * mark anywhere but at the very start, since a second, disguised mark is what the rule forbids.
 */
export function advertisingSubject(subject: string): AdvertisingSubject {
  const mark = findAdvertisingMark(subject)
  if (mark === undefined) return { ok: true, subject: `${ADVERTISING_MARK} ${subject}` }
  if (mark.exact) {
    const rest = findAdvertisingMark(subject.slice(ADVERTISING_MARK.length).replace(/^\s+/, ''))
    if (rest === undefined || rest.exact) {
      if (rest?.exact) return { ok: false, reason: `the subject carries ${ADVERTISING_MARK} twice` }
      return { ok: true, subject }
    }
    return { ok: false, reason: `the subject carries a look-alike of ${ADVERTISING_MARK}: '${rest.text}'` }
  }
  return {
    ok: false,
    reason: `an advertising subject starts with ${ADVERTISING_MARK} exactly as written here; '${mark.text}' is a look-alike (write ${ADVERTISING_MARK} at the very start, or leave it out and it is added)`,
  }
}

/**
 * Why a subject that is not advertising may not go out as it is (it carries `(광고)` or a
 * look-alike); undefined when it may.
 */
export function ordinarySubjectProblem(subject: string): string | undefined {
  const mark = findAdvertisingMark(subject)
  if (mark === undefined) return undefined
  return `the subject carries '${mark.text}', the advertising mark, but the job is not advertising (set advertising on the job, or take the mark out)`
}
