// The dashboard page: plain HTML, one stylesheet and one script, served from the handler itself
// (no build step, no CDN). The script renders every value with textContent or Text nodes, never
// as HTML, and is served as its own file so that the page's CSP needs no 'unsafe-inline'.
import { escapeHtml } from '../html.js'

export interface PageOptions {
  title: string
  readOnly: boolean
  /** Show the Sequences panel (the `sequences` option was given). */
  sequences?: boolean
  /** Show the Transports panel (the `transports` option was given). */
  transports?: boolean
}

/** The HTML document. Every URL in it is relative, so it works under any base path. */
export function renderPage({ title, readOnly, sequences = false, transports = false }: PageOptions): string {
  const escapedTitle = escapeHtml(title)
  const streamRow = (priority: string) =>
    `<tr data-priority="${priority}"><th scope="row">${priority}</th>` +
    ['length', 'waiting', 'pending', 'consumers', 'oldestWaitingMs']
      .map((field) => `<td data-field="${field}">–</td>`)
      .join('') +
    '</tr>'
  const card = (stat: string, label: string, hint: string) =>
    `<div class="card" title="${hint}"><span class="label">${label}</span><span class="value" data-stat="${stat}">–</span></div>`
  const total = (name: string, label: string, rate?: string) =>
    `<tr><th scope="row">${label}</th><td data-total="${name}">–</td><td${rate ? ` data-rate="${rate}"` : ''}>${rate ? '–' : ''}</td></tr>`
  const actions = readOnly
    ? ''
    : '<div class="actions"><button type="button" id="retry-all">Retry all</button> <button type="button" id="purge-all" class="danger">Purge all</button></div>'
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex, nofollow">
<link rel="icon" href="data:,">
<title>${escapedTitle}</title>
<link rel="stylesheet" href="app.css">
<script src="app.js" defer></script>
</head>
<body data-read-only="${readOnly ? 'true' : 'false'}">
<header>
<h1 id="title">${escapedTitle}</h1>
<span id="connection" class="badge">connecting</span>
<span id="updated" class="muted"></span>
</header>
<div id="problem" role="alert" hidden></div>
<div id="notice" role="status" aria-live="polite"></div>
<main>
<section aria-labelledby="overview-heading">
<h2 id="overview-heading">Overview</h2>
<div class="cards">
${card('waiting', 'Waiting', 'in the send streams, not yet delivered to a worker')}
${card('inFlight', 'In flight', 'delivered to a worker and not yet acknowledged (pending)')}
${card('delayed', 'Delayed', 'scheduled jobs, retries and throttled jobs')}
${card('dead', 'Dead', 'dead letters')}
${card('suppressed', 'Suppressed', 'addresses on the suppression list')}
${card('sent', 'Sent', 'jobs sent since the queue began')}
${card('failed', 'Failed', 'jobs that went to the dead letters since the queue began')}
${card('advertisingSent', 'Advertising sent', 'advertising messages sent since the queue began (part of Sent; docs/korea.md)')}
${card('throughput', 'Sent / s', 'average over the last minute this dashboard watched')}
</div>
</section>
<section aria-labelledby="streams-heading">
<h2 id="streams-heading">Streams</h2>
<table id="streams">
<thead><tr><th scope="col">priority</th><th scope="col">length</th><th scope="col">waiting</th><th scope="col">in flight</th><th scope="col">consumers</th><th scope="col">oldest waiting</th></tr></thead>
<tbody>${['high', 'normal', 'low'].map(streamRow).join('')}</tbody>
</table>
</section>
<section aria-labelledby="delivery-heading">
<h2 id="delivery-heading">Delivery</h2>
<table id="delivery">
<thead><tr><th scope="col">outcome</th><th scope="col">total</th><th scope="col">of sent</th></tr></thead>
<tbody>
${total('sent', 'sent')}
${total('advertisingSent', 'of which advertising')}
${total('retried', 'retried')}
${total('throttled', 'throttled')}
${total('failed', 'failed (dead)')}
${total('suppressed', 'suppressed')}
${total('delivered', 'delivered', 'deliveryRate')}
${total('bounced', 'bounced', 'bounceRate')}
${total('bouncedPermanent', 'hard bounced', 'hardBounceRate')}
${total('complained', 'complained', 'complaintRate')}
${total('opened', 'opened', 'openRate')}
${total('clicked', 'clicked', 'clickRate')}
</tbody>
</table>
<p class="muted">Hard-bounce and complaint rates are marked at the levels where Amazon SES puts an account under review (5 % and 0.1 %) and where it may pause sending (10 % and 0.5 %).</p>
</section>
${
  transports
    ? `<section aria-labelledby="transports-heading" id="transports">
<h2 id="transports-heading">Transports</h2>
<p class="muted">Failover transports of the dashboard's process: breaker state, and what each sent, failed and took over from the one before it.</p>
<table id="transport-table">
<thead><tr><th scope="col">failover</th><th scope="col">transport</th><th scope="col">breaker</th><th scope="col">sent</th><th scope="col">failed</th><th scope="col">took over</th></tr></thead>
<tbody id="transport-rows"></tbody>
</table>
</section>
`
    : ''
}<section aria-labelledby="providers-heading" id="providers" hidden>
<h2 id="providers-heading">Providers</h2>
<p class="muted">Per-provider pacing by the workers since the queue began: jobs parked to keep a provider's pace, and slow-downs after its rate replies.</p>
<table id="provider-table">
<thead><tr><th scope="col">provider</th><th scope="col">parked</th><th scope="col">slow-downs</th></tr></thead>
<tbody id="provider-rows"></tbody>
</table>
</section>
<section aria-labelledby="batches-heading">
<h2 id="batches-heading">Batches</h2>
<ul id="batch-list"></ul>
<p id="batch-empty" class="muted">No batches.</p>
</section>
${
  sequences
    ? `<section aria-labelledby="sequences-heading" id="sequences">
<h2 id="sequences-heading">Sequences</h2>
<div id="sequence-list"></div>
</section>
`
    : ''
}<section aria-labelledby="failures-heading">
<h2 id="failures-heading">Retrying</h2>
<p class="muted">Jobs whose last attempt failed and that wait for the next one, most recent failure first.</p>
<table id="failures" class="stack">
<thead><tr><th scope="col">failed</th><th scope="col">job</th><th scope="col">type</th><th scope="col">status</th><th scope="col">attempts</th><th scope="col">next try</th><th scope="col">recipients</th><th scope="col">error</th></tr></thead>
<tbody id="failure-rows"></tbody>
</table>
<p id="failures-empty" class="muted">No jobs waiting for a retry.</p>
</section>
<section aria-labelledby="dead-heading">
<h2 id="dead-heading">Dead letters <span id="dead-count" class="muted"></span></h2>
${actions}
<table id="dead" class="stack">
<thead><tr><th scope="col">failed</th><th scope="col">job</th><th scope="col">type</th><th scope="col">to</th><th scope="col">subject</th><th scope="col">attempts</th><th scope="col">error</th>${readOnly ? '' : '<th scope="col"><span class="visually-hidden">actions</span></th>'}</tr></thead>
<tbody id="dead-rows"></tbody>
</table>
<p id="dead-empty" class="muted">No dead letters.</p>
</section>
</main>
</body>
</html>
`
}

export const STYLESHEET = `
:root { color-scheme: light dark; --fg: #1f2933; --bg: #f6f7f9; --panel: #fff; --line: #d9dde3; --muted: #5f6b7a;
  --accent: #3b5bdb; --warn: #b7791f; --bad: #c92a2a; --ok: #2b8a3e; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6e9ee; --bg: #14171c; --panel: #1d2128; --line: #343a44; --muted: #9aa4b2; --accent: #748ffc; }
}
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, 'Apple SD Gothic Neo', sans-serif;
  color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 12px; padding: 12px 20px; background: var(--panel);
  border-bottom: 1px solid var(--line); }
