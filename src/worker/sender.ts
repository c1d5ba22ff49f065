import { setMaxListeners } from 'node:events'
import { TransportError } from '../errors.js'
import type { EmailMessage, SendResult, Transport } from '../transport.js'

/**
 * Sends share one AbortController per window of `sendTimeoutMs / 100` ms: sends that start
 * together time out together, and a batch of sends costs one controller and one timer.
 */
interface SendWindow {
  controller: AbortController
  openedAt: number
  active: number
  timer: NodeJS.Timeout
  rejects: Set<(reason: unknown) => void>
}

/** Sends through the transport, each cut off after `sendTimeoutMs` even when the transport ignores its signal. */
export function createSender(transport: Transport, sendTimeoutMs: number) {
  const windows = new Set<SendWindow>()
  const windowMs = Math.max(1, Math.floor(sendTimeoutMs / 100))
  let currentWindow: SendWindow | undefined

  function abortWindow(window: SendWindow, reason: unknown): void {
    window.controller.abort(reason)
    for (const reject of window.rejects) reject(reason)
    closeWindow(window)
  }

  function closeWindow(window: SendWindow): void {
    clearTimeout(window.timer)
    windows.delete(window)
    if (currentWindow === window) currentWindow = undefined
  }

  function openWindow(): SendWindow {
    const now = Date.now()
    if (currentWindow && now - currentWindow.openedAt < windowMs) return currentWindow
    if (currentWindow?.active === 0) closeWindow(currentWindow)
    const controller = new AbortController()
    // Every send of the window listens to this signal (an SDK request adds one listener or
    // more): that is by design, not a leak, and the signal goes away with its window.
    setMaxListeners(0, controller.signal)
    const window: SendWindow = {
      controller,
      openedAt: now,
      active: 0,
      rejects: new Set(),
      timer: setTimeout(() => {
        abortWindow(window, new TransportError(`send timed out after ${sendTimeoutMs} ms`, { retry: 'later' }))
      }, sendTimeoutMs),
    }
    window.timer.unref()
    windows.add(window)
    currentWindow = window
    return window
  }

  return {
    async send(message: EmailMessage, attempt: number): Promise<SendResult> {
      const window = openWindow()
      window.active++
      let cutOff: ((reason: unknown) => void) | undefined
      try {
        const result = await new Promise<SendResult>((resolve, reject) => {
          // A transport that ignores the signal is still cut off when its window is aborted.
          cutOff = reject
          window.rejects.add(reject)
          try {
            transport.send(message, { signal: window.controller.signal, attempt }).then(resolve, reject)
          } catch (error) {
            reject(error)
          }
        })
        if (!result || typeof result.messageId !== 'string') {
          throw new TransportError(`transport ${transport.name} returned no messageId`, { retry: 'later' })
        }
        return result
      } finally {
        window.rejects.delete(cutOff as (reason: unknown) => void)
        window.active--
        if (window.active === 0 && window !== currentWindow) closeWindow(window)
      }
    },

    /** Aborts every send in progress (a hard stop). */
    abortAll(reason: unknown): void {
      for (const window of [...windows]) abortWindow(window, reason)
    },
  }
}

export type Sender = ReturnType<typeof createSender>