h1 { font-size: 18px; margin: 0; }
h2 { font-size: 15px; margin: 0 0 10px 0; }
/* minmax(0, ...): a wide table scrolls inside its section instead of widening the page. */
main { padding: 16px 20px; display: grid; grid-template-columns: minmax(0, 1fr); gap: 16px; }
section { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; overflow-x: auto; }
.muted { color: var(--muted); }
.badge { font-size: 12px; padding: 2px 8px; border-radius: 10px; border: 1px solid var(--line); }
.badge.live { color: var(--ok); border-color: var(--ok); }
.badge.down { color: var(--bad); border-color: var(--bad); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(130px, 1fr)); gap: 10px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
.card .label { display: block; font-size: 12px; color: var(--muted); }
.card .value { font-size: 22px; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
td { font-variant-numeric: tabular-nums; overflow-wrap: break-word; word-break: break-word; }
td button { white-space: nowrap; }
td[data-field="failedAt"], td[data-field="updatedAt"], td[data-field="type"] { white-space: nowrap; }
thead th { font-size: 12px; color: var(--muted); font-weight: 600; }
td.warn { color: var(--warn); font-weight: 600; }
td.bad { color: var(--bad); font-weight: 700; }
#batch-list { list-style: none; margin: 0; padding: 0; display: grid; gap: 12px; }
.batch-head { display: flex; gap: 10px; align-items: baseline; }
.batch .state { font-size: 12px; color: var(--muted); }
.bar { height: 10px; border-radius: 5px; background: var(--line); overflow: hidden; margin: 4px 0; }
.bar .fill { height: 100%; width: 0; background: var(--accent); transition: width 0.3s ease; }
.batch[data-state="finished"] .fill { background: var(--ok); }
.batch[data-state="cancelled"] .fill { background: var(--muted); }
.batch-counts { font-size: 12px; color: var(--muted); }
.ab { margin-top: 8px; }
.ab-head { display: flex; flex-wrap: wrap; gap: 4px 10px; align-items: baseline; font-size: 12px; }
.badge.ab-state[data-ab-state="testing"] { color: var(--accent); border-color: var(--accent); }
.badge.ab-state[data-ab-state="sending-winner"] { color: var(--warn); border-color: var(--warn); }
.badge.ab-state[data-ab-state="done"] { color: var(--ok); border-color: var(--ok); }
.ab table { margin-top: 4px; font-size: 13px; }
.ab td.metric, .ab th.metric { background: color-mix(in srgb, var(--accent) 12%, transparent); font-weight: 600; }
.ab tr.under-sample td { color: var(--muted); opacity: 0.7; }
.ab tr.winner td:first-child { font-weight: 700; color: var(--ok); }
.ab-decision { font-size: 12px; margin-top: 4px; }
td.breaker-open { color: var(--bad); font-weight: 700; }
td.breaker-half-open { color: var(--warn); font-weight: 600; }
td.breaker-closed { color: var(--ok); }
#sequence-list { display: grid; gap: 14px; }
.sequence h3 { font-size: 14px; margin: 0 0 4px 0; }
.sequence-totals, .sequence-exits { font-size: 12px; color: var(--muted); margin: 2px 0; }
.sequence .error { color: var(--bad); }
.actions { margin: 0 0 8px 0; }
button { font: inherit; padding: 3px 10px; border-radius: 5px; border: 1px solid var(--line); background: var(--bg);
  color: var(--fg); cursor: pointer; }
button:hover { border-color: var(--accent); }
button:disabled { opacity: 0.5; cursor: default; }
button.danger { color: var(--bad); }
/* A squeezed table would give an id or an address two characters a line: they keep room for words;
   what does not fit scrolls inside the section. */
td[data-field="id"] { min-width: 12em; }
td[data-field="to"], td[data-field="recipients"], td[data-field="subject"], td[data-field="error"] { min-width: 8em; }
#problem { margin: 12px 20px 0 20px; padding: 8px 12px; border: 1px solid var(--bad); color: var(--bad); border-radius: 6px; }
#notice { margin: 0 20px; min-height: 0; }
#notice:not(:empty) { margin-top: 12px; padding: 6px 12px; border: 1px solid var(--line); border-radius: 6px; }
#notice.error { color: var(--bad); border-color: var(--bad); }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
[hidden] { display: none !important; }
/* A phone or a tablet: the two wide tables become one card per row, each value beside its
   column's name, and the whole id (a phone has no hover for a title) as the card's heading, with
   its Retry button. */
@media (max-width: 1024px) {
  header { flex-wrap: wrap; gap: 4px 10px; padding: 10px 12px; }
  main { padding: 12px; gap: 12px; }
  section { padding: 12px; }
  #problem, #notice:not(:empty) { margin-left: 12px; margin-right: 12px; }
  th, td { padding: 5px 6px; }
  .batch-head { flex-wrap: wrap; }
  table.stack, table.stack tbody { display: block; }
  table.stack thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  table.stack tr { display: grid; grid-template-columns: minmax(0, 1fr) auto; gap: 0 8px; margin: 0 0 10px 0;
    padding: 8px 10px; border: 1px solid var(--line); border-radius: 6px; }
  table.stack td { grid-column: 1 / -1; display: grid; grid-template-columns: 6.5em minmax(0, 1fr); gap: 8px;
    padding: 2px 0; border: 0; overflow-wrap: anywhere; white-space: normal; }
  table.stack td::before { content: attr(data-label); color: var(--muted); font-size: 12px; line-height: 20px; }
  table.stack td[data-field="id"] { grid-column: 1; grid-row: 1; display: block; min-width: 0; font-weight: 600;
    align-self: center; }
  table.stack td[data-field="id"]::before { content: none; }
  table.stack td[data-field="actions"] { grid-column: 2; grid-row: 1; display: block; }
  table.stack td[data-field="actions"]::before { content: none; }
  table.stack td button { min-height: 32px; }
}
`

// Plain ES2020 for current browsers. Kept free of backticks and dollar-brace so that it can live
// in this String.raw literal; values from the server only ever reach the DOM as text.
export const SCRIPT = String.raw`(() => {
  'use strict'
  const readOnly = document.body.getAttribute('data-read-only') === 'true'
  const DEAD_COUNT = 100
  const FAILURE_COUNT = 50
  const number = new Intl.NumberFormat('en-US')
  const byId = (id) => document.getElementById(id)
  let lastStats = null
  let deadSeq = 0
  let failureSeq = 0
  let failureTimer = null
  const shownCompleted = new Map()

  function el(tag, attributes, children) {
    const node = document.createElement(tag)
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value !== undefined && value !== null) node.setAttribute(name, String(value))
    }
    // append() turns strings into Text nodes: data is never parsed as HTML.
    for (const child of children || []) node.append(child)
    return node
  }

  const dash = '\u2013'
  const text = (value) => (value === undefined || value === null || value === '' ? dash : String(value))
  const count = (value) => number.format(Number(value) || 0)
  const percent = (fraction) => ((Number(fraction) || 0) * 100).toFixed(2) + '%'
  function time(ms) {
    return ms ? new Date(ms).toLocaleString() : dash
  }
  function duration(ms) {
    if (!ms || ms < 0) return dash
    const seconds = Math.round(ms / 1000)
    if (seconds < 60) return seconds + ' s'
    const minutes = Math.floor(seconds / 60)
    if (minutes < 60) return minutes + ' min ' + (seconds % 60) + ' s'
    const hours = Math.floor(minutes / 60)
    if (hours < 48) return hours + ' h ' + (minutes % 60) + ' min'
    return Math.floor(hours / 24) + ' d'
  }
  function setText(selector, value) {
    for (const node of document.querySelectorAll(selector)) node.textContent = value
  }

  function notice(message, isError) {
    const node = byId('notice')
    node.textContent = message
    node.classList.toggle('error', Boolean(isError))
  }
  function problem(message) {
    const node = byId('problem')
    node.textContent = message || ''
    node.hidden = !message
  }

  async function api(path, method) {
    const init = { method: method || 'GET', credentials: 'same-origin', cache: 'no-store', headers: {} }
    // The server refuses a POST without this header: a cross-site form or image cannot send it.
    if (init.method === 'POST') init.headers['x-mailstream-csrf'] = '1'
    const response = await fetch(path, init)
    let body = null
    try {
      body = await response.json()
    } catch {
      body = null
    }
    if (!response.ok) {
      const message = body && body.error && body.error.message ? body.error.message : response.status + ' ' + response.statusText
      const error = new Error(message)
      error.status = response.status
      throw error
    }
    return body
  }

  // Stats: overview cards, streams, delivery totals and rates.
  // Amazon SES reviews an account at these levels and may pause its sending at the second.
  const RATE_LEVELS = { hardBounceRate: [0.05, 0.1], complaintRate: [0.001, 0.005] }
  const rateOf = (stats, name) =>
    name === 'hardBounceRate'
      ? stats.totals.sent > 0
        ? stats.totals.bouncedPermanent / stats.totals.sent
        : 0
      : stats.rates[name]
  function renderStats(stats) {
    const previous = lastStats
    lastStats = stats
    problem('')
    setText('[data-stat="waiting"]', count(stats.waiting))
    setText('[data-stat="inFlight"]', count(stats.inFlight))
    setText('[data-stat="delayed"]', count(stats.delayed))
    setText('[data-stat="dead"]', count(stats.dead))
    setText('[data-stat="suppressed"]', count(stats.suppressed))
    setText('[data-stat="sent"]', count(stats.totals.sent))
    setText('[data-stat="failed"]', count(stats.totals.failed))
    setText('[data-stat="advertisingSent"]', count(stats.totals.advertisingSent))
    setText('[data-stat="throughput"]', stats.throughput ? stats.throughput.sentPerSecond.toFixed(1) : dash)
    for (const row of document.querySelectorAll('#streams tbody tr')) {
      const stream = stats.streams[row.getAttribute('data-priority')]
      if (!stream) continue
      for (const cell of row.querySelectorAll('td')) {
        const field = cell.getAttribute('data-field')
        cell.textContent = field === 'oldestWaitingMs' ? duration(stream[field]) : count(stream[field])
      }
    }
    for (const cell of document.querySelectorAll('[data-total]')) {
      cell.textContent = count(stats.totals[cell.getAttribute('data-total')])
    }
    for (const cell of document.querySelectorAll('[data-rate]')) {
      const name = cell.getAttribute('data-rate')
      const value = rateOf(stats, name)
      cell.textContent = percent(value)
      const levels = RATE_LEVELS[name]
      cell.classList.toggle('bad', Boolean(levels) && value >= levels[1])
      cell.classList.toggle('warn', Boolean(levels) && value >= levels[0] && value < levels[1])
    }
    if (stats.failover && byId('transport-rows')) renderTransports(stats.failover)
    byId('updated').textContent = 'updated ' + new Date(stats.at).toLocaleTimeString()
    if (previous && previous.dead !== stats.dead) loadDead()
    if (
      previous &&
      (previous.delayed !== stats.delayed ||
        previous.totals.retried !== stats.totals.retried ||
        previous.totals.throttled !== stats.totals.throttled)
    ) {
      scheduleFailures()
    }
  }

  // Failover transports (with the stats) and per-provider pacing (with the batch list).
  function renderTransports(failover) {
    const rows = []
    for (const group of failover) {
      for (const member of group.transports) {
        const since = member.openedAt ? 'since ' + time(member.openedAt) : undefined
        rows.push(
          el('tr', { 'data-failover': group.name, 'data-transport': member.name }, [
            el('td', { 'data-field': 'failover' }, [group.name]),
            el('td', { 'data-field': 'transport' }, [member.name]),
            el('td', { 'data-field': 'state', class: 'breaker-' + member.state, title: since }, [member.state]),
            el('td', { 'data-field': 'sent' }, [count(member.sent)]),
            el('td', { 'data-field': 'failed' }, [count(member.failed)]),
            el('td', { 'data-field': 'tookOver' }, [count(member.tookOver)]),
          ]),
        )
      }
    }
    byId('transport-rows').replaceChildren(...rows)
  }
  let providerSeq = 0
  async function loadProviders() {
    const seq = ++providerSeq
    try {
      const data = await api('api/providers')
      if (seq !== providerSeq) return
      const rows = data.items.map((row) =>
        el('tr', { 'data-provider': row.provider }, [
          el('td', { 'data-field': 'provider' }, [row.provider]),
          el('td', { 'data-field': 'parked' }, [count(row.parked)]),
          el('td', { 'data-field': 'slowDowns' }, [count(row.slowDowns)]),
        ]),
      )
      byId('provider-rows').replaceChildren(...rows)
      byId('providers').hidden = rows.length === 0
    } catch (error) {
      notice('Could not load providers: ' + error.message, true)
    }
  }

  // Dead letters, newest first, with a Retry button per row.
  const DEAD_FIELDS = ['failedAt', 'id', 'type', 'to', 'subject', 'attempts', 'error']
  // A cell's column name, shown beside its value when a narrow screen stacks the rows.
  const DEAD_LABELS = ['failed', 'job', 'type', 'to', 'subject', 'attempts', 'error']
  function cells(fields, labels, values, id) {
    return values.map((value, index) =>
      el('td', { 'data-field': fields[index], 'data-label': labels[index], title: fields[index] === 'id' ? id : undefined }, [value]),
    )
  }
  async function loadDead() {
    const seq = ++deadSeq
    try {
      const data = await api('api/dead?count=' + DEAD_COUNT)
      if (seq === deadSeq) renderDead(data)
    } catch (error) {
      notice('Could not load dead letters: ' + error.message, true)
    }
  }
  function renderDead(data) {
    const rows = data.items.map((letter) => {
      const values = [
        time(letter.failedAt),
        letter.id,
        text(letter.type),
        text((letter.to || []).join(', ')),
        text(letter.subject),
        String(letter.attempts),
        text(letter.error),
      ]
      const row = el('tr', { 'data-id': letter.id }, cells(DEAD_FIELDS, DEAD_LABELS, values, letter.id))
      if (!readOnly) {
        const button = el('button', { type: 'button', class: 'retry', 'aria-label': 'Retry ' + letter.id }, ['Retry'])
        button.addEventListener('click', () => retry(letter.id, button))
        row.append(el('td', { 'data-field': 'actions' }, [button]))
      }
      return row
    })
    byId('dead-rows').replaceChildren(...rows)
    byId('dead-empty').hidden = rows.length > 0
    byId('dead-count').textContent =
      data.total > data.items.length ? '(newest ' + data.items.length + ' of ' + count(data.total) + ')' : '(' + count(data.total) + ')'
  }
  function removeDeadRows(id) {
    for (const row of byId('dead-rows').querySelectorAll('tr')) if (row.getAttribute('data-id') === id) row.remove()
    byId('dead-empty').hidden = byId('dead-rows').children.length > 0
  }
  async function retry(id, button) {
    button.disabled = true
    try {
      const result = await api('api/dead/' + encodeURIComponent(id) + '/retry', 'POST')
      removeDeadRows(id)
      notice('Retried ' + id + ' (' + result.retried + ')')
    } catch (error) {
      if (error.status === 404) {
        removeDeadRows(id)
        notice(id + ' is no longer a dead letter')
      } else {
        button.disabled = false
        notice('Retry failed: ' + error.message, true)
      }
    }
    loadDead()
  }
  async function bulk(path, question, done) {
    if (!window.confirm(question)) return
    try {
      const result = await api(path, 'POST')
      notice(done(result))
    } catch (error) {
      notice(error.message, true)
    }
    loadDead()
  }

  // Jobs waiting for a retry.
  const FAILURE_FIELDS = ['updatedAt', 'id', 'type', 'status', 'attempts', 'dueAt', 'recipients', 'error']
  const FAILURE_LABELS = ['failed', 'job', 'type', 'status', 'attempts', 'next try', 'recipients', 'error']
  function scheduleFailures() {
    if (failureTimer) return
    failureTimer = setTimeout(() => {
      failureTimer = null
      loadFailures()
    }, 1000)
  }
  async function loadFailures() {
    const seq = ++failureSeq
    try {
      const data = await api('api/failures?count=' + FAILURE_COUNT)
      if (seq !== failureSeq) return
      const rows = data.items.map((job) => {
        const values = [
          time(job.updatedAt),
          job.id,
          text(job.type),
          job.status,
          job.attempts + ' of ' + job.maxAttempts,
          job.dueAt ? 'in ' + duration(job.dueAt - Date.now()) : dash,
          text((job.recipients || []).join(', ')),
          text(job.error),
        ]
        return el('tr', { 'data-id': job.id }, cells(FAILURE_FIELDS, FAILURE_LABELS, values, job.id))
      })
      byId('failure-rows').replaceChildren(...rows)
      byId('failures-empty').hidden = rows.length > 0
    } catch (error) {
      notice('Could not load retrying jobs: ' + error.message, true)
    }
  }

  // Batches: one progress bar each, moved by the progress events.
  function batchItem(batch) {
    const fill = el('div', { class: 'fill' })
    const bar = el(
      'div',
      { class: 'bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': 0, 'aria-label': 'Batch ' + batch.batchId },
      [fill],
    )
    const item = el('li', { class: 'batch', 'data-batch-id': batch.batchId }, [
      el('div', { class: 'batch-head' }, [
        el('strong', { 'data-field': 'batchId' }, [batch.batchId]),
        ...(batch.advertising
          ? [el('span', { class: 'badge', 'data-field': 'advertising', title: 'sent as advertising (docs/korea.md)' }, ['advertising'])]
          : []),
        el('span', { class: 'state', 'data-field': 'state' }),
        el('span', { class: 'muted', 'data-field': 'createdAt' }, [batch.createdAt ? 'started ' + time(batch.createdAt) : '']),
      ]),
      bar,
      el('div', { class: 'batch-counts', 'data-field': 'counts' }),
      el('div', { class: 'ab', 'data-field': 'abTest', hidden: '' }),
    ])
    return item
  }
  function findBatch(batchId) {
    for (const item of byId('batch-list').children) if (item.getAttribute('data-batch-id') === batchId) return item
    return null
  }
  function updateBatch(item, progress, state) {
    const shown = shownCompleted.get(progress.batchId)
    // A snapshot read before a newer progress message may arrive after it: never move backwards.
    if (shown && progress.total === shown.total && progress.completed < shown.completed) return
    shownCompleted.set(progress.batchId, { completed: progress.completed, total: progress.total })
    const value = Math.max(0, Math.min(100, Number(progress.percentage) || 0))
    const bar = item.querySelector('[role="progressbar"]')
    bar.setAttribute('aria-valuenow', String(value))
    bar.setAttribute('aria-valuetext', value + '%')
    bar.querySelector('.fill').style.width = value + '%'
    let label = state
    if (!label) {
      const current = item.getAttribute('data-state')
      if (progress.done) label = current === 'cancelled' ? 'cancelled' : 'finished'
      else label = current === 'enqueueing' || current === 'cancelled' ? current : 'sending'
    }
    item.setAttribute('data-state', label)
    item.querySelector('[data-field="state"]').textContent = label
    item.querySelector('[data-field="counts"]').textContent =
      count(progress.completed) + ' of ' + count(progress.total) + ' (' + value + '%) \u00b7 sent ' + count(progress.sent) +
      ' \u00b7 failed ' + count(progress.failed) + ' \u00b7 suppressed ' + count(progress.suppressed) +
      ' \u00b7 cancelled ' + count(progress.cancelled)
  }
  // A batch's A/B test: state, one row per variant, then the winner once it is decided.
  const AB_STATES = { testing: 'testing', 'sending-winner': 'sending winner', done: 'done' }
  const REASONS = {
    'best-rate': 'best rate',
    tie: 'tie: the first of the best',
    'min-sample': 'no variant reached the minimum sample: the first',
  }
  const variantName = (index) => String.fromCharCode(65 + Number(index))
  function abTable(test) {
    const opens = test.metric === 'opens'
    const metricClass = (isMetric) => (isMetric ? 'metric' : undefined)
    const head = el('tr', {}, [
      el('th', { scope: 'col' }, ['variant']),
      el('th', { scope: 'col' }, ['subject or template']),
      el('th', { scope: 'col' }, ['sent']),
      el('th', { scope: 'col', class: metricClass(opens) }, ['opened']),
      el('th', { scope: 'col', class: metricClass(!opens) }, ['clicked']),
    ])
    const winner = test.decision ? test.decision.winner : -1
    const rows = test.variants.map((variant) => {
      const under = variant.sent < test.minSample
      const classes = [under ? 'under-sample' : '', variant.index === winner ? 'winner' : ''].filter(Boolean).join(' ')
      return el(
        'tr',
        {
          'data-variant': variant.index,
          class: classes || undefined,
          title: under ? 'fewer than ' + count(test.minSample) + ' sent: cannot win on its rate yet' : undefined,
        },
        [
          el('td', { 'data-field': 'variant' }, [variantName(variant.index) + (variant.index === winner ? ' ✓' : '')]),
          el('td', { 'data-field': 'subject' }, [text(variant.subject !== undefined ? variant.subject : variant.template)]),
          el('td', { 'data-field': 'sent' }, [count(variant.sent)]),
          el('td', { 'data-field': 'opened', class: metricClass(opens) }, [
            count(variant.opened) + ' (' + percent(variant.openRate) + ')',
          ]),
          el('td', { 'data-field': 'clicked', class: metricClass(!opens) }, [
            count(variant.clicked) + ' (' + percent(variant.clickRate) + ')',
          ]),
        ],
      )
    })
    return el('table', { class: 'ab-table' }, [el('thead', {}, [head]), el('tbody', {}, rows)])
  }
  async function decideNow(batchId, button) {
    if (!window.confirm('Choose the winner of ' + batchId + ' now and send it to everyone held back?')) return
    button.disabled = true
    try {
      const result = await api('api/batches/' + encodeURIComponent(batchId) + '/ab/decide', 'POST')
      notice('Variant ' + variantName(result.decision.winner) + ' won ' + batchId + ': ' + count(result.enqueued) + ' enqueued')
      const batch = await api('api/batches/' + encodeURIComponent(batchId))
      const item = findBatch(batchId)
      if (item) renderAb(item, batch)
    } catch (error) {
      button.disabled = false
      notice('Decide failed: ' + error.message, true)
    }
  }
  function renderAb(item, batch) {
    const box = item.querySelector('[data-field="abTest"]')
    const test = batch.abTest
    if (!test) {
      box.hidden = true
      box.replaceChildren()
      return
    }
    box.hidden = false
    const headParts = [
      el('strong', {}, ['A/B test']),
      el('span', { class: 'badge ab-state', 'data-field': 'abState', 'data-ab-state': test.state }, [AB_STATES[test.state] || test.state]),
      el('span', { class: 'muted', 'data-field': 'abSetup' }, [
        Math.round(test.share * 100) + '% tested on ' + test.metric + ', at least ' + count(test.minSample) + ' sent each',
      ]),
      el('span', { class: 'muted', 'data-field': 'decideAt' }, [(test.decision ? 'was due ' : 'decides ') + time(test.decideAt)]),
    ]
    if (!readOnly && test.state === 'testing') {
      const button = el('button', { type: 'button', class: 'decide', 'aria-label': 'Decide ' + batch.batchId + ' now' }, ['Decide now'])
      button.addEventListener('click', () => decideNow(batch.batchId, button))
      headParts.push(button)
    }
    const children = [el('div', { class: 'ab-head' }, headParts), abTable(test)]
    if (test.decision) {
      children.push(
        el('div', { class: 'ab-decision', 'data-field': 'abDecision' }, [
          'Winner ' + variantName(test.decision.winner) + ' (' + (REASONS[test.decision.reason] || test.decision.reason) + ') at ' +
            time(test.decision.at) + ' · released ' + count(test.released) + ' of ' + count(test.held) + ' held',
        ]),
      )
    } else {
      children.push(el('div', { class: 'ab-decision muted', 'data-field': 'abDecision' }, [count(test.held) + ' held for the winner']))
    }
    box.replaceChildren(...children)
  }
  function renderBatches(items) {
    const list = byId('batch-list')
    const nodes = items.map((batch) => {
      const item = findBatch(batch.batchId) || batchItem(batch)
      updateBatch(item, batch, batch.state)
      renderAb(item, batch)
      return item
    })
    list.replaceChildren(...nodes)
    byId('batch-empty').hidden = nodes.length > 0
  }
  function onProgress(progress) {
    const item = findBatch(progress.batchId)
    if (item) updateBatch(item, progress, progress.state)
  }

  // Sequences: totals, exit reasons and one row per step, read again with each batch list.
  let sequenceSeq = 0
  const STEP_FIELDS = ['id', 'kind', 'at', 'sent']
  function sequenceItem(panel) {
    const heading = el('h3', { 'data-field': 'sequenceId' }, [panel.id])
    if (panel.error) return el('div', { class: 'sequence', 'data-sequence-id': panel.id }, [heading, el('p', { class: 'error' }, [panel.error])])
    const stats = panel.stats
    const totals = ['enrolled', 'active', 'waiting', 'done', 'exited'].map((name) => name + ' ' + count(stats[name])).join(' · ')
    const reasons = Object.entries(stats.exitReasons || {})
      .sort((a, b) => b[1] - a[1])
      .map(([reason, value]) => reason + ' ' + count(value))
      .join(' · ')
    const head = el('tr', {}, ['step', 'kind', 'at this step', 'sent'].map((label) => el('th', { scope: 'col' }, [label])))
    const rows = stats.steps.map((step) =>
      el(
        'tr',
        { 'data-step': step.id },
        STEP_FIELDS.map((field) => el('td', { 'data-field': field }, [field === 'at' || field === 'sent' ? count(step[field]) : String(step[field])])),
      ),
    )
    return el('div', { class: 'sequence', 'data-sequence-id': panel.id }, [
      heading,
      el('p', { class: 'sequence-totals', 'data-field': 'totals' }, [totals]),
      el('p', { class: 'sequence-exits', 'data-field': 'exitReasons' }, ['exits: ' + (reasons || 'none')]),
      el('table', { class: 'sequence-steps' }, [el('thead', {}, [head]), el('tbody', {}, rows)]),
    ])
  }
  async function loadSequences() {
    if (!byId('sequences')) return
    const seq = ++sequenceSeq
    try {
      const data = await api('api/sequences')
      if (seq === sequenceSeq) byId('sequence-list').replaceChildren(...data.items.map(sequenceItem))
    } catch (error) {
      notice('Could not load sequences: ' + error.message, true)
    }
  }

  async function loadAll() {
    try {
      const [stats, batches] = await Promise.all([api('api/stats'), api('api/batches')])
      renderStats(stats)
      renderBatches(batches.items)
    } catch (error) {
      problem('Could not load the dashboard: ' + error.message)
    }
    loadDead()
    loadFailures()
    loadSequences()
    loadProviders()
  }

  function connect() {
    const badge = byId('connection')
    const source = new EventSource('api/events')
    source.addEventListener('open', () => {
      badge.textContent = 'live'
      badge.className = 'badge live'
      loadDead()
      loadFailures()
    })
    source.addEventListener('error', () => {
      badge.textContent = source.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting'
      badge.className = 'badge down'
    })
    source.addEventListener('stats', (event) => renderStats(JSON.parse(event.data)))
    source.addEventListener('batches', (event) => {
      renderBatches(JSON.parse(event.data).items)
      loadSequences()
      loadProviders()
    })
    source.addEventListener('progress', (event) => onProgress(JSON.parse(event.data)))
    source.addEventListener('problem', (event) => problem(JSON.parse(event.data).message))
  }

  if (!readOnly) {
    byId('retry-all').addEventListener('click', () =>
      bulk('api/dead/retry-all', 'Send every dead letter again?', (result) => 'Retried ' + result.retried + ' dead letters'),
    )
    byId('purge-all').addEventListener('click', () =>
      bulk('api/dead/purge', 'Delete every dead letter? This cannot be undone.', (result) => 'Purged ' + result.purged + ' dead letters'),
    )
  }
  loadAll()
  connect()
})()
`
